"""DICOM ingest: folders, files, zip archives and PACS pulls into de-identified, indexed images.

For each source file: read it once, hash it (the ledger key, so the same file twice is stored
once), parse it, collect its identifying values, de-identify it, encode it, run the leak gate
over the encoded bytes, hold it back when its pixels may carry text, and otherwise write it to
the content-addressed folder and index it at patient/study/series/instance level. Every
decision is written to ``ingest_ledger`` (and rejections to ``quarantine``) with its reason.

Writes are grouped in batches: the files of a batch go to the content store first, then one
transaction records the batch. A crash loses at most the open batch, and a rerun completes it
(the same input gives the same bytes, and the content store skips what it already has).
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import duckdb
from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from oncofed.node.cas import ContentStore
from oncofed.node.deid import DeidContext, DeidError, check_output, collect_identifiers
from oncofed.node.deid.burnedin import element_values, hold_reason, hold_reason_of
from oncofed.node.deid.deidentify import deidentify, encode
from oncofed.node.deid.fastpath import FastResult, process
from oncofed.node.ingest.archive import zip_members
from oncofed.node.ingest.common import insert_columns
from oncofed.node.store import NodeStore

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
BATCH_FILES = 256
BATCH_BYTES = 64 * 1024 * 1024
HELD_DIR = "held"
KIND = "dicom"


@dataclass(frozen=True)
class Source:
    """One file to ingest: a name a person can find it by, and how to read its bytes."""

    name: str
    read: Callable[[], bytes]
    keep_copy: bool = False  # no original stays behind (a PACS pull): keep rejected bytes


@dataclass
class Rejection:
    source: str
    reason: str
    detail: str


@dataclass
class IngestReport:
    seen: int = 0
    ingested: int = 0
    duplicates: int = 0
    held: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    bytes_in: int = 0
    seconds: float = 0.0
    rejections: list[Rejection] = field(default_factory=list)
    retried: int = 0  # quarantined by an earlier run and tried again
    warnings: list[str] = field(default_factory=list)  # "file: what pydicom warned about"
    already_held: int = 0  # held for review by an earlier run
    # Patients whose studies disagree about them (pseudonym: what differs).
    conflicts: list[str] = field(default_factory=list)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    def table(self) -> Table:
        table = Table(title="image ingest", show_header=True)
        table.add_column("outcome")
        table.add_column("files", justify="right")
        table.add_row("ingested", str(self.ingested))
        table.add_row("duplicates (already stored)", str(self.duplicates))
        table.add_row("held for review (possible burned-in text)", str(self.held))
        if self.already_held:
            table.add_row("held for review by an earlier run", str(self.already_held))
        for reason, count in sorted(self.quarantined.items()):
            table.add_row(f"quarantined: {reason}", str(count))
        table.add_row("total", str(self.seen))
        if self.retried:
            table.add_row("of them quarantined before, tried again", str(self.retried))
        return table


STUDY_COLUMNS = ("uid", "patient_id", "study_month", "description", "age_at_study", "patient_sex")
SERIES_COLUMNS = (
    "uid",
    "study_uid",
    "patient_id",
    "modality",
    "body_part",
    "manufacturer",
    "model",
    "series_month",
    "description",
    "slice_thickness",
    "rows_",
    "columns_",
    "seg_source_series_uid",
)  # _Instance.series, in order


@dataclass
class _Instance:
    source: Source
    source_hash: str
    data: bytes
    digest: str
    patient: str
    sex: str
    study: tuple[str, str | None, str | None, int | None]
    series: tuple[object, ...]
    sop_uid: str
    sop_class: str


@dataclass
class _Decision:
    source: Source
    source_hash: str
    status: str  # ingested | duplicate | quarantined | held
    reason: str = ""
    detail: str = ""


class QuarantineError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------- sources


def _is_zip(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _zip_sources(path: Path, stack: ExitStack) -> Iterator[Source]:
    archive = stack.enter_context(zipfile.ZipFile(path))
    # Bounded per member, in total and by compression ratio; unsafe names reported.
    for member in zip_members(archive, path):
        yield Source(member.name, member.read)


def _refuse(message: str) -> Callable[[], bytes]:
    def read() -> bytes:
        raise OSError(message)

    return read


def _file_sources(path: Path, stack: ExitStack) -> Iterator[Source]:
    if _is_zip(path):
        try:
            yield from _zip_sources(path, stack)
        except zipfile.BadZipFile as exc:
            yield Source(str(path), _refuse(f"a damaged zip archive ({exc})"))
        return
    yield Source(str(path), path.read_bytes)


def sources_from_paths(paths: Sequence[Path], stack: ExitStack) -> list[Source]:
    """Every file under `paths` (recursively, hidden files skipped), zip members expanded."""
    out: list[Source] = []
    for root in paths:
        if root.is_dir():
            for folder, dirs, files in os.walk(root):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        out.extend(_file_sources(Path(folder) / name, stack))
        elif root.is_file():
            out.extend(_file_sources(root, stack))
        else:
            raise FileNotFoundError(f"{root}: no such file or folder; check the path")
    return out


# ---------------------------------------------------------------- one file


def _parse(data: bytes) -> Dataset:
    if not data:
        raise QuarantineError("empty", "the file is empty")
    has_magic = data[128:132] == b"DICM"
    try:
        ds = dcmread(io.BytesIO(data), force=True)
    except (EOFError, ValueError, InvalidDicomError, OSError, KeyError, TypeError) as exc:
        kind = "truncated" if isinstance(exc, EOFError) or "end of file" in str(exc) else None
        if kind is None and not has_magic:
            raise QuarantineError("not-dicom", "not a DICOM file (no DICM prefix)") from exc
        raise QuarantineError(
            kind or "corrupt", f"the DICOM structure cannot be read: {str(exc)[:200]}"
        ) from exc
    except Exception as exc:
        if not has_magic:
            raise QuarantineError("not-dicom", "not a DICOM file (no DICM prefix)") from exc
        raise QuarantineError("corrupt", f"unreadable DICOM: {str(exc)[:200]}") from exc
    _check_parsed(ds, has_magic)
    return ds


def _check_parsed(ds: Dataset, has_magic: bool) -> None:
    meta = getattr(ds, "file_meta", None)
    media_class = str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else ""
    if media_class == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        raise QuarantineError(
            "dicomdir", "a DICOMDIR (media index), not an image: ingest the folder it indexes"
        )
    if not has_magic and (len(ds) == 0 or "SOPInstanceUID" not in ds):
        raise QuarantineError("not-dicom", "not a DICOM file (no DICM prefix, no SOP instance)")
    if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
        raise QuarantineError(
            "not-image-object",
            "no SOPInstanceUID/SOPClassUID: not a stored DICOM object (a fragment or a "
            "message); export the object from the PACS again",
        )
    _check_pixels(ds)


def _check_pixels(ds: Dataset) -> None:
    if 0x7FE00010 not in ds._dict:
        return
    raw = ds.get_item(0x7FE00010)
    length = len(raw.value) if raw is not None and raw.value is not None else 0
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and getattr(syntax, "is_compressed", False):
        if length == 0:
            raise QuarantineError("truncated", "compressed pixel data is empty or cut short")
        return
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.BitsAllocated)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return
    expected = rows * cols * samples * frames
    expected = (expected + 7) // 8 if bits == 1 else expected * (bits // 8)
    if length < expected:
        raise QuarantineError(
            "truncated",
            f"pixel data has {length} of {expected} bytes: the file was cut short; copy it "
            "again from the source",
        )


def _text(ds: Dataset, keyword: str) -> str | None:
    try:
        value = ds.get(keyword)
    except Exception:
        return None
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _number(ds: Dataset, keyword: str) -> float | None:
    try:
        value = ds.get(keyword)
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _month(value: str | None) -> str | None:
    if value and len(value) >= 6 and value[:6].isdigit():
        return f"{value[:4]}-{value[4:6]}"
    return None


def _age_years(value: str | None) -> int | None:
    if not value or len(value) < 2 or not value[:-1].isdigit():
        return None
    unit = value[-1].upper()
    return int(value[:-1]) if unit == "Y" else 0 if unit in "MWD" else None


def _seg_source(ds: Dataset) -> str | None:
    for item in ds.get("ReferencedSeriesSequence") or []:
        uid = _text(item, "SeriesInstanceUID")
        if uid:
            return uid
    return None


_SEX = {"M": "male", "F": "female", "O": "other"}


def _instance(source: Source, source_hash: str, data: bytes, ctx: DeidContext) -> _Instance:
    """De-identify and gate one file; raises QuarantineError or returns the instance.

    The byte-level fast path (:mod:`oncofed.node.deid.fastpath`) takes the common files and
    gives the same bytes and identifiers as the pydicom path, which takes every other file.
    On the fast path the checks and the index read the few values they need from the bytes
    (:class:`_FastView`): building pydicom datasets for them cost more than the
    de-identification itself."""
    fast = process(data, ctx) if data[128:132] == b"DICM" else None
    fields: _Fields
    if fast is not None:
        view = _FastView(fast)
        _check_fast(view)
        identifiers, encoded = fast.identifiers, fast.encoded
        pseudonym = fast.pseudonym
        held = hold_reason_of(view.source_values)
        fields = view
    else:
        ds = _parse(data)
        try:
            identifiers = collect_identifiers(ds)
            result = deidentify(ds, ctx)
            encoded = encode(result)
        except DeidError as exc:
            raise QuarantineError("deid-refused", str(exc)) from exc
        except Exception as exc:
            raise QuarantineError(
                "deid-failed", f"{type(exc).__name__}: {str(exc)[:200]}; report this file"
            ) from exc
        pseudonym = result.pseudonym
        held = hold_reason(ds)
        fields = _DatasetFields(result.dataset)
    leak = check_output(encoded.scan, identifiers)
    if leak is not None:
        raise QuarantineError("phi-leak", f"{leak}; the file was not published")
    digest = hashlib.sha256(encoded.data).hexdigest()
    if held is not None:
        raise _Held(held, encoded.data, digest)
    text = fields.text
    study_uid = text("StudyInstanceUID") or ""
    series_uid = text("SeriesInstanceUID") or ""
    if not study_uid or not series_uid:
        raise QuarantineError(
            "no-study", "no StudyInstanceUID/SeriesInstanceUID: cannot be indexed"
        )
    sop_class = text("SOPClassUID") or ""
    modality = text("Modality")
    seg = None
    if sop_class == SEG_CLASS or modality == "SEG":
        header = (
            fields.dataset
            if isinstance(fields, _DatasetFields)
            else dcmread(io.BytesIO(encoded.scan[0]), force=True)
        )
        seg = _seg_source(header)
    return _Instance(
        source=source,
        source_hash=source_hash,
        data=encoded.data,
        digest=digest,
        patient=pseudonym,
        sex=_SEX.get((text("PatientSex") or "").upper(), "unknown"),
        study=(
            study_uid,
            _month(text("StudyDate")),
            text("StudyDescription"),
            _age_years(text("PatientAge")),
        ),
        series=(
            series_uid,
            study_uid,
            pseudonym,
            modality,
            text("BodyPartExamined"),
            text("Manufacturer"),
            text("ManufacturerModelName"),
            _month(text("SeriesDate") or text("StudyDate")),
            text("SeriesDescription"),
            fields.number("SliceThickness"),
            fields.integer("Rows"),
            fields.integer("Columns"),
            seg,
        ),
        sop_uid=text("SOPInstanceUID") or "",
        sop_class=sop_class,
    )


class _Fields(Protocol):
    """The output's top-level values the index reads."""

    def text(self, keyword: str) -> str | None: ...

    def number(self, keyword: str) -> float | None: ...

    def integer(self, keyword: str) -> int | None: ...


class _DatasetFields:
    """The index values from a pydicom dataset (the pydicom path)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def text(self, keyword: str) -> str | None:
        return _text(self.dataset, keyword)

    def number(self, keyword: str) -> float | None:
        return _number(self.dataset, keyword)

    def integer(self, keyword: str) -> int | None:
        return int(self.dataset[keyword].value) if keyword in self.dataset else None


_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "SH", "TM", "UI"})


class _FastView:
    """Top-level values of a fast-path result read straight from its bytes where that is
    plain (one ASCII value, or a 2-byte US), and through pydicom, as the pydicom path reads
    them, for anything else."""

    def __init__(self, fast: FastResult) -> None:
        self.fast = fast
        self._source: Dataset | None = None
        self._output: _DatasetFields | None = None

    @property
    def source(self) -> Dataset:
        if self._source is None:
            self._source = self.fast.source
        return self._source

    @property
    def output(self) -> _DatasetFields:
        if self._output is None:
            self._output = _DatasetFields(self.fast.output)
        return self._output

    def source_values(self, keyword: str) -> list[str] | None:
        """The values of a source element as text ([] when empty, None when absent)."""
        tag = tag_for_keyword(keyword)
        element = self.fast.source_element(tag) if tag is not None else None
        if element is None:
            return None
        values = _plain(*element)
        if values is None:
            return element_values(self.source, keyword)
        return [] if not "".join(values).strip() else [v.strip() for v in values]

    def source_text(self, keyword: str) -> str:
        return "\\".join(self.source_values(keyword) or [])

    def text(self, keyword: str) -> str | None:
        tag = tag_for_keyword(keyword)
        element = self.fast.output_element(tag) if tag is not None else None
        if element is None:
            return None
        values = _plain(*element)
        if values is None or len(values) != 1:
            return self.output.text(keyword)
        return values[0].strip() or None

    def number(self, keyword: str) -> float | None:
        text = self.text(keyword)
        try:
            return float(text) if text else None
        except ValueError:
            return self.output.number(keyword)

    def integer(self, keyword: str) -> int | None:
        tag = tag_for_keyword(keyword)
        element = self.fast.output_element(tag) if tag is not None else None
        if element is None:
            return None
        if element[0] == "US" and len(element[1]) == 2:
            return int.from_bytes(element[1], "little")
        return self.output.integer(keyword)

    def source_us(self, keyword: str) -> int | None:
        """A one-valued US of the source, or None when it is absent or anything else."""
        tag = tag_for_keyword(keyword)
        element = self.fast.source_element(tag) if tag is not None else None
        if element is not None and element[0] == "US" and len(element[1]) == 2:
            return int.from_bytes(element[1], "little")
        return None


def _plain(vr: str, value: bytes) -> list[str] | None:
    """The values of a text element when they are plain ASCII, else None."""
    if vr not in _TEXT_VRS or not value.isascii():
        return None
    text = value.decode("ascii")
    if vr == "UI":
        text = text.rstrip("\x00")
    if "\x00" in text:
        return None
    return text.split("\\")


def _check_fast(view: _FastView) -> None:
    """:func:`_check_parsed` for a fast-path result: the fast path takes only files with
    a preamble, SOP instance and class UIDs, no directory records and native pixel data;
    what is left is the media class and the pixel data's length."""
    if view.source_text("MediaStorageSOPClassUID") == DICOMDIR_CLASS:
        raise QuarantineError(
            "dicomdir", "a DICOMDIR (media index), not an image: ingest the folder it indexes"
        )
    fast = view.fast
    length = fast.source_length(0x7FE00010)
    if length is None:
        if fast.source_element(0x7FE00010) is not None:
            _check_pixels(view.source)  # pixel data read as a sequence: as the pydicom path
        return
    rows, cols, bits = (view.source_us(k) for k in ("Rows", "Columns", "BitsAllocated"))
    samples = view.source_us("SamplesPerPixel") if fast.source_element(0x00280002) else 1
    frames_text = view.source_text("NumberOfFrames")
    if rows is None or cols is None or bits is None or samples is None:
        _check_pixels(view.source)  # absent or unusual: exactly as the pydicom path
        return
    if frames_text and not frames_text.isdigit():
        _check_pixels(view.source)
        return
    frames = int(frames_text or 1) or 1
    expected = rows * cols * (samples or 1) * frames
    expected = (expected + 7) // 8 if bits == 1 else expected * (bits // 8)
    if length < expected:
        raise QuarantineError(
            "truncated",
            f"pixel data has {length} of {expected} bytes: the file was cut short; copy it "
            "again from the source",
        )


class _Held(Exception):
    def __init__(self, why: str, data: bytes, digest: str) -> None:
        super().__init__(why)
        self.why = why
        self.data = data
        self.digest = digest


# ---------------------------------------------------------------- the run


class ImageIngest:
    """One ingest run against a store; feed it sources, then read its report."""

    def __init__(
        self,
        store: NodeStore,
        ctx: DeidContext,
        cas: ContentStore,
        quarantine_dir: Path,
        *,
        dataset_id: str | None = None,
    ) -> None:
        self.store = store
        self.ctx = ctx
        self.cas = cas
        self.quarantine_dir = quarantine_dir
        self.held = ContentStore(quarantine_dir / HELD_DIR, fsync=cas.fsync)
        self.dataset_id = dataset_id or f"{ctx.provider_id}-imaging"
        self.report = IngestReport()
        self._seen: set[str] = set()
        self._pending: list[_Instance] = []
        self._decisions: list[_Decision] = []
        self._pending_bytes = 0
        self.cas.sweep()

    def _ledger(self, hashes: list[str]) -> dict[str, str]:
        """The ledger status of the hashes already recorded: one query for a batch."""
        if not hashes:
            return {}
        with self.store.reading() as con:
            rows = con.execute(
                "SELECT source_hash, status FROM ingest_ledger "
                "WHERE source_hash IN (SELECT unnest(?))",
                [hashes],
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def add(self, source: Source) -> None:
        self.add_many([source])

    def add_many(self, sources: Iterable[Source], done: Callable[[], None] | None = None) -> None:
        """Read the sources in batches (BATCH_FILES files or BATCH_BYTES bytes): the ledger
        is asked once per batch which of them are known. ``done`` is called per source."""
        chunk: list[tuple[Source, bytes | OSError]] = []
        size = 0
        for source in sources:
            try:
                data: bytes | OSError = source.read()
            except OSError as exc:
                data = exc
            chunk.append((source, data))
            size += len(data) if isinstance(data, bytes) else 0
            if len(chunk) >= BATCH_FILES or size >= BATCH_BYTES:
                self._take(chunk, done)
                chunk, size = [], 0
        self._take(chunk, done)

    def _take(
        self, chunk: list[tuple[Source, bytes | OSError]], done: Callable[[], None] | None
    ) -> None:
        hashes = [
            hashlib.sha256(data).hexdigest() if isinstance(data, bytes) else "" for _, data in chunk
        ]
        status = self._ledger([h for h in dict.fromkeys(hashes) if h and h not in self._seen])
        for (source, data), source_hash in zip(chunk, hashes, strict=True):
            self._one(source, data, source_hash, status.get(source_hash))
            if done is not None:
                done()

    def _one(
        self, source: Source, data: bytes | OSError, source_hash: str, recorded: str | None
    ) -> None:
        report = self.report
        report.seen += 1
        if isinstance(data, OSError):
            digest = hashlib.sha256(source.name.encode()).hexdigest()
            self._reject(source, digest, None, "unreadable", f"cannot read it: {data}")
            return
        report.bytes_in += len(data)
        if source_hash in self._seen or recorded in ("ingested", "duplicate"):
            report.duplicates += 1
            return
        if recorded == "held":
            report.already_held += 1
            return
        if recorded is not None:  # quarantined before: the rules may have changed, try again
            report.retried += 1
        self._seen.add(source_hash)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                instance = _instance(source, source_hash, data, self.ctx)
        except QuarantineError as exc:
            self._reject(source, source_hash, data, exc.reason, exc.detail)
        except _Held as held:
            stored = self.held.put(held.data, held.digest)
            report.held += 1
            detail = f"{held.why}; de-identified copy for review: {stored.path}"
            if len(report.rejections) < 1000:
                report.rejections.append(Rejection(source.name, "held-for-review", detail))
            self._decisions.append(
                _Decision(source, source_hash, "held", "held-for-review", detail)
            )
        else:
            self._pending.append(instance)
            self._pending_bytes += len(instance.data)
            # pydicom's warnings about the file (invalid values ...), with the file's name.
            for w in caught[: max(0, 1000 - len(report.warnings))]:
                report.warnings.append(f"{source.name}: {w.message}")
        if len(self._pending) + len(self._decisions) >= BATCH_FILES or (
            self._pending_bytes >= BATCH_BYTES
        ):
            self.flush()

    def _reject(
        self, source: Source, source_hash: str, data: bytes | None, reason: str, detail: str
    ) -> None:
        if source.keep_copy and data:
            self.quarantine_dir.mkdir(parents=True, exist_ok=True)
            kept = self.quarantine_dir / f"{source_hash}.bin"
            if not kept.exists():
                kept.write_bytes(data)
            detail = f"{detail} (original kept as {kept.name})"
        self.report.quarantined[reason] += 1
        if len(self.report.rejections) < 1000:
            self.report.rejections.append(Rejection(source.name, reason, detail))
        self._decisions.append(_Decision(source, source_hash, "quarantined", reason, detail))

    def flush(self) -> None:
        """Store the open batch: content files first, then one transaction."""
        pending, decisions = self._pending, self._decisions
        self._pending, self._decisions, self._pending_bytes = [], [], 0
        if not pending and not decisions:
            return
        existing: dict[str, str] = {}
        if pending:
            uids = list({p.sop_uid for p in pending})
            with self.store.reading() as con:
                rows = con.execute(
                    "SELECT sop_uid, content_hash FROM imaging_instance "
                    "WHERE sop_uid IN (SELECT unnest(?))",
                    [uids],
                ).fetchall()
            existing = {r[0]: r[1] for r in rows}
        fresh: list[_Instance] = []
        for inst in pending:
            prior = existing.get(inst.sop_uid)
            if prior is not None:
                same = prior == inst.digest
                detail = (
                    "the same de-identified instance is already stored"
                    if same
                    else f"SOP instance already stored with other content ({prior[:12]}); "
                    "the first copy is kept"
                )
                self.report.duplicates += 1
                decisions.append(_Decision(inst.source, inst.source_hash, "duplicate", "", detail))
                continue
            existing[inst.sop_uid] = inst.digest
            fresh.append(inst)
            decisions.append(_Decision(inst.source, inst.source_hash, "ingested"))
        self.cas.put_many([(i.data, i.digest) for i in fresh])  # files first, then the rows
        self._record(fresh, decisions)
        self.report.ingested += len(fresh)

    def _settle_sex(self, cur: duckdb.DuckDBPyConnection, patients: list[str]) -> None:
        """Apply :func:`settle_sex` to the batch's patients, over all their studies."""
        rows = cur.execute(
            "SELECT p.id, p.sex, p.source, list(s.patient_sex) FROM patient p "
            "JOIN imaging_study s ON s.patient_id = p.id "
            "WHERE p.id IN (SELECT unnest(?)) GROUP BY p.id, p.sex, p.source",
            [patients],
        ).fetchall()
        changes = []
        for pid, stored, source, written in rows:
            sex, conflict = settle_sex(stored, source, [w for w in written if w])
            if sex != stored:
                changes.append([sex, pid])
            if conflict and len(self.report.conflicts) < 1000:
                self.report.conflicts.append(f"patient {pid[:24]}: sex: {conflict}")
        if changes:
            cur.executemany("UPDATE patient SET sex = ? WHERE id = ?", changes)

    def _record(self, fresh: list[_Instance], decisions: list[_Decision]) -> None:
        with self.store.transaction() as cur:
            if fresh:
                patients = {(i.patient, i.sex) for i in fresh}
                known = {
                    r[0]
                    for r in cur.execute(
                        "SELECT id FROM patient WHERE id IN (SELECT unnest(?))",
                        [sorted({p for p, _ in patients})],
                    ).fetchall()
                }
                if any(p not in known for p, _ in patients):
                    # Patients new to the node join the imaging dataset; those the clinical
                    # import already placed keep their dataset.
                    cur.execute(
                        "INSERT INTO dataset (id, name, description) VALUES (?, ?, ?) "
                        "ON CONFLICT DO NOTHING",
                        [
                            self.dataset_id,
                            f"{self.ctx.provider_id} imaging",
                            "De-identified DICOM images ingested at the node",
                        ],
                    )
                insert_columns(
                    cur,
                    "patient",
                    ("id", "dataset_id", "sex", "source"),
                    [(p, self.dataset_id, s, "dicom") for p, s in sorted(patients)],
                    "ON CONFLICT DO NOTHING",
                )
                studies = {i.study[0]: (i.study, i.patient, i.sex) for i in fresh}
                insert_columns(
                    cur,
                    "imaging_study",
                    STUDY_COLUMNS,
                    [(s[0], p, s[1], s[2], s[3], x) for s, p, x in studies.values()],
                    "ON CONFLICT DO NOTHING",
                )
                self._settle_sex(cur, sorted({p for p, _ in patients}))
                series = {i.series[0]: i.series for i in fresh}
                insert_columns(
                    cur,
                    "imaging_series",
                    SERIES_COLUMNS,
                    list(series.values()),
                    "ON CONFLICT DO NOTHING",
                )
                insert_columns(
                    cur,
                    "imaging_instance",
                    ("sop_uid", "series_uid", "sop_class_uid", "content_hash", "size_bytes"),
                    [(i.sop_uid, i.series[0], i.sop_class, i.digest, len(i.data)) for i in fresh],
                )
                cur.execute(
                    "UPDATE imaging_series SET num_instances = (SELECT count(*) FROM "
                    "imaging_instance i WHERE i.series_uid = imaging_series.uid) "
                    "WHERE uid IN (SELECT unnest(?))",
                    [list(series)],
                )
            # A file quarantined by an earlier run and tried again replaces its record.
            insert_columns(
                cur,
                "ingest_ledger",
                ("source_hash", "source_path", "kind", "status", "records", "detail"),
                [
                    (
                        d.source_hash,
                        d.source.name,
                        KIND,
                        d.status,
                        1 if d.status == "ingested" else 0,
                        f"{d.reason}: {d.detail}" if d.reason else d.detail or None,
                    )
                    for d in decisions
                ],
                "ON CONFLICT (source_hash) DO UPDATE SET source_path = excluded.source_path, "
                "status = excluded.status, records = excluded.records, "
                "detail = excluded.detail, recorded_at = now()",
            )
            cur.execute(
                "DELETE FROM quarantine WHERE source_hash IN (SELECT unnest(?))",
                [[d.source_hash for d in decisions]],
            )
            insert_columns(
                cur,
                "quarantine",
                ("source_hash", "source_path", "reason", "detail"),
                [
                    (d.source_hash, d.source.name, d.reason, d.detail)
                    for d in decisions
                    if d.status in ("quarantined", "held")
                ],
            )


def settle_sex(stored: str, source: str | None, written: list[str]) -> tuple[str, str | None]:
    """A patient's sex from what its studies say; (sex to store, conflict or None).

    The rule: studies that agree (``unknown`` aside) give the patient their sex; studies
    that disagree make it ``unknown`` (the patient counts under unknown, never under both
    or under whichever was read first) and the conflict is reported. A patient created by a
    clinical import keeps the sex it recorded; a study that says otherwise is reported."""
    known = sorted({s for s in written if s and s != "unknown"})
    if source not in (None, "dicom"):
        if known and (len(known) > 1 or (stored != "unknown" and known != [stored])):
            return stored, f"clinical record says {stored}, studies say {'/'.join(known)}"
        return stored, None
    if len(known) > 1:
        return "unknown", f"studies say {'/'.join(known)}: counted as unknown"
    return (known[0] if known else "unknown"), None


def ingest_sources(
    sources: Iterable[Source],
    store: NodeStore,
    ctx: DeidContext,
    cas: ContentStore,
    quarantine_dir: Path,
    *,
    total: int | None = None,
    progress: bool = True,
    console: Console | None = None,
    description: str = "ingesting images",
) -> IngestReport:
    """Ingest any stream of sources (files, zip members, PACS instances)."""
    run = ImageIngest(store, ctx, cas, quarantine_dir)
    started = time.perf_counter()
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
        task = bar.add_task(description, total=total)
        run.add_many(sources, lambda: bar.advance(task))
        run.flush()
    run.report.seconds = time.perf_counter() - started
    return run.report


def ingest_images(
    paths: Sequence[Path],
    store: NodeStore,
    ctx: DeidContext,
    cas: ContentStore,
    quarantine_dir: Path,
    progress: bool = True,
    console: Console | None = None,
) -> IngestReport:
    """Ingest folders (recursively), single files and zip archives."""
    with ExitStack() as stack:
        sources = sources_from_paths(paths, stack)
        return ingest_sources(
            sources,
            store,
            ctx,
            cas,
            quarantine_dir,
            total=len(sources),
            progress=progress,
            console=console,
        )
