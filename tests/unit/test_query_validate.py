"""Validation, canonical form, vocabulary and the same-record semantics of search queries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from oncofed.node.store import NodeStore
from oncofed.query import QueryValidationError, count_matches, parse_query, query_hash, vocabulary
from oncofed.query.vocabulary import KEYS


def c(key: str, value: Any, type_: str = "EQUALS") -> dict[str, Any]:
    return {"key": key, "type": type_, "value": value, "system": "urn:ignored"}


def AND(*children: Any) -> dict[str, Any]:
    return {"operand": "AND", "children": list(children)}


def OR(*children: Any) -> dict[str, Any]:
    return {"operand": "OR", "children": list(children)}


MR = c("RID10311", "RID10312")
CT = c("RID10311", "RID10321")
PROSTATE = c("SNOMEDCT123037004", "SNOMEDCT41216001")
SIEMENS = c("C25392", "C200140")


@pytest.mark.parametrize(
    ("query", "key", "value"),
    [
        (AND(c("SNOMEDCT999", "x")), "SNOMEDCT999", "x"),
        (AND(c("RID10311", "RID99999")), "RID10311", "RID99999"),
        (
            AND(c("SNOMEDCT263495000", ["SNOMEDCT248153007", "nope"], "IN")),
            "SNOMEDCT263495000",
            "nope",
        ),
        (AND(c("SNOMEDCT423493009", "old")), "SNOMEDCT423493009", "old"),
        (
            AND(c("SNOMEDCT423493009", {"min": 70, "max": 40}, "BETWEEN")),
            "SNOMEDCT423493009",
            {"min": 70, "max": 40},
        ),
        (AND(c("oncofed:t_stage", "T9")), "oncofed:t_stage", "T9"),
        (AND(c("oncofed:variant", "chr7:abc:A:T")), "oncofed:variant", "chr7:abc:A:T"),
        (
            AND(c("SNOMEDCT263495000", "SNOMEDCT248153007", "BETWEEN")),
            "SNOMEDCT263495000",
            "SNOMEDCT248153007",
        ),
    ],
)
def test_validation_errors_name_key_and_value(query: dict[str, Any], key: str, value: Any) -> None:
    with pytest.raises(QueryValidationError) as err:
        parse_query(query)
    problem = err.value.problems[0]
    assert problem.key == key
    assert problem.value == value
    assert key in str(err.value)
    shown = value if isinstance(value, str) else json.dumps(value)
    assert shown.split(":")[0] in str(err.value)
    json.dumps(err.value.as_dict())  # serialisable for an HTTP 422


def test_malformed_tree_is_a_validation_error() -> None:
    with pytest.raises(QueryValidationError):
        parse_query({"operand": "XOR", "children": []})
    with pytest.raises(QueryValidationError):
        parse_query({"operand": "AND", "children": [{"key": "RID10311"}]})
    with pytest.raises(QueryValidationError):
        parse_query("not json")


def test_empty_operation_matches_everything_and_envelope_is_accepted() -> None:
    empty = parse_query({"ast": {"operand": "OR", "children": []}, "id": "a__search__b"})
    assert empty.children == []
    assert parse_query(OR(AND(), MR)) == empty  # OR with "everything" is everything
    assert parse_query(AND(OR(), MR)) == parse_query(AND(MR))


def test_canonical_form_merges_and_normalises() -> None:
    a = parse_query(OR(AND(OR(MR), OR(PROSTATE))))
    b = parse_query(AND(PROSTATE, MR))
    assert a == b and query_hash(a) == query_hash(b)
    merged = parse_query(OR(MR, CT))
    assert merged.children[0].model_dump() == {
        "key": "RID10311",
        "type": "IN",
        "value": ["RID10312", "RID10321"],
    }
    age = parse_query(AND(c("SNOMEDCT423493009", {"min": 40.0, "max": 70}, "EQUALS")))
    assert age.children[0].model_dump()["type"] == "BETWEEN"
    assert age.children[0].model_dump()["value"] == {"min": 40, "max": 70}
    v = parse_query(AND(c("oncofed:variant", "grch38-7-140753336-a-t")))
    assert v.children[0].model_dump()["value"] == "GRCh38:chr7:140753336:A:T"
    assert parse_query(AND(c("rid10311".upper(), "rid10312"))) == parse_query(AND(MR))


def test_vocabulary_lists_every_key_and_is_json() -> None:
    vocab = vocabulary()
    text = json.dumps(vocab)
    assert {k["key"] for k in vocab["keys"]} == {k.key for k in KEYS}
    for key in (
        "SNOMEDCT263495000",
        "RID10311",
        "C25392",
        "oncofed:gene",
        "oncofed:variant",
        "oncofed:t_stage",
        "oncofed:marker:ER",
        "oncofed:survival_days",
    ):
        assert key in text
    sex = next(k for k in vocab["keys"] if k["key"] == "SNOMEDCT263495000")
    assert {"code": "SNOMEDCT248152002", "label": "female"} in sex["values"]


@pytest.fixture()
def store(tmp_path: Path) -> NodeStore:
    s = NodeStore(tmp_path / "node.duckdb")
    with s.transaction() as cur:
        cur.execute("INSERT INTO dataset (id, name) VALUES ('ds', 'Prostate MRI')")
        for pid in ("a", "b", "c", "d"):
            cur.execute("INSERT INTO patient (id, dataset_id, sex) VALUES (?, 'ds', 'male')", [pid])
        series = [
            # a: one MR prostate series from Siemens
            ("a1", "sa", "a", "MR", "PROSTATE", "SIEMENS"),
            # b: an MR of the chest and a CT of the prostate (never an MR prostate series)
            ("b1", "sb", "b", "MR", "CHEST", "SIEMENS"),
            ("b2", "sb2", "b", "CT", "PROSTATE", "Philips"),
            # c: MR prostate from Philips
            ("c1", "sc", "c", "MR", "PROSTATE", "Philips Medical Systems"),
        ]
        for row in series:
            cur.execute(
                "INSERT INTO imaging_series (uid, study_uid, patient_id, modality, "
                "body_part, manufacturer) VALUES (?, ?, ?, ?, ?, ?)",
                list(row),
            )
        cur.execute("INSERT INTO imaging_study (uid, patient_id) VALUES ('sd', 'd')")
        cur.execute(
            "INSERT INTO variant (id, chrom, pos, ref, alt, gene) VALUES "
            "('v1', 'chr12', 25245350, 'C', 'T', 'KRAS'), "
            "('v2', 'chr17', 7675088, 'C', 'T', 'TP53')"
        )
        cur.execute(
            "INSERT INTO variant_call (variant_id, biosample_id, patient_id) VALUES "
            "('v1', 's', 'a'), ('v2', 's', 'a'), ('v1', 's', 'b')"
        )
    return s


def subjects(store: NodeStore, query: dict[str, Any]) -> tuple[int, int]:
    with store.reading() as con:
        (ds,) = count_matches(con, parse_query(query))
    return ds.subjects, ds.studies


def test_series_conditions_in_one_and_group_hold_for_the_same_series(store: NodeStore) -> None:
    # EUCAIM shape: OR(AND(OR(MR), OR(PROSTATE)))
    assert subjects(store, OR(AND(OR(MR), OR(PROSTATE)))) == (2, 2)  # a, c, not b
    assert subjects(store, AND(MR, PROSTATE, SIEMENS)) == (1, 1)  # a only
    # a key repeated: each condition on its own series ("has an MR and has a CT")
    assert subjects(store, AND(MR, CT)) == (1, 2)  # b, with both its studies
    # NOT_EQUALS: no series with that value
    assert subjects(store, AND(c("RID10311", "RID10321", "NOT_EQUALS"))) == (3, 3)
    assert subjects(store, AND()) == (4, 5)  # everything, d's study without series too


def test_genomic_conditions(store: NodeStore) -> None:
    kras, tp53 = c("oncofed:gene", "kras"), c("oncofed:gene", "TP53")
    assert subjects(store, AND(kras))[0] == 2
    assert subjects(store, AND(kras, tp53))[0] == 1  # co-mutation: a
    assert subjects(store, AND(c("oncofed:variant", "12:25245350:C:T")))[0] == 2
    assert subjects(store, AND(c("oncofed:variant", "chr12:25245350:C:G")))[0] == 0
    assert subjects(store, AND(kras, c("oncofed:gene", "TP53", "NOT_EQUALS")))[0] == 1  # b
