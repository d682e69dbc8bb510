"""The in-memory search path (oncofed.query.columnar) in the cases random cohorts miss.

The property test in test_query_compile.py holds it to the reference evaluator over random
cohorts; these pin down dictionary lookups with many matching values, datasets that only
patients name, and the reload after every store change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from oncofed.node.store import NodeStore
from oncofed.query import parse_query
from oncofed.query.columnar import ColumnarSearch, TextColumn
from tests.unit.test_query_compile import TABLES, assert_counts_agree, load


@pytest.mark.parametrize("matching", [0, 1, 2, 3, 4, 6])
def test_text_column_direct_and_lookup_paths(matching: int) -> None:
    values = ("A", "B", "C", "D", "E", "F")
    codes = np.array([0, 1, 2, 3, 4, 5, 6, 6, 1, 0], dtype=np.uint8)
    wanted = set(values[:matching])
    got = TextColumn(codes, values).where(wanted.__contains__)
    expected = [c > 0 and values[c - 1] in wanted for c in codes]
    assert got.tolist() == expected


def c(key: str, type_: str, value: Any) -> dict[str, Any]:
    return {"key": key, "type": type_, "value": value}


QUERIES: list[dict[str, Any]] = [
    {"operand": "AND", "children": []},
    {"operand": "AND", "children": [c("RID10311", "EQUALS", "RID10321")]},
    {"operand": "AND", "children": [c("RID10311", "NOT_EQUALS", "RID10312")]},
    {
        "operand": "OR",
        "children": [
            c("SNOMEDCT263495000", "EQUALS", "SNOMEDCT248152002"),
            c("SNOMEDCT123037004", "EQUALS", "SNOMEDCT39607008"),
        ],
    },
    {
        "operand": "AND",
        "children": [
            c("SNOMEDCT439401001", "EQUALS", "SNOMEDCT363358000"),
            c("oncofed:stage_group", "IN", ["I", "II", "III", "IV"]),
            c("C25392", "IN", ["C200140", "birnlex_12833", "birnlex_3065"]),
        ],
    },
]


def test_unlisted_datasets_and_several_datasets(tmp_path: Path) -> None:
    """Patients of a dataset the dataset table does not list are counted under its id."""
    store = NodeStore(tmp_path / "node.duckdb", threads=1)
    rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
    rows["dataset"] = [("ds0", "Dataset 0", "about it"), ("ds9", "Empty", "")]
    rows["patient"] = [
        ("p1", "ds0", "female", 1970),
        ("p2", "ds0", "male", 1950),
        ("p3", "hidden", "female", None),
        ("p4", "other", "unknown", None),
    ]
    rows["disease"] = [
        ("d1", "p1", "C34.1", "C34.1", "8140/3", "363358000", 2010, 55, "T1", "N0", "M0", "IIIB"),
        ("d2", "p3", "C34.9", "C34.9", "8070/3", None, 2015, 70, "T2", "N1", "M0", "I"),
        ("d3", "p3", None, None, None, None, None, 40, None, None, None, None),
    ]
    rows["imaging_study"] = [("st1", "p1", None), ("st9", "p2", None)]
    rows["imaging_series"] = [
        ("se1", "st1", "p1", "CT", "CHEST", "SIEMENS"),
        ("se2", "st1", "p1", "CT", "CHEST", "SIEMENS"),
        ("se3", "st2", "p3", "MR", "lung", "GE MEDICAL SYSTEMS"),
        ("se4", "st3", "p3", "ct", None, "Philips Healthcare"),
        ("se5", "st4", "p4", None, "PELVIS", None),
    ]
    load(store, rows)
    assert_counts_agree(store, QUERIES)
    assert [d.dataset_id for d in store.search_counts(parse_query(QUERIES[0]))] == [
        "ds0",
        "ds9",
        "hidden",
        "other",
    ]
    store.close()


def test_snapshot_is_kept_until_the_store_changes(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "node.duckdb", threads=1)
    rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
    rows["dataset"] = [("ds0", "Dataset 0", "")]
    rows["patient"] = [("p1", "ds0", "female", 1970)]
    load(store, rows)
    search = ColumnarSearch()
    with store.reading() as con:
        first = search.current(con)
        assert search.current(con) is first  # no change: the same arrays, nothing re-read
    with store.transaction() as cur:
        cur.execute("INSERT INTO patient (id, dataset_id) VALUES ('p2', 'ds0')")
    with store.reading() as con:
        second = search.current(con)
        assert second is not first
        assert second.count(parse_query({"operand": "AND", "children": []}))[0].subjects == 2
    store.close()


def test_generation_skips_the_freshness_query_and_follows_writes(tmp_path: Path) -> None:
    """The service's fast path: a write through any NodeStore of the file is seen."""
    store = NodeStore(tmp_path / "node.duckdb", threads=1)
    rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
    rows["dataset"] = [("ds0", "Dataset 0", "")]
    rows["patient"] = [("p1", "ds0", "female", 1970)]
    load(store, rows)
    everyone = parse_query({"operand": "AND", "children": []})
    assert store.search_counts(everyone)[0].subjects == 1
    # A second store object of the same file in this process (as an importer opens one).
    writer = NodeStore(tmp_path / "node.duckdb", threads=1)
    before = store.generation
    with writer.transaction() as cur:
        cur.execute("INSERT INTO patient (id, dataset_id) VALUES ('p2', 'ds0')")
    assert store.generation == writer.generation == before + 1
    assert store.search_counts(everyone)[0].subjects == 2
    writer.invalidate_search_index()
    assert store.generation == before + 2
    store.close()
