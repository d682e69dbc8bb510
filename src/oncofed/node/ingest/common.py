"""What the clinical and genomic importers share: errors, ledger, pseudonyms, report.

Every importer follows the same rules (ARCHITECTURE "Data at a node"):

- an import (a file, or the files of one export) is loaded completely or not at all: one
  :meth:`NodeStore.transaction`, which also creates its dataset, so a failed import leaves
  nothing behind, not even an empty dataset;
- an import whose content hash is already in ``ingest_ledger`` for the same dataset is
  skipped, so a rerun changes nothing;
- a bad row, code or file raises :class:`RecordError`, which names the file, the line or
  record, the field and the expected form; the file is then recorded in ``quarantine`` with
  that message and nothing of it is stored;
- source identifiers become keyed pseudonyms (:func:`oncofed.security.pseudonym.pseudonymise`,
  the same function DICOM de-identification uses), so images, clinical records and variants
  of one patient link and the source id is never stored.
"""

from __future__ import annotations

import csv
import hashlib
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
from rich.console import Console
from rich.table import Table

from oncofed.node.store import NodeStore
from oncofed.security.pseudonym import load_secret, pseudonymise
from oncofed.settings import NodeSettings, load_node_settings

ACCESS_LEVELS = ("public", "registered", "controlled")


# Additions to the node store the clinical and genomic importers and the Beacon API need.
class RecordError(ValueError):
    """A bad row, code or file: names the file, the record, the field and the expected form."""

    def __init__(
        self,
        file: str,
        record: str,
        field_name: str,
        expected: str,
        found: object = None,
    ) -> None:
        self.file = file
        self.record = record
        self.field = field_name
        self.expected = expected
        self.found = found
        got = "" if found is None else f", found {str(found)[:80]!r}"
        super().__init__(f"{file}: {record}: field {field_name!r}: expected {expected}{got}")


# ------------------------------------------------------------------ pseudonyms


@dataclass(frozen=True)
class Pseudonyms:
    """The node's keyed pseudonyms for each kind of source identifier."""

    secret: bytes = field(repr=False)
    provider_id: str

    def patient(self, source_id: str) -> str:
        return pseudonymise(self.secret, self.provider_id, source_id, "patient")

    def of(self, kind: str, source_id: str) -> str:
        return pseudonymise(self.secret, self.provider_id, source_id, kind)


@dataclass
class NodeTarget:
    """What an importer writes into: the node's store and its pseudonym key."""

    settings: NodeSettings
    store: NodeStore
    pseudonyms: Pseudonyms

    @classmethod
    def open(cls, node_dir: Path) -> NodeTarget:
        settings = load_node_settings(node_dir)
        provider = settings.provider_id or settings.name
        secret = load_secret(settings.resolve(settings.secret_file))
        store = NodeStore(settings.resolve(settings.store_file))
        return cls(settings, store, Pseudonyms(secret, provider))

    def default_dataset(self, kind: str) -> str:
        return f"{self.pseudonyms.provider_id}-{kind}"

    def close(self) -> None:
        self.store.close()


# ------------------------------------------------------------------ ledger and report


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class FileOutcome:
    path: str
    kind: str
    status: str  # ingested | unchanged | rejected
    records: int = 0
    detail: str = ""
    seconds: float = 0.0


@dataclass
class ImportReport:
    title: str
    files: list[FileOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ingested(self) -> int:
        return sum(1 for f in self.files if f.status == "ingested")

    @property
    def unchanged(self) -> int:
        return sum(1 for f in self.files if f.status == "unchanged")

    @property
    def rejected(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "rejected"]

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files if f.status == "ingested")

    def table(self) -> Table:
        table = Table(title=self.title)
        table.add_column("file")
        table.add_column("outcome")
        table.add_column("records", justify="right")
        table.add_column("detail")
        for f in self.files:
            colour = {"ingested": "green", "unchanged": "dim", "rejected": "red"}[f.status]
            table.add_row(Path(f.path).name, f"[{colour}]{f.status}[/]", str(f.records), f.detail)
        table.add_row(
            "total",
            f"{self.ingested} ingested, {self.unchanged} unchanged, {len(self.rejected)} rejected",
            str(self.records),
            "",
        )
        return table

    def print(self, console: Console | None = None) -> None:
        (console or Console()).print(self.table())


Loader = Callable[[duckdb.DuckDBPyConnection], tuple[int, str]]


@dataclass(frozen=True)
class TargetDataset:
    """The dataset an import writes into; created by the import's own transaction, so a
    rejected import leaves no empty dataset behind for the catalogue to publish."""

    id: str
    name: str | None = None
    description: str = ""
    access_level: str | None = None


def prepare_dataset(store: NodeStore, spec: TargetDataset) -> None:
    """Check the access level before anything is read; apply it to an existing dataset
    (a rerun with ``--access-level`` changes the level even when no file is new)."""
    if spec.access_level is not None and spec.access_level not in ACCESS_LEVELS:
        raise ValueError(
            f"dataset access level {spec.access_level!r}: expected one of "
            f"{', '.join(ACCESS_LEVELS)}"
        )
    if spec.access_level is not None:
        with store.transaction() as cur:
            cur.execute(
                "UPDATE dataset SET access_level = ? WHERE id = ?", [spec.access_level, spec.id]
            )


def ledger_key(content_hash: str, dataset: str) -> str:
    """The ledger's key of an import: what was read *and* where it went. The same file
    imported into another dataset is a new import, not "unchanged"."""
    return hashlib.sha256(f"{content_hash}:{dataset}".encode()).hexdigest()


def import_file(
    store: NodeStore,
    report: ImportReport,
    path: Path,
    kind: str,
    load: Loader,
    dataset: TargetDataset,
    source_hash: str | None = None,
) -> FileOutcome:
    """Run ``load`` for one file inside one transaction, with ledger and quarantine."""
    return import_unit(store, report, [(path, load)], kind, dataset, source_hash)[0]


def import_unit(
    store: NodeStore,
    report: ImportReport,
    parts: Sequence[tuple[Path, Loader]],
    kind: str,
    dataset: TargetDataset,
    source_hash: str | None = None,
) -> list[FileOutcome]:
    """Import several files as one: all of them in one transaction, or none.

    Each ``load`` writes its file's records with the cursor it is given and returns
    ``(records, detail)``; a :class:`RecordError` (or ``ValueError``, ``OSError``) rolls
    the whole unit back, dataset row included, and quarantines it with the message, which
    names the file and line that stopped it. The ledger records the unit under
    :func:`ledger_key` (content and dataset), so a rerun skips it.
    """
    started = time.perf_counter()
    paths = [p for p, _ in parts]
    digest = (
        source_hash
        or hashlib.sha256("".join(f"{file_hash(p)};" for p in paths).encode()).hexdigest()
    )
    key = ledger_key(digest, dataset.id)
    with store.reading() as con:
        # Rows written before the ledger knew datasets are keyed by content alone.
        seen = con.execute(
            "SELECT records FROM ingest_ledger WHERE status = 'ingested' AND "
            "(source_hash = ? OR (source_hash = ? AND dataset_id IS NULL))",
            [key, digest],
        ).fetchone()
    if seen is not None:
        outcomes = [
            FileOutcome(str(p), kind, "unchanged", int(seen[0]) if i == 0 else 0,
                        "already ingested into " + dataset.id)
            for i, p in enumerate(paths)
        ]  # fmt: skip
        report.files.extend(outcomes)
        return outcomes
    where = str(paths[0]) if len(paths) == 1 else str(paths[0].parent)
    done: list[tuple[int, str]] = []
    try:
        with store.transaction() as cur:
            ensure_dataset(cur, dataset.id, dataset.name, dataset.description, dataset.access_level)
            for _, load in parts:
                done.append(load(cur))
            cur.execute(
                "INSERT INTO ingest_ledger (source_hash, source_path, kind, status, records, "
                "detail, dataset_id) VALUES (?, ?, ?, 'ingested', ?, ?, ?)",
                [key, where, kind, sum(r for r, _ in done),
                 "; ".join(d for _, d in done if d) or None, dataset.id],
            )  # fmt: skip
            cur.execute("DELETE FROM quarantine WHERE source_hash = ?", [key])
    except (RecordError, ValueError, OSError) as exc:
        with store.transaction() as cur:
            cur.execute(
                "INSERT INTO quarantine (source_hash, source_path, reason, detail) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (source_hash) DO UPDATE SET "
                "reason = excluded.reason, detail = excluded.detail, "
                "recorded_at = now()",
                [key, where, f"{kind}-invalid", str(exc)],
            )
        failed = paths[len(done)] if len(done) < len(paths) else paths[-1]
        outcomes = [
            FileOutcome(
                str(p), kind, "rejected", 0,
                str(exc) if p == failed
                else f"not loaded: {failed.name} was rejected (one import: all or nothing)",
            )
            for p in paths
        ]  # fmt: skip
    else:
        outcomes = [
            FileOutcome(str(p), kind, "ingested", r, d)
            for p, (r, d) in zip(paths, done, strict=True)
        ]
    seconds = time.perf_counter() - started
    for o in outcomes:
        o.seconds = seconds / len(outcomes)
    report.files.extend(outcomes)
    return outcomes


# ------------------------------------------------------------------ writing helpers


def ensure_dataset(
    cur: duckdb.DuckDBPyConnection,
    dataset_id: str,
    name: str | None = None,
    description: str = "",
    access_level: str | None = None,
) -> None:
    if access_level is not None and access_level not in ACCESS_LEVELS:
        raise ValueError(
            f"dataset access level {access_level!r}: expected one of {', '.join(ACCESS_LEVELS)}"
        )
    cur.execute(
        "INSERT INTO dataset (id, name, description, access_level) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        [dataset_id, name or dataset_id, description, access_level or "registered"],
    )
    if access_level is not None:
        cur.execute("UPDATE dataset SET access_level = ? WHERE id = ?", [access_level, dataset_id])


def upsert_patient(cur: duckdb.DuckDBPyConnection, rows: Sequence[tuple[Any, ...]]) -> None:
    """(pseudonym, dataset, sex or None, birth year or None, source); known values kept.

    A patient first seen in images keeps its dataset; sex and birth year fill in or update.
    """
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    cur.execute(
        "INSERT INTO patient (id, dataset_id, sex, birth_year, source) "
        "SELECT id, ds, coalesce(sex, 'unknown'), CAST(yr AS INTEGER), src FROM (SELECT "
        "unnest(?) AS id, unnest(?) AS ds, unnest(CAST(? AS VARCHAR[])) AS sex, "
        "unnest(CAST(? AS BIGINT[])) AS yr, unnest(?) AS src) "
        "ON CONFLICT (id) DO UPDATE SET "
        "sex = CASE WHEN excluded.sex = 'unknown' THEN patient.sex ELSE excluded.sex END, "
        "birth_year = coalesce(excluded.birth_year, patient.birth_year)",
        [list(c) for c in columns],
    )


def replace_rows(
    cur: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    key: str = "id",
) -> int:
    """Insert rows, replacing any with the same key (a corrected export supersedes).

    Rows go in as one statement over column lists (``executemany`` costs a round trip per
    row in DuckDB).
    """
    batch = {r[list(columns).index(key)]: list(r) for r in rows}  # the last row of a key wins
    if not batch:
        return 0
    cur.execute(f"DELETE FROM {table} WHERE list_contains(?, {key})", [list(batch)])
    types = {
        name: str(t)
        for name, t in cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? AND table_schema = 'main'",
            [table],
        ).fetchall()
    }
    selects = ", ".join(f"unnest(CAST(? AS {types.get(c, 'VARCHAR')}[])) AS {c}" for c in columns)
    values = [list(c) for c in zip(*batch.values(), strict=True)]
    cur.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} "
        f"FROM (SELECT {selects})",
        values,
    )
    return len(batch)


_column_types: dict[str, dict[str, str]] = {}


def insert_columns(
    cur: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    conflict: str = "",
) -> None:
    """Insert rows as one statement over column lists (DuckDB's ``executemany`` costs a
    round trip per row: most of an image batch's time); ``conflict``: an ``ON CONFLICT``
    clause."""
    if not rows:
        return
    types = _column_types.get(table)
    if types is None:
        types = _column_types[table] = {
            name: str(t)
            for name, t in cur.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = ? AND table_schema = 'main'",
                [table],
            ).fetchall()
        }
    selects = ", ".join(f"unnest(CAST(? AS {types.get(c, 'VARCHAR')}[])) AS {c}" for c in columns)
    cur.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} "
        f"FROM (SELECT {selects}) {conflict}",
        [list(c) for c in zip(*rows, strict=True)],
    )


class CsvSink:
    """Rows streamed to a temporary CSV, then read by DuckDB (no pandas/arrow needed)."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self._fh = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)
        self._writer.writerow(columns)
        self.write = self._writer.writerow

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def sql(self) -> str:
        """A ``read_csv`` table expression over the file (closes it first)."""
        self.close()
        path = str(self.path).replace("'", "''")
        return f"read_csv('{path}', header = true, all_varchar = true, quote = '\"')"


@contextmanager
def bulk_csv(*tables: Sequence[str]) -> Iterator[list[CsvSink]]:
    """One temporary CSV sink per column list, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="oncofed-ingest-") as tmp:
        sinks = [CsvSink(Path(tmp) / f"t{i}.csv", cols) for i, cols in enumerate(tables)]
        try:
            yield sinks
        finally:
            for s in sinks:
                s.close()


# ------------------------------------------------------------------ values


SEXES = {
    "male": "male",
    "m": "male",
    "female": "female",
    "f": "female",
    "other": "other",
    "unknown": "unknown",
    "u": "unknown",
}


def parse_date(value: str, fmt: str | None = None) -> date:
    if fmt:
        return datetime.strptime(value, fmt).date()
    return date.fromisoformat(value[:10])


def days_between(start: date | None, end: date | None) -> int | None:
    if start is None or end is None:
        return None
    return (end - start).days


def age_at(birth: date, when: date) -> int:
    return when.year - birth.year - ((when.month, when.day) < (birth.month, birth.day))


# The CDM columns each importer writes, per table (the node store's schema, in insert order).
COLUMNS: dict[str, tuple[str, ...]] = {
    "disease": (
        "id",
        "patient_id",
        "icd10",
        "topography",
        "morphology",
        "site_snomed",
        "diagnosis_year",
        "age_at_diagnosis",
        "t_stage",
        "n_stage",
        "m_stage",
        "stage_group",
        "grade",
    ),
    "tumour": ("id", "patient_id", "disease_id", "body_site", "laterality", "size_mm"),
    "biomarker": ("id", "patient_id", "disease_id", "name", "value_code", "value_number", "day"),
    "biosample": ("id", "patient_id", "sample_type", "collection_day", "dataset_id"),
    "treatment": (
        "id",
        "patient_id",
        "disease_id",
        "kind",
        "agent",
        "start_day",
        "end_day",
        "code",
        "code_system",
        "intent",
    ),
    "outcome": ("patient_id", "vital_status", "survival_days", "event"),
}


def run_import(node_dir: Path, ingest: Callable[[NodeTarget], ImportReport]) -> ImportReport:
    """Open the node's store, run one importer, close the store, print the report."""
    target = NodeTarget.open(node_dir)
    try:
        report = ingest(target)
    finally:
        target.close()
    report.print(Console())
    return report
