"""Criteria as people write them (`--where "diagnosis=lung cancer"`, `search(where=...)`):
every key and value of the vocabulary by label or by code gives the same valid condition,
and what cannot be read says what to write and where to look."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oncofed.client.where import WhereError, as_tree, condition, criteria
from oncofed.query import parse_query, vocabulary

VOCAB = vocabulary()
CODED = [(k, v) for k in VOCAB["keys"] for v in k.get("values", [])]


@given(st.sampled_from(CODED))
def test_label_and_code_give_the_same_valid_condition(pair: tuple[dict, dict]) -> None:  # type: ignore[type-arg]
    key, value = pair
    by_code = condition(VOCAB, f"{key['key']}={value['code']}")
    by_label = condition(VOCAB, f"{key['label']}={value['label']}")
    # A label two codes share (a manufacturer's spellings) names them all.
    assert by_code["value"] == value["code"] or value["code"] in by_code["value"]
    assert by_label["key"] == by_code["key"] == key["key"]
    assert value["code"] == by_label["value"] or value["code"] in by_label["value"]
    parse_query({"operand": "AND", "children": [by_label]})  # the hub would take it


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("diagnosis=lung cancer", ("SNOMEDCT439401001", "EQUALS", "SNOMEDCT363358000")),
        ("Diagnosis = Lung Cancer", ("SNOMEDCT439401001", "EQUALS", "SNOMEDCT363358000")),
        ("modality=CT", ("RID10311", "EQUALS", "RID10321")),
        ("modality=CT,MR", ("RID10311", "IN", ["RID10321", "RID10312"])),
        ("RID10311=RID10321", ("RID10311", "EQUALS", "RID10321")),
        ("gene=KRAS", ("oncofed:gene", "EQUALS", "KRAS")),
        ("sex=female", ("SNOMEDCT263495000", "EQUALS", "SNOMEDCT248152002")),
        ("age at diagnosis=50..70", ("SNOMEDCT423493009", "BETWEEN", {"min": 50, "max": 70})),
        ("PSA>4", ("oncofed:marker:PSA", "GREATER_THAN", 4)),
        ("ER=positive", ("oncofed:marker:ER", "EQUALS", "positive")),
        ("diagnosis!=breast cancer", ("SNOMEDCT439401001", "NOT_EQUALS", "SNOMEDCT254837009")),
    ],
)
def test_written_forms(written: str, expected: tuple[str, str, Any]) -> None:
    got = condition(VOCAB, written)
    assert (got["key"], got["type"], got["value"]) == expected
    parse_query(criteria(VOCAB, written))


@pytest.mark.parametrize(
    ("written", "says"),
    [
        ("diagnosis=lung cancr", "Did you mean 'lung cancer'"),
        ("diagnoss=lung cancer", "Did you mean 'Diagnosis'"),
        ("filters=NCIT:C3058", "unknown search key 'filters'"),
        ("diagnosis", "write KEY=VALUE"),
        ("age=old", "'old' is not a number"),
        ("sex>4", "not a number"),
    ],
)
def test_what_cannot_be_read_says_what_to_do(written: str, says: str) -> None:
    with pytest.raises(WhereError) as caught:
        condition(VOCAB, written)
    assert says in str(caught.value)
    if "key" in says or "Did you" in says or "KEY=VALUE" in says:
        assert "oncofed search --vocabulary" in str(caught.value)


def test_a_single_condition_is_a_tree_of_one() -> None:
    one = {"key": "RID10311", "type": "EQUALS", "value": "RID10321"}
    assert as_tree(one) == {"operand": "AND", "children": [one]}
    tree = {"operand": "OR", "children": [one]}
    assert as_tree(tree) is tree
    assert criteria(VOCAB, "modality=CT") == as_tree(one)
