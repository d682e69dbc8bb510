"""Pulling studies from a PACS: DICOMweb (QIDO-RS/WADO-RS) and DIMSE (C-FIND + C-MOVE).

Both clients find studies with a :class:`StudyQuery` and yield every instance as a
:class:`~oncofed.node.ingest.images.Source`, which the image ingest de-identifies and indexes
like a file from a folder. Instances are fetched one series (DICOMweb) or one study (DIMSE)
at a time, so memory holds at most that much.

DIMSE uses C-MOVE to this node's own Storage SCP, started for the duration of the pull on
`receive_port`; the PACS must know this node's AE title, host and port (in Orthanc:
``DicomModalities``).
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from oncofed.node.ingest.images import Source

STUDY_UID = "0020000D"
SERIES_UID = "0020000E"
INSTANCES_IN_STUDY = "00201208"
DICOM_MULTIPART = 'multipart/related; type="application/dicom"'


class PacsError(RuntimeError):
    """The PACS could not be reached or refused a request; the message says which."""


@dataclass(frozen=True)
class StudyQuery:
    patient_id: str | None = None
    study_date: str | None = None  # YYYYMMDD or a range YYYYMMDD-YYYYMMDD
    modality: str | None = None
    study_uid: str | None = None


@dataclass(frozen=True)
class StudyRef:
    uid: str
    instances: int | None


class PacsClient(Protocol):
    def find_studies(self, query: StudyQuery) -> list[StudyRef]: ...

    def retrieve(self, studies: Sequence[StudyRef]) -> Iterator[Source]: ...

    def close(self) -> None: ...


def _const(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _first(item: dict[str, Any], tag: str) -> Any:
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


def split_multipart(body: bytes, content_type: str) -> list[bytes]:
    """The parts of a multipart/related body (RFC 2046), headers removed."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise PacsError(f"multipart response without a boundary ({content_type})")
    delimiter = b"--" + match.group(1).encode()
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        _head, sep, payload = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        parts.append(payload[:-2] if payload.endswith(b"\r\n") else payload)
    return parts


class DicomWebClient:
    def __init__(self, base_url: str, *, timeout: float = 60.0, **client: Any) -> None:
        self.base = base_url.rstrip("/")
        self.http = httpx.Client(timeout=timeout, **client)

    def _get(self, url: str, accept: str, params: dict[str, str] | None = None) -> httpx.Response:
        try:
            response = self.http.get(url, params=params, headers={"Accept": accept})
        except httpx.HTTPError as exc:
            raise PacsError(f"DICOMweb server {self.base} unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise PacsError(
                f"DICOMweb {url} answered {response.status_code}: {response.text[:200]}"
            )
        return response

    def find_studies(self, query: StudyQuery) -> list[StudyRef]:
        params = {"includefield": INSTANCES_IN_STUDY}
        for key, value in (
            ("PatientID", query.patient_id),
            ("StudyDate", query.study_date),
            ("ModalitiesInStudy", query.modality),
            ("StudyInstanceUID", query.study_uid),
        ):
            if value:
                params[key] = value
        response = self._get(f"{self.base}/studies", "application/dicom+json", params)
        items = response.json() if response.content else []
        return [
            StudyRef(str(_first(i, STUDY_UID)), _first(i, INSTANCES_IN_STUDY))
            for i in items
            if _first(i, STUDY_UID)
        ]

    def retrieve(self, studies: Sequence[StudyRef]) -> Iterator[Source]:
        for study in studies:
            url = f"{self.base}/studies/{study.uid}/series"
            series = self._get(url, "application/dicom+json").json() or []
            for item in series:
                series_uid = _first(item, SERIES_UID)
                series_url = f"{url}/{series_uid}"
                response = self._get(series_url, DICOM_MULTIPART)
                parts = split_multipart(response.content, response.headers["content-type"])
                for number, part in enumerate(parts, 1):
                    yield Source(f"{series_url}#{number}", _const(part), True)

    def close(self) -> None:
        self.http.close()


class DimseClient:
    """C-FIND (Study Root) and C-MOVE to this node's own Storage SCP (pynetdicom)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        aet: str = "ONCOFED",
        called_aet: str = "ORTHANC",
        receive_port: int = 0,
        timeout: float = 60.0,
    ) -> None:
        self.host, self.port = host, port
        self.aet, self.called_aet = aet, called_aet
        self.receive_port = receive_port
        self.timeout = timeout

    def _ae(self) -> Any:
        from pynetdicom import AE
        from pynetdicom.sop_class import (  # type: ignore[attr-defined]
            StudyRootQueryRetrieveInformationModelFind,
            StudyRootQueryRetrieveInformationModelMove,
        )

        ae = AE(ae_title=self.aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        return ae

    def _associate(self, ae: Any) -> Any:
        assoc = ae.associate(self.host, self.port, ae_title=self.called_aet)
        if not assoc.is_established:
            raise PacsError(
                f"no DICOM association with {self.called_aet}@{self.host}:{self.port}: check "
                f"the host, port and called AE title, and that the PACS accepts {self.aet}"
            )
        return assoc

    def find_studies(self, query: StudyQuery) -> list[StudyRef]:
        from pydicom.dataset import Dataset
        from pynetdicom.sop_class import (  # type: ignore[attr-defined]
            StudyRootQueryRetrieveInformationModelFind,
        )

        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = query.study_uid or ""
        ds.PatientID = query.patient_id or ""
        ds.StudyDate = query.study_date or ""
        ds.ModalitiesInStudy = query.modality or ""
        ds.NumberOfStudyRelatedInstances = ""
        ae = self._ae()
        assoc = self._associate(ae)
        found = []
        try:
            for status, identifier in assoc.send_c_find(
                ds, StudyRootQueryRetrieveInformationModelFind
            ):
                if status is None:
                    raise PacsError("C-FIND timed out or the association was aborted")
                if status.Status in (0xFF00, 0xFF01) and identifier is not None:
                    count = identifier.get("NumberOfStudyRelatedInstances")
                    found.append(
                        StudyRef(
                            str(identifier.StudyInstanceUID),
                            int(count) if count not in (None, "") else None,
                        )
                    )
        finally:
            assoc.release()
        return found

    def retrieve(self, studies: Sequence[StudyRef]) -> Iterator[Source]:
        from pydicom.dataset import Dataset
        from pynetdicom import AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import (  # type: ignore[attr-defined]
            StudyRootQueryRetrieveInformationModelMove,
        )

        received: queue.Queue[bytes] = queue.Queue()

        def on_store(event: Any) -> int:
            received.put(bytes(event.encoded_dataset()))
            return 0x0000

        scp_ae = self._ae()
        scp_ae.supported_contexts = AllStoragePresentationContexts
        server = scp_ae.start_server(
            (
                "127.0.0.1" if self.host in ("127.0.0.1", "localhost") else "0.0.0.0",
                self.receive_port,
            ),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, on_store)],
        )
        lock = threading.Lock()
        try:
            for study in studies:
                ds = Dataset()
                ds.QueryRetrieveLevel = "STUDY"
                ds.StudyInstanceUID = study.uid
                with lock:
                    assoc = self._associate(self._ae())
                    try:
                        for status, _ in assoc.send_c_move(
                            ds, self.aet, StudyRootQueryRetrieveInformationModelMove
                        ):
                            if status is None:
                                raise PacsError("C-MOVE timed out or was aborted")
                            if status.Status not in (0x0000, 0xFF00, 0xFF01, 0xB000):
                                raise PacsError(
                                    f"C-MOVE of study {study.uid} failed with status "
                                    f"0x{status.Status:04X}: does the PACS know "
                                    f"{self.aet} (this node's AE title, host and port)?"
                                )
                    finally:
                        assoc.release()
                number = 0
                while True:
                    try:
                        data = received.get_nowait()
                    except queue.Empty:
                        break
                    number += 1
                    name = f"dimse://{self.called_aet}@{self.host}:{self.port}/{study.uid}#{number}"
                    yield Source(name, _const(data), True)
        finally:
            server.shutdown()

    @property
    def bound_port(self) -> int:
        return self.receive_port

    def close(self) -> None:
        return None
