"""Orthanc end to end: files stored into a real Orthanc are pulled (DICOMweb and DIMSE),
de-identified and indexed. Orthanc comes from the Debian packages `orthanc` and
`orthanc-dicomweb`; the fixture starts it on free loopback ports with its own storage."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from oncofed.node.ingest.images import ingest_sources
from oncofed.node.pacs import DicomWebClient, DimseClient, StudyQuery
from tests.imaging_fixtures import PHI, independent_leaks, make_ct, make_node, make_seg, read

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")

# In CI the Orthanc tests must run: .ci/run installs the packages, and a missing Orthanc
# fails there instead of skipping.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("CI", "").lower() != "true"
        and (not Path(ORTHANC).exists() or not DICOMWEB_PLUGIN.exists()),
        reason="Orthanc not installed (apt-get install orthanc orthanc-dicomweb)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Orthanc:
    http: str
    dicom_port: int
    move_port: int


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    root = tmp_path_factory.mktemp("orthanc")
    http_port, dicom_port, move_port = _free_port(), _free_port(), _free_port()
    config = {
        "Name": "oncofed-test",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "DicomModalities": {"oncofed": ["ONCOFED", "127.0.0.1", move_port]},
        "ConcurrentJobs": 1,
    }
    (root / "orthanc.json").write_text(json.dumps(config))
    log = (root / "orthanc.log").open("wb")
    proc = subprocess.Popen([ORTHANC, str(root / "orthanc.json")], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/system", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "orthanc.log").read_text()[-2000:])
            time.sleep(0.2)
        yield Orthanc(url, dicom_port, move_port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _upload(orthanc: Orthanc, datasets: list) -> None:  # type: ignore[type-arg]
    from pydicom.filebase import DicomBytesIO

    for ds in datasets:
        buf = DicomBytesIO()
        ds.save_as(buf, enforce_file_format=True)
        r = httpx.post(f"{orthanc.http}/instances", content=buf.getvalue(), timeout=10)
        assert r.status_code == 200, r.text


def _study(patient_id: str) -> list:  # type: ignore[type-arg]
    ct = [make_ct(patient_id=patient_id, instance=1)]
    study = ct[0].StudyInstanceUID
    series = ct[0].SeriesInstanceUID
    ct += [
        make_ct(
            patient_id=patient_id,
            study_uid=study,
            series_uid=series,
            instance=i,
            for_uid=ct[0].FrameOfReferenceUID,
        )
        for i in range(2, 4)
    ]
    return [*ct, make_seg(ct)]


def _check(node, sources: list) -> None:  # type: ignore[no-untyped-def,type-arg]
    with node.store.reading() as con:
        rows = con.execute(
            "SELECT modality, num_instances, seg_source_series_uid, uid FROM imaging_series "
            "ORDER BY modality"
        ).fetchall()
    (ct, seg) = rows
    assert ct[:2] == ("CT", 3) and seg[0] == "SEG" and seg[2] == ct[3]
    published = sorted(node.cas.root.rglob("*.dcm"))
    assert len(published) == 4
    for path in published:
        out = read(path)
        assert independent_leaks(sources[0], out) == []
        assert out.PatientID == node.ctx.pseudonym(str(sources[0].PatientID))


def test_pull_over_dicomweb(orthanc: Orthanc, tmp_path: Path) -> None:
    sources = _study("WEB-" + PHI["patient_id"])
    _upload(orthanc, sources)
    node = make_node(tmp_path)
    client = DicomWebClient(f"{orthanc.http}/dicom-web")
    try:
        studies = client.find_studies(StudyQuery(patient_id=str(sources[0].PatientID)))
        assert [s.uid for s in studies] == [sources[0].StudyInstanceUID]
        report = ingest_sources(
            client.retrieve(studies),
            node.store,
            node.ctx,
            node.cas,
            node.quarantine,
            progress=False,
        )
    finally:
        client.close()
    assert report.ingested == 4, report.rejections
    _check(node, sources)
    again = ingest_sources(
        DicomWebClient(f"{orthanc.http}/dicom-web").retrieve(studies),
        node.store,
        node.ctx,
        node.cas,
        node.quarantine,
        progress=False,
    )
    assert again.duplicates == 4 and again.ingested == 0


def test_pull_over_dimse(orthanc: Orthanc, tmp_path: Path) -> None:
    sources = _study("DIMSE-" + PHI["patient_id"])
    _upload(orthanc, sources)
    node = make_node(tmp_path)
    client = DimseClient(
        "127.0.0.1",
        orthanc.dicom_port,
        aet="ONCOFED",
        called_aet="ORTHANC",
        receive_port=orthanc.move_port,
        timeout=20,
    )
    studies = client.find_studies(StudyQuery(patient_id=str(sources[0].PatientID)))
    assert [s.uid for s in studies] == [sources[0].StudyInstanceUID]
    report = ingest_sources(
        client.retrieve(studies), node.store, node.ctx, node.cas, node.quarantine, progress=False
    )
    assert report.ingested == 4, report.rejections
    _check(node, sources)


def test_pull_through_the_running_node(orthanc: Orthanc, make_federation) -> None:  # type: ignore[no-untyped-def]
    """`oncofed node pull` while the node serves: the service pulls into its own store."""
    import sys

    sources = _study("LIVE-" + PHI["patient_id"])
    _upload(orthanc, sources)
    fed = make_federation(nodes=1)
    node_dir = fed.nodes["node-1"].directory
    out = subprocess.run(
        [sys.executable, "-m", "oncofed", "node", "pull", "--dir", str(node_dir),
         "--dicomweb", f"{orthanc.http}/dicom-web", "--patient-id", str(sources[0].PatientID)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "the node service holds the store" in out.stderr
    assert re.search(r"ingested\s+│\s+4", out.stdout), out.stdout
    info = httpx.get(f"{fed.nodes['node-1'].url}/info", timeout=30).json()
    assert any(d["id"].endswith("-imaging") for d in info["datasets"]), info
