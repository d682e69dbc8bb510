"""Raw (not yet disclosure-controlled) counts of a query, per dataset of a node store.

These numbers never leave the node as they are: :mod:`oncofed.privacy` turns them into the
released answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from oncofed.query.ast import Operation
from oncofed.query.compile import counts_statement


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
    ages: dict[int, int] = field(default_factory=dict)  # youngest age at diagnosis → subjects
    modalities: dict[str, int] = field(default_factory=dict)  # DICOM code → subjects
    body_parts: dict[str, int] = field(default_factory=dict)  # upper case → subjects


def count_matches(con: Cursor, op: Operation) -> list[DatasetCounts]:
    """Run a canonical query; one entry per dataset of the store, in id order."""
    stmt = counts_statement(op)
    rows = con.execute(stmt.text, stmt.params).fetchall()
    datasets = con.execute("SELECT id, name, description FROM dataset ORDER BY id").fetchall()
    out: dict[str, DatasetCounts] = {
        str(i): DatasetCounts(str(i), str(n), str(d or "")) for i, n, d in datasets
    }
    for dataset_id, stat, label, n in rows:
        entry = out.setdefault(str(dataset_id), DatasetCounts(str(dataset_id), str(dataset_id)))
        n = int(n)
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
