"""Raw (not yet disclosure-controlled) counts of a query, per dataset of a node store.

These numbers never leave the node as they are: :mod:`oncofed.privacy` turns them into the
released answer.

Counting reads the *search index* (:data:`oncofed.query.compile.SEARCH_INDEX`), derived
tables rebuilt from the store whenever it changed: :class:`oncofed.node.store.NodeStore`
records every write transaction in ``store_change``, the index remembers how many changes
it was built from, and the counting statement itself reports a mismatch, in the same
snapshot as its counts, so that an answer never comes from a stale index.

Federated search counts through :mod:`oncofed.query.columnar` instead (the same numbers
from an in-memory copy of the index, several times cheaper); :func:`count_matches` is the
SQL path that stays for other readers, and the property tests hold the two together.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

import duckdb

from oncofed.query.ast import Operation
from oncofed.query.compile import SEARCH_INDEX, counts_statement


class Cursor(Protocol):
    """The part of a DuckDB cursor used here."""

    def execute(self, query: str, parameters: Any = ...) -> Any: ...


@dataclass
class DatasetCounts:
    """Exact counts for one dataset (EUCAIM collection)."""

    dataset_id: str
    name: str = ""
    description: str = ""
    subjects: int = 0
    studies: int = 0
    gender: dict[str, int] = field(default_factory=dict)
    # youngest age at diagnosis (else at the first study) → subjects
    ages: dict[int, int] = field(default_factory=dict)
    modalities: dict[str, int] = field(default_factory=dict)  # DICOM code → subjects
    body_parts: dict[str, int] = field(default_factory=dict)  # upper case → subjects
    # What the counts are *of*: a hash of the matching patients (and, where a query
    # filters series, of the matching series) of this dataset in this store snapshot.
    # Two queries that select the same records get the same key, so cached noise keyed on
    # it is the same answer however the query was written. Empty where unknown (SQL path).
    key: str = field(default="", compare=False)


# One rebuild at a time per process (a DuckDB store is held by one process).
_REBUILD_LOCK = threading.Lock()


def index_staleness(con: Cursor) -> int:
    """0 when the search index reflects the store, anything else when it must be rebuilt."""
    try:
        row = con.execute(
            "SELECT (SELECT count(*) FROM store_change) - coalesce("
            "(SELECT max(built_changes) FROM search_index_state), -1)"
        ).fetchone()
    except duckdb.CatalogException:
        return -1
    return int(row[0])


def rebuild_search_index(con: Cursor, *, force: bool = False) -> bool:
    """Rebuild the search index from the store unless it is fresh; True when rebuilt.

    Runs in one transaction on ``con`` (which must not be inside one): readers keep seeing
    the previous index until it commits, and a write committed meanwhile leaves the new
    index stale, to be rebuilt on the next search.
    """
    with _REBUILD_LOCK:
        if not force and index_staleness(con) == 0:
            return False
        con.execute("BEGIN TRANSACTION")
        try:
            changes = int(con.execute("SELECT count(*) FROM store_change").fetchone()[0])
            for table, select in SEARCH_INDEX:
                con.execute(f"CREATE OR REPLACE TABLE {table} AS {select}")
            con.execute("DELETE FROM search_index_state")
            con.execute("INSERT INTO search_index_state VALUES (?)", [changes])
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        return True


def count_matches(
    con: Cursor, op: Operation, max_studies: int | None = None
) -> list[DatasetCounts]:
    """Run a canonical query; one entry per dataset of the store, in id order.

    ``max_studies``: each subject adds at most this many studies to the studies count (the
    policy's ``max_studies_per_subject``, the sensitivity the noise is scaled to); None
    counts every distinct study."""
    stmt = counts_statement(op, max_studies)
    rows: list[tuple[Any, ...]] = []
    for _ in range(5):
        try:
            rows = con.execute(stmt.text, stmt.params).fetchall()
        except duckdb.CatalogException:  # no index yet
            rows = []
        if rows and rows[0][1] == "stale" and int(rows[0][3]) == 0:
            break
        rebuild_search_index(con)
    else:
        raise RuntimeError("the search index keeps going stale: the store is being written")
    ids: dict[int, str] = {}
    listed: dict[str, bool] = {}
    names: dict[int, str] = {}
    descriptions: dict[int, str] = {}
    counts: list[tuple[int, str, Any, int]] = []
    for ds, stat, label, n in rows[1:]:
        if stat == "dataset":
            ids[ds] = str(label)
            listed[str(label)] = bool(n)
        elif stat == "name":
            names[ds] = str(label)
        elif stat == "description":
            descriptions[ds] = str(label)
        else:
            counts.append((ds, stat, label, int(n)))
    out: dict[str, DatasetCounts] = {
        i: DatasetCounts(i, names[ds], descriptions[ds]) for ds, i in ids.items() if listed[i]
    }
    for number, stat, label, n in counts:
        dataset_id = ids[number]
        entry = out.setdefault(dataset_id, DatasetCounts(dataset_id, dataset_id))
        if stat == "subjects":
            entry.subjects = n
        elif stat == "studies":
            entry.studies = n
        elif stat == "gender":
            entry.gender[str(label)] = n
        elif stat == "age":
            entry.ages[int(label)] = n
        elif stat == "modality":
            entry.modalities[str(label)] = n
        elif stat == "body_part":
            entry.body_parts[str(label)] = n
    return [out[k] for k in sorted(out)]
