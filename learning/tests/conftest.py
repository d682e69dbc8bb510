"""Tiny labelled CT slices written with pydicom: enough signal to learn in a few rounds."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from flwr.app import ArrayRecord
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from oncofed_learning import wire
from oncofed_learning.client_app import PolicyRefusal, app
from oncofed_learning.flower_adapter import Reply, Transport, call_client_app


def write_slice(path: Path, lesion: bool, rng: np.random.Generator, noise: float = 0.04) -> None:
    size = 32
    y, x = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    image = ((x / 0.85) ** 2 + (y / 0.65) ** 2 <= 1) * 0.5
    if lesion:
        cx, cy = rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.3)
        r = rng.uniform(0.12, 0.25)
        image = image + (((x - cx) ** 2 + (y - cy) ** 2) <= r * r) * rng.uniform(0.15, 0.35)
    values = np.clip((image + rng.normal(0, noise, image.shape)) * 4095, 0, 4095)
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = values.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_site(folder: Path, patients: int, prevalence: float, seed: int) -> Path:
    """A site's case list: `patients` patients, two slices each, non-IID by prevalence."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for i in range(patients):
        lesion = bool(rng.random() < prevalence)
        for k in range(2):
            path = folder / f"p{i}-{k}.dcm"
            write_slice(path, lesion, rng)
            cases.append({"path": str(path), "patient": f"{folder.name}-{i}", "label": int(lesion)})
    listing = folder / "cases.json"
    listing.write_text(json.dumps({"cases": cases}))
    return listing


@pytest.fixture(scope="session")
def sites(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("sites")
    return [
        write_site(root / f"site{i}", 35, prevalence, seed=i)
        for i, prevalence in enumerate((0.3, 0.5, 0.7))
    ]


def in_process_transport(
    sites: list[Path], log: list[dict[str, Any]], node_config: dict[str, Any]
) -> Transport:
    """OncofedGrid's transport with every node in this process: site `n` is `sites[n - 1]`,
    weights go through the `.npz` wire format both ways, each message is logged."""

    def send(
        message_type: str,
        group: str,
        arrays: ArrayRecord | None,
        config: dict[str, Any],
        nodes: list[int],
        timeout: float | None,
    ) -> dict[int, Reply]:
        # What would travel: bytes of the weights, the config; the reply's bytes back.
        blob = wire.to_bytes(arrays) if arrays is not None else None
        log.append({"type": message_type, "config": dict(config), "nodes": list(nodes)})
        replies = {}
        for n in nodes:
            received = wire.from_bytes(blob) if blob is not None else None
            reply = call_client_app(
                app,
                message_type,
                received,
                config,
                {"cases": str(sites[n - 1]), "min-count": 5, "min-train-cases": 20} | node_config,
                refusals=(PolicyRefusal,),
            )
            if reply.arrays is not None:
                reply.arrays = wire.from_bytes(wire.to_bytes(reply.arrays))
            replies[n] = reply
        return replies

    return send


@pytest.fixture
def in_process() -> Callable[..., Transport]:
    return in_process_transport
