"""Helpers for the imaging tests: DICOM with planted PHI, corpora, an independent PHI scan."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from oncofed.node.cas import ContentStore
from oncofed.node.deid import DeidContext
from oncofed.node.store import NodeStore

SECRET = b"k" * 32
PROVIDER = "testprov"
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"

# Identifying values planted into the synthetic files, for the independent scan.
PHI = {
    "name_family": "Kowalczyk",
    "name_given": "Hieronymus",
    "patient_id": "MRN-4471902",
    "birth_date": "19610923",
    "address": "17 Larkspur Lane, Bruges",
    "phone": "+32 50 44 19 27",
    "accession": "ACC99018812",
    "institution": "Sint-Jan Memorial Infirmary",
    "physician": "Vandersteen^Margriet",
    "operator": "Dubois^Philippe",
    "station": "CTSTATION07",
}


def _pn() -> str:
    return f"{PHI['name_family']}^{PHI['name_given']}"


def make_ct(
    *,
    patient_id: str = PHI["patient_id"],
    study_uid: str | None = None,
    series_uid: str | None = None,
    instance: int = 1,
    size: int = 16,
    for_uid: str | None = None,
) -> Dataset:
    """A small CT image with PHI at the top level, in sequences (depth 1 and 2), in
    free text and in a private block."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.FrameOfReferenceUID = for_uid or generate_uid()
    ds.Modality = "CT"
    ds.Manufacturer = "SIEMENS"
    ds.ManufacturerModelName = "SOMATOM Force"
    ds.BodyPartExamined = "CHEST"
    ds.PatientName = _pn()
    ds.PatientID = patient_id
    ds.PatientBirthDate = PHI["birth_date"]
    ds.PatientSex = "F"
    ds.PatientAge = "061Y"
    ds.PatientAddress = PHI["address"]
    ds.PatientTelephoneNumbers = PHI["phone"]
    ds.AccessionNumber = PHI["accession"]
    ds.InstitutionName = PHI["institution"]
    ds.InstitutionAddress = "Ruddershove 10, 8000 Brugge"
    ds.ReferringPhysicianName = PHI["physician"]
    ds.OperatorsName = PHI["operator"]
    ds.StationName = PHI["station"]
    ds.StudyDate = "20210314"
    ds.SeriesDate = "20210314"
    ds.AcquisitionDate = "20210314"
    ds.ContentDate = "20210314"
    ds.StudyTime = "101500"
    ds.StudyID = "S7781"
    ds.StudyDescription = "CT THORAX"
    ds.SeriesDescription = "AXIAL 1.0 B30f"
    ds.ProtocolName = "Thorax routine"
    ds.ImageComments = f"patient {PHI['name_family']} moved"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [0, 0, float(instance)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.BurnedInAnnotation = "NO"
    item = Dataset()
    item.ReferencedSOPClassUID = CTImageStorage
    item.ReferencedSOPInstanceUID = generate_uid()
    ds.ReferencedImageSequence = Sequence([item])
    req = Dataset()
    req.RequestingPhysician = PHI["physician"]
    req.AccessionNumber = PHI["accession"]
    inner = Dataset()
    inner.PersonName = _pn()
    req.ReferencedPatientSequence = Sequence([inner])
    ds.RequestAttributesSequence = Sequence([req])
    code = Dataset()
    code.CodeValue = "T-D3000"
    code.CodingSchemeDesignator = "SRT"
    code.CodeMeaning = "Chest"
    ds.AnatomicRegionSequence = Sequence([code])
    ds.add_new(0x00110010, "LO", "ACME HOSPITAL 1.0")
    ds.add_new(0x00111001, "LO", f"{PHI['name_family']} {PHI['patient_id']}")
    ds.Rows = size
    ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.PixelData = (np.arange(size * size, dtype=np.uint16) % 4096).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "PACSHOSPBRUGGE"
    ds.file_meta = meta
    return ds


def make_seg(source: list[Dataset]) -> Dataset:
    """A minimal DICOM-SEG that references its source series (and images)."""
    first = source[0]
    ds = make_ct(
        patient_id=str(first.PatientID),
        study_uid=first.StudyInstanceUID,
        for_uid=first.FrameOfReferenceUID,
    )
    ds.SOPClassUID = SEG_STORAGE
    ds.file_meta.MediaStorageSOPClassUID = SEG_STORAGE
    ds.Modality = "SEG"
    ds.SeriesDescription = "tumour segmentation"
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = first.SeriesInstanceUID
    refs = []
    for src in source:
        ref = Dataset()
        ref.ReferencedSOPClassUID = src.SOPClassUID
        ref.ReferencedSOPInstanceUID = src.SOPInstanceUID
        refs.append(ref)
    ref_series.ReferencedInstanceSequence = Sequence(refs)
    ds.ReferencedSeriesSequence = Sequence([ref_series])
    ds.SourceImageSequence = Sequence([Dataset() for _ in source])
    for item, src in zip(ds.SourceImageSequence, source, strict=True):
        item.ReferencedSOPClassUID = src.SOPClassUID
        item.ReferencedSOPInstanceUID = src.SOPInstanceUID
    del ds.ReferencedImageSequence
    return ds


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def pydicom_test_files() -> list[Path]:
    """Every file shipped in the pydicom wheel's test data (exact paths: no download)."""
    root = Path(pydicom.data.__file__).parent
    skip = {".py", ".pyc", ".json", ".md", ".txt", ".icc", ".dump", ".gz"}
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix not in skip and "__" not in p.name
    )


def deid_data_files() -> list[Path]:
    import deid_data

    root = Path(deid_data.__file__).parent / "data"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".dcm", ".zip"))


@dataclass
class Node:
    store: NodeStore
    ctx: DeidContext
    cas: ContentStore
    quarantine: Path
    root: Path


def make_node(root: Path, *, secret: bytes = SECRET) -> Node:
    store = NodeStore(root / "store.duckdb")
    return Node(
        store,
        DeidContext(secret, PROVIDER),
        ContentStore(root / "images", fsync=False),
        root / "quarantine",
        root,
    )


# ------------------------------------------------------------ independent PHI scan

_SKIP_VR = {
    "OB",
    "OW",
    "OF",
    "OD",
    "OL",
    "OV",
    "UN",
    "UI",
    "DS",
    "IS",
    "TM",
    "US",
    "SS",
    "UL",
    "SL",
    "FL",
    "FD",
    "AT",
}


def _norm(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isalnum())


def identifying_values(src: Dataset) -> set[str]:
    """What a careful reviewer would look for: every person name, the IDs, dates of birth,
    addresses, phones, institution and station, found anywhere in the source."""
    keywords = {
        "PatientID",
        "OtherPatientIDs",
        "AccessionNumber",
        "PatientBirthDate",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "InstitutionName",
        "InstitutionAddress",
        "StationName",
        "InstitutionalDepartmentName",
        "ReferringPhysicianAddress",
        "DeviceSerialNumber",
    }
    found: set[str] = set()

    def walk(ds: Dataset) -> None:
        for elem in ds:
            if elem.tag.is_private:
                continue
            if elem.VR == "SQ":
                for item in elem.value or []:
                    walk(item)
                continue
            if elem.VR == "PN" or elem.keyword in keywords:
                values = elem.value if elem.VM > 1 else [elem.value]
                for value in values:
                    text = str(value or "")
                    for part in text.replace("=", "^").split("^"):
                        if len(_norm(part)) >= 4 and _norm(part) not in {
                            "ANONYMIZED",
                            "ANONYMOUS",
                            "UNKNOWN",
                            "NONE",
                            "NULL",
                            "TEST",
                        }:
                            found.add(_norm(part))

    walk(src)
    manufacturer = _norm(str(src.get("Manufacturer", "") or ""))
    return {v for v in found if not (manufacturer and v in manufacturer)}


def text_values(ds: Dataset) -> Iterator[tuple[str, str]]:
    """(path, normalised text) for every non-binary element at every depth, file meta too."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        for elem in meta:
            if elem.VR not in _SKIP_VR:
                yield f"meta {elem.tag}", _norm(str(elem.value))

    def walk(item: Dataset, prefix: str) -> Iterator[tuple[str, str]]:
        for elem in item:
            if elem.VR == "SQ":
                for i, sub in enumerate(elem.value or []):
                    yield from walk(sub, f"{prefix}{elem.tag}[{i}].")
            elif elem.VR not in _SKIP_VR:
                yield f"{prefix}{elem.tag}", _norm(str(elem.value))

    yield from walk(ds, "")


def independent_leaks(src: Dataset, out: Dataset) -> list[str]:
    """Identifying source values (normalised, as whole tokens) found in the output text."""
    values = identifying_values(src)
    leaks = []
    for path, text in text_values(out):
        for value in values:
            if value in text:
                leaks.append(f"{value[:3]}... at {path}")
    return leaks


def read(source: Path | str | BinaryIO) -> Dataset:
    if isinstance(source, Path | str):
        source = os.fspath(source)
    return pydicom.dcmread(source, force=True)
