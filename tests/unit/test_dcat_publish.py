"""The node's `catalogue.describe` answer: figures under its own disclosure rules."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import create_engine

from oncofed.node.policy import NodePolicy
from oncofed.node.publish import describe, tier
from oncofed.node.search import answer_search
from oncofed.node.store import NodeStore
from oncofed.privacy import DisclosurePolicy, PrivacyLedger


def node(tmp_path: Path, **policy: Any) -> Any:
    store = NodeStore(tmp_path / "node.duckdb")
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO dataset (id, name, description, access_level) VALUES "
            "('lung', 'Lung CT', 'Thoracic CT', 'registered'), "
            "('tiny', 'Tiny', '', 'public')"
        )
        cur.execute(
            "INSERT INTO patient (id, dataset_id, sex) SELECT 'p' || i, 'lung', "
            "CASE WHEN i % 2 = 0 THEN 'male' ELSE 'female' END FROM range(200) t(i)"
        )
        cur.execute(
            "INSERT INTO patient (id, dataset_id, sex) "
            "SELECT 'q' || i, 'tiny', 'male' FROM range(3) t(i)"
        )
        # 197 lung cancers coded by SNOMED, 3 only by ICD-O-3 topography; one rare kidney.
        cur.execute(
            "INSERT INTO disease (id, patient_id, site_snomed, topography, "
            "age_at_diagnosis) SELECT 'd' || i, 'p' || i, CASE WHEN i < 197 THEN "
            "'363358000' END, 'C34.1', 50 + i % 20 FROM range(200) t(i)"
        )
        cur.execute(
            "INSERT INTO disease (id, patient_id, site_snomed, age_at_diagnosis) "
            "VALUES ('k1', 'p1', '363518003', 99)"
        )
        cur.execute(
            "INSERT INTO imaging_study (uid, patient_id) "
            "SELECT 'st' || i, 'p' || i FROM range(200) t(i)"
        )
        cur.execute(
            "INSERT INTO imaging_series (uid, study_uid, patient_id, modality, "
            "body_part, manufacturer) SELECT 'se' || i, 'st' || i, 'p' || i, "
            "CASE WHEN i < 199 THEN 'CT' ELSE 'MR' END, 'CHEST', "
            "CASE WHEN i % 2 = 0 THEN 'SIEMENS Healthineers' ELSE 'GE MEDICAL' END "
            "FROM range(200) t(i)"
        )
    state = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    return SimpleNamespace(
        store=store,
        state=state,
        privacy_ledger=PrivacyLedger(state),
        policy=NodePolicy(disclosure=DisclosurePolicy(**policy)),
        settings=SimpleNamespace(node_id="n1", name="node-1", provider_id="p1"),
    )


def test_describe_publishes_disclosure_controlled_figures(tmp_path: Path) -> None:
    ctx = node(tmp_path)
    result = describe(ctx)
    assert result["tier"] == 2 and result["provider_id"] == "p1"
    lung, tiny = result["datasets"]
    f = lung["figures"]
    assert abs(f["individuals"] - 200) <= 10 and f["individuals"] % 5 == 0
    assert abs(f["studies"] - 200) <= 30 and f["studies"] % 5 == 0
    assert [s["code"] for s in f["sexes"]] == ["SNOMEDCT248152002", "SNOMEDCT248153007"]
    # The ICD-O-3-only rows count as lung cancer; the lone kidney cancer is not shown.
    assert [c["code"] for c in f["conditions"]] == ["SNOMEDCT363358000"]
    assert [m["label"] for m in f["modalities"]] == ["CT"]  # one MR patient: withheld
    assert [m["code"] for m in f["modalities"]] == ["RID10321"]
    assert {m["code"] for m in f["manufacturers"]} == {"C200140", "birnlex_12833"}
    assert [b["code"] for b in f["body_parts"]] == ["SNOMEDCT39607008"]
    assert f["age_range"]["min"] == 50 and f["age_range"]["max"] in (70, 75)
    # Fewer than the minimum: withheld, and no strata at all.
    t = tiny["figures"]
    assert t["individuals"] is None and t["individuals_below"] == 10
    assert t["sexes"] == [] and t["modalities"] == [] and t["age_range"] is None
    assert lung["access_level"] == "registered" and lung["name"] == "Lung CT"


def test_describe_shares_noise_with_search_and_repeats_itself(tmp_path: Path) -> None:
    ctx = node(tmp_path)
    first = describe(ctx)
    everyone = answer_search(
        ctx.store,
        {"operand": "AND", "children": []},
        "r",
        ctx.policy.disclosure,
        ctx.state,
        "n1",
        ledger=ctx.privacy_ledger,
    )
    lung = everyone.collections[0]
    assert first["datasets"][0]["figures"]["individuals"] == lung.subjects_count
    assert first["datasets"][0]["figures"]["studies"] == lung.studies_count
    again = describe(ctx)
    assert [d["figures"] for d in again["datasets"]] == [d["figures"] for d in first["datasets"]]


def test_tier_follows_policy(tmp_path: Path) -> None:
    ctx = node(tmp_path)
    ctx.policy = NodePolicy(allowed_tasks=["node.info"])
    assert tier(ctx) == 1
    ctx.policy = NodePolicy(allowed_algorithms=["kaplan_meier"])
    assert tier(ctx) == 3


def test_conditions_outside_the_vocabulary_are_labelled_by_name() -> None:
    """A diagnosis with no EUCAIM site (a leukaemia from Synthea or mCODE) is published
    with its SNOMED CT name, not as ``SNOMEDCT91861009``."""
    from oncofed.node.publish import _labelled
    from oncofed.query.vocabulary import DIAGNOSIS

    labels = {v["code"]: v["label"] for v in _labelled(DIAGNOSIS, [
        "SNOMEDCT91861009", "SNOMEDCT363358000", "SNOMEDCT1234567"])}  # fmt: skip
    assert labels == {
        "SNOMEDCT91861009": "Acute myeloid leukemia",
        "SNOMEDCT363358000": "lung cancer",
        "SNOMEDCT1234567": "SNOMEDCT1234567",  # unknown everywhere: the code, nothing invented
    }
