"""FHIR R4 mCODE import (oncofed.node.ingest.fhir): synth bundles and the mCODE IG examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oncofed.node.ingest.common import NodeTarget
from oncofed.node.ingest.fhir import ingest_fhir
from tests.clinical_fixtures import make_node, make_synth, mcode_examples


@pytest.fixture
def target(tmp_path: Path) -> NodeTarget:
    t = NodeTarget.open(make_node(tmp_path / "node"))
    yield t  # type: ignore[misc]
    t.close()


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synth(tmp_path_factory.mktemp("synth"), patients=12)


def test_synth_bundles(synth: Path, target: NodeTarget) -> None:
    report = ingest_fhir([synth / "fhir"], target)
    assert report.ingested == 12 and not report.rejected
    bundle = json.loads(next((synth / "fhir").glob("*.json")).read_text())
    patient = bundle["entry"][0]["resource"]
    mrn = patient["identifier"][0]["value"]
    pid = target.pseudonyms.patient(mrn)
    with target.store.reading() as con:
        d = con.execute(
            "SELECT icd10, morphology, t_stage, n_stage, m_stage, stage_group "
            "FROM disease WHERE patient_id = ?",
            [pid],
        ).fetchone()
        sex = con.execute("SELECT sex, birth_year FROM patient WHERE id = ?", [pid]).fetchone()
        kinds = {r[0] for r in con.execute("SELECT kind FROM treatment").fetchall()}
        vital = con.execute("SELECT count(*) FROM outcome").fetchone()
    assert d is not None and d[0].startswith("C") and d[1] and d[2].startswith("T")
    assert d[5]
    assert sex == (patient["gender"], int(patient["birthDate"][:4]))
    assert kinds & {"chemotherapy", "surgery", "radiotherapy", "immunotherapy", "hormone"}
    assert vital == (12,)
    assert ingest_fhir([synth / "fhir"], target).unchanged == 12


def test_mcode_ig_examples(target: NodeTarget) -> None:
    folder = mcode_examples()
    report = ingest_fhir([folder], target, dataset="mcode")
    assert not report.rejected, report.rejected[:3]
    with target.store.reading() as con:
        stage = con.execute(
            "SELECT t_stage, n_stage, m_stage, stage_group FROM disease "
            "WHERE t_stage IS NOT NULL LIMIT 1"
        ).fetchone()
        markers = {r[0] for r in con.execute("SELECT name FROM biomarker").fetchall()}
        kinds = {r[0] for r in con.execute("SELECT kind FROM treatment").fetchall()}
    assert stage is not None and stage[0].startswith("T")
    assert any("Estrogen receptor" in m for m in markers)
    assert {"surgery", "radiotherapy"} <= kinds


def test_invalid_resource_names_entry_and_field(
    synth: Path, target: NodeTarget, tmp_path: Path
) -> None:
    bundle = json.loads(next((synth / "fhir").glob("*.json")).read_text())
    bundle["entry"][1]["resource"]["onsetDateTime"] = "last spring"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bundle))
    report = ingest_fhir([bad], target)
    detail = report.files[0].detail
    assert report.files[0].status == "rejected"
    assert "entry 1 (Condition/" in detail and "onsetDateTime" in detail
    with target.store.reading() as con:
        assert con.execute("SELECT count(*) FROM disease").fetchone() == (0,)
