"""Search on imaging-only data as public archives hold it: ages from the studies, combined
body-part terms, the vocabulary's values in answers, each value listed once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from oncofed.node.store import NodeStore
from oncofed.privacy import DisclosurePolicy, PrivacyLedger
from oncofed.privacy.disclose import disclose
from oncofed.query import parse_query
from oncofed.query.counts import count_matches
from oncofed.query.evaluate import evaluate_counts, load_cohort
from oncofed.query.vocabulary import body_part_labels, vocabulary

AGE, BODY_PART = "SNOMEDCT423493009", "SNOMEDCT123037004"
ABDOMEN, PELVIS, LUNG = "SNOMEDCT818981001", "SNOMEDCT816092008", "SNOMEDCT39607008"


def _query(*conditions: dict[str, Any]) -> Any:
    return parse_query({"operand": "AND", "children": list(conditions)})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> NodeStore:
    """40 imaging-only patients (no clinical rows) aged 40-79 at their first study, CT of
    the abdomen and pelvis written three ways, and 20 with a chest CT."""
    store = NodeStore(tmp_path_factory.mktemp("imaging") / "node.duckdb")
    with store.transaction() as cur:
        cur.execute("INSERT INTO dataset (id, name) VALUES ('archive', 'Archive')")
        cur.execute(
            "INSERT INTO patient (id, dataset_id, sex) "
            "SELECT 'p' || i, 'archive', 'female' FROM range(60) t(i)"
        )
        # Two studies each: the first at 40 + i, the second five years later.
        cur.execute(
            "INSERT INTO imaging_study (uid, patient_id, age_at_study) "
            "SELECT 'st' || i || '-' || k, 'p' || i, 40 + i % 40 + 5 * k "
            "FROM range(60) t(i), range(2) s(k)"
        )
        cur.execute(
            "INSERT INTO imaging_series (uid, study_uid, patient_id, modality, body_part) "
            "SELECT 'se' || i, 'st' || i || '-0', 'p' || i, 'CT', "
            "CASE WHEN i >= 40 THEN 'chest' "
            "     ELSE ['ABDOMENPELVIS', 'Abd/Pelvis', 'abdomenpelvis'][i % 3 + 1] END "
            "FROM range(60) t(i)"
        )
    return store


def test_age_key_answers_from_the_first_study_without_clinical_records(
    store: NodeStore,
) -> None:
    with store.reading() as con:
        counts = count_matches(
            con, _query({"key": AGE, "type": "BETWEEN", "value": {"min": 40, "max": 49}})
        )
        ages = count_matches(con, _query())[0].ages
        cohort = load_cohort(con)
    # First studies at 40..79 (patients i and i+40 share an age): 40-49 holds i in 0..9
    # and 40..49, twenty patients; the second study's age does not count.
    assert counts[0].subjects == 20
    assert min(ages) == 40 and max(ages) == 79 and sum(ages.values()) == 60
    assert (
        evaluate_counts(
            _query({"key": AGE, "type": "BETWEEN", "value": {"min": 40, "max": 49}}), cohort
        )[0].subjects
        == 20
    )


def test_a_diagnosis_age_wins_over_the_study_age(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "node.duckdb")
    with store.transaction() as cur:
        cur.execute("INSERT INTO dataset (id, name) VALUES ('d', 'D')")
        cur.execute("INSERT INTO patient (id, dataset_id, sex) VALUES ('a', 'd', 'male')")
        cur.execute("INSERT INTO disease (id, patient_id, age_at_diagnosis) VALUES ('x', 'a', 61)")
        cur.execute(
            "INSERT INTO imaging_study (uid, patient_id, age_at_study) VALUES ('s', 'a', 58)"
        )
    with store.reading() as con:
        assert count_matches(con, _query())[0].ages == {61: 1}
        assert (
            count_matches(con, _query({"key": AGE, "type": "EQUALS", "value": 58}))[0].subjects == 0
        )


@pytest.mark.parametrize(("code", "expected"), [(ABDOMEN, 40), (PELVIS, 40), (LUNG, 20)])
def test_combined_body_part_terms_match_each_part(
    store: NodeStore, code: str, expected: int
) -> None:
    with store.reading() as con:
        counts = count_matches(con, _query({"key": BODY_PART, "type": "EQUALS", "value": code}))
    assert counts[0].subjects == expected


def test_answers_list_body_parts_as_vocabulary_values(store: NodeStore, tmp_path: Path) -> None:
    with store.reading() as con:
        counts = count_matches(con, _query())
    assert set(counts[0].body_parts) == {"ABDOMENPELVIS", "ABDPELVIS", "CHEST"}
    policy = DisclosurePolicy(min_count=1, rounding=1, epsilon=10)
    ledger = PrivacyLedger(create_engine(f"sqlite:///{tmp_path / 'state.db'}"))
    response, _ = disclose(counts, policy, ledger, "node", "q")
    assert response.collections[0].body_parts == ["abdomen", "lung", "pelvis"]
    assert body_part_labels("Abd/Pelvis") == ["abdomen", "pelvis"]
    assert body_part_labels("SPLEEN") == []


def test_vocabulary_lists_each_value_once() -> None:
    for key in vocabulary()["keys"]:
        labels = [v["label"] for v in key.get("values", [])]
        assert len(labels) == len(set(labels)), key["key"]
    manufacturer = next(k for k in vocabulary()["keys"] if k["key"] == "C25392")
    siemens = next(v for v in manufacturer["values"] if v["label"] == "Siemens")
    assert siemens["aliases"] == ["birnlex_3066"]
