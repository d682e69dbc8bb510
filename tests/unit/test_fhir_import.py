"""FHIR R4 mCODE import (oncofed.node.ingest.fhir): synth bundles and the mCODE IG examples."""

from __future__ import annotations

import gzip
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
    with target.store.reading() as con:
        sites = {r[0] for r in con.execute("SELECT site_snomed FROM disease").fetchall()}
        agents = {
            r[0]
            for r in con.execute(
                "SELECT lower(agent) FROM treatment WHERE code_system LIKE '%atc%'"
            ).fetchall()
        }
    # SNOMED-coded primaries (non-small cell lung cancer, a breast cancer) are diagnoses
    assert {"363358000", "254837009"} <= sites
    assert any("cisplatin" in a for a in agents) and any("paclitaxel" in a for a in agents)


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


SYNTHEA = Path(__file__).parent.parent / "fixtures" / "synthea-fhiry"


def _unpacked(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "export"
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_bytes(gzip.decompress((SYNTHEA / f"{name}.gz").read_bytes()))
    return folder


def test_real_synthea_bundles(target: NodeTarget, tmp_path: Path) -> None:
    """Synthea's own bundles (fhiry's test data): two patients, no cancer (a colon polyp is
    not one), and no cancer treatment in ibuprofen, acetaminophen or simvastatin."""
    report = ingest_fhir([_unpacked(tmp_path, "afhir.json", "cfhir.json")], target)
    assert report.ingested == 2 and not report.rejected, report.files
    assert all("0 cancers, 0 treatments" in f.detail for f in report.files)
    with target.store.reading() as con:
        assert con.execute("SELECT count(*) FROM patient").fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM treatment").fetchone() == (0,)


def test_ndjson_bulk_export(target: NodeTarget, tmp_path: Path) -> None:
    """FHIR Bulk Data NDJSON: read, not skipped; a file whose patients are elsewhere says
    so and creates no empty patients. fhiry's Procedure.ndjson is Synthea's STU3 export:
    refused as R4 by line and field, then read once its one STU3 field is renamed."""
    folder = _unpacked(tmp_path, "Patient.ndjson", "Procedure.ndjson")
    stu3 = ingest_fhir([folder / "Procedure.ndjson"], target).files[0]
    assert stu3.status == "rejected" and "line 1" in stu3.detail and "'context'" in stu3.detail
    r4 = folder / "Procedure.ndjson"
    lines = [json.loads(line) for line in r4.read_text().splitlines()]
    for line in lines:
        if "context" in line:
            line["encounter"] = line.pop("context")  # STU3 Procedure.context is R4 encounter
    r4.write_text("".join(json.dumps(line) + "\n" for line in lines))
    alone = ingest_fhir([r4], target).files[0]
    assert alone.status == "ingested", alone.detail
    assert "799 resources skipped" in alone.detail and "25 patients" in alone.detail
    with target.store.reading() as con:
        assert con.execute("SELECT count(*) FROM patient").fetchone() == (0,)
    both = ingest_fhir([folder], target, dataset="bulk")
    assert [f.status for f in both.files] == ["ingested", "ingested"], both.files
    assert "skipped" not in both.files[1].detail
    with target.store.reading() as con:
        assert con.execute("SELECT count(*) FROM patient").fetchone() == (25,)
        sexes = {r[0] for r in con.execute("SELECT DISTINCT sex FROM patient").fetchall()}
        # by concept: the prostatectomy is cancer surgery; the appendectomy, the rectal
        # polypectomy and "subcutaneous immunotherapy" (for allergies) are not
        treated = con.execute("SELECT kind, agent FROM treatment").fetchall()
    assert treated == [("surgery", "Prostatectomy")]
    assert sexes == {"male", "female"}
    bad = tmp_path / "bad.ndjson"
    bad.write_text(
        '{"resourceType": "Patient", "id": "a"}\n{"resourceType": "Patient", "gender": 5}\n'
    )
    rejected = ingest_fhir([bad], target).files[0]
    assert rejected.status == "rejected" and "line 2" in rejected.detail


def test_snomed_coded_cancers_and_cancer_agents(target: NodeTarget, tmp_path: Path) -> None:
    """Synthea's way of coding: SNOMED CT disorders, RxNorm products, SNOMED procedures."""
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female",
               "birthDate": "1950-03-01"}  # fmt: skip
    subject = {"reference": "Patient/p1"}

    def coded(system: str, code: str, display: str) -> dict[str, object]:
        return {"coding": [{"system": system, "code": code, "display": display}], "text": display}

    sct, rx = "http://snomed.info/sct", "http://www.nlm.nih.gov/research/umls/rxnorm"
    resources = [
        patient,
        {"resourceType": "Condition", "id": "c1", "subject": subject,
         "onsetDateTime": "2015-05-01",
         "code": coded(sct, "254637007", "Non-small cell lung cancer (disorder)")},
        {"resourceType": "Condition", "id": "c2", "subject": subject,
         "onsetDateTime": "2016-05-01",
         "code": coded(sct, "94225005", "Secondary malignant neoplasm of brain")},
        {"resourceType": "MedicationRequest", "id": "m1", "status": "active",
         "intent": "order", "subject": subject, "authoredOn": "2015-06-01",
         "medicationCodeableConcept": coded(rx, "583214", "PACLitaxel 100 MG Injection")},
        {"resourceType": "MedicationRequest", "id": "m2", "status": "active",
         "intent": "order", "subject": subject, "authoredOn": "2015-06-01",
         "medicationCodeableConcept": coded(rx, "310965", "Ibuprofen 200 MG Oral Tablet")},
        {"resourceType": "Procedure", "id": "s1", "status": "completed", "subject": subject,
         "performedDateTime": "2015-07-01",
         "code": coded(sct, "173171007", "Lobectomy of lung")},
        {"resourceType": "Procedure", "id": "s2", "status": "completed", "subject": subject,
         "performedDateTime": "2015-07-01",
         "code": coded(sct, "433112001", "Percutaneous mechanical thrombectomy of portal vein")},
    ]  # fmt: skip
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": r} for r in resources]}  # fmt: skip
    path = tmp_path / "synthea-style.json"
    path.write_text(json.dumps(bundle))
    report = ingest_fhir([path], target)
    assert report.ingested == 1, report.files
    with target.store.reading() as con:
        diseases = con.execute(
            "SELECT icd10, topography, morphology, site_snomed, age_at_diagnosis FROM disease"
        ).fetchall()
        treatments = con.execute(
            "SELECT kind, code, code_system, start_day FROM treatment ORDER BY kind"
        ).fetchall()
    assert diseases == [("C34.9", "C34.9", "8046/3", "363358000", 65)]  # the metastasis is not
    assert treatments == [
        ("chemotherapy", "L01CD01", "http://www.whocc.no/atc", 31),
        ("surgery", "173171007", sct, 61),
    ]
