"""CSV exports with a declarative mapping into the CDM (oncofed.node.ingest.clinical_csv)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import yaml

from oncofed.node.ingest.clinical_csv import ingest_clinical, load_mapping
from oncofed.node.ingest.common import NodeTarget, RecordError
from tests.clinical_fixtures import make_node, make_synth


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synth(tmp_path_factory.mktemp("synth"))


@pytest.fixture
def target(tmp_path: Path) -> NodeTarget:
    t = NodeTarget.open(make_node(tmp_path / "node"))
    yield t  # type: ignore[misc]
    t.close()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_synth_export_imports_completely(synth: Path, target: NodeTarget) -> None:
    clinical = synth / "clinical"
    report = ingest_clinical([clinical], clinical / "mapping.yaml", target)
    assert [f.status for f in report.files] == ["ingested"] * 5, report.files
    patients = _rows(clinical / "patients.csv")
    lesions = {r["mrn"]: r["result"] for r in _rows(clinical / "biomarkers.csv")}
    with target.store.reading() as con:
        stored = dict(
            con.execute(
                "SELECT patient_id, value_code FROM biomarker WHERE name = 'LESION'"
            ).fetchall()
        )
    assert stored == {target.pseudonyms.patient(mrn): v for mrn, v in lesions.items()}
    diagnoses = _rows(clinical / "diagnoses.csv")
    with target.store.reading() as con:
        assert con.execute("SELECT count(*) FROM patient").fetchone() == (len(patients),)
        first = diagnoses[0]
        pid = target.pseudonyms.patient(first["mrn"])
        row = con.execute(
            "SELECT icd10, topography, morphology, age_at_diagnosis, t_stage, stage_group, "
            "diagnosis_year, site_snomed FROM disease WHERE patient_id = ?",
            [pid],
        ).fetchone()
        assert row is not None
        assert row[:4] == (
            first["icd10"],
            first["icdo3_topography"],
            first["icdo3_morphology"],
            int(first["age_at_dx"]),
        )
        assert row[4] == first["t"] and row[5] == first["stage_group"]
        assert row[6] == int(first["diagnosis_date"][:4])
        assert row[7] is not None
        # Treatments are days from diagnosis; outcomes use alive/deceased.
        days = con.execute("SELECT min(start_day) FROM treatment").fetchone()
        assert days is not None and days[0] is not None and days[0] >= -60
        kinds = {r[0] for r in con.execute("SELECT DISTINCT kind FROM treatment").fetchall()}
        assert kinds <= {
            "surgery",
            "radiotherapy",
            "chemotherapy",
            "immunotherapy",
            "targeted",
            "hormone",
        }
        statuses = {r[0] for r in con.execute("SELECT vital_status FROM outcome").fetchall()}
        assert statuses <= {"alive", "deceased"}
        # No source identifier and no name reaches the store.
        dump = str(con.execute("SELECT * FROM patient").fetchall())
        dump += str(con.execute("SELECT * FROM disease").fetchall())
        dump += str(con.execute("SELECT * FROM treatment").fetchall())
    for p in patients:
        assert p["mrn"] not in dump and p["last_name"] not in dump
        assert p["birth_date"] not in dump


def test_rerun_changes_nothing(synth: Path, target: NodeTarget) -> None:
    clinical = synth / "clinical"
    ingest_clinical([clinical], clinical / "mapping.yaml", target)
    with target.store.reading() as con:
        before = con.execute("SELECT count(*) FROM treatment").fetchone()
    again = ingest_clinical([clinical], clinical / "mapping.yaml", target)
    assert {f.status for f in again.files} == {"unchanged"}
    with target.store.reading() as con:
        assert con.execute("SELECT count(*) FROM treatment").fetchone() == before


def test_bad_code_rejects_the_whole_file_and_names_line_and_field(
    synth: Path, target: NodeTarget, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(synth / "clinical", bad)
    rows = _rows(bad / "diagnoses.csv")
    rows[2]["icdo3_morphology"] = "adenocarcinoma"
    with (bad / "diagnoses.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    report = ingest_clinical([bad], bad / "mapping.yaml", target)
    status = {Path(f.path).name: f for f in report.files}
    assert status["diagnoses.csv"].status == "rejected"
    detail = status["diagnoses.csv"].detail
    assert "diagnoses.csv" in detail and "line 4" in detail and "morphology" in detail
    assert "8140/3" in detail  # the expected form
    with target.store.reading() as con:
        assert con.execute("SELECT count(*) FROM disease").fetchone() == (0,)
        q = con.execute("SELECT reason, detail FROM quarantine").fetchall()
    assert q and "line 4" in q[0][1]


def test_unknown_local_code_is_an_error(synth: Path, target: NodeTarget, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(synth / "clinical", bad)
    rows = _rows(bad / "patients.csv")
    rows[0]["sex"] = "X"
    with (bad / "patients.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    report = ingest_clinical([bad / "patients.csv"], bad / "mapping.yaml", target)
    assert report.files[0].status == "rejected"
    assert "line 2" in report.files[0].detail and "one of F, M" in report.files[0].detail


def test_mapping_errors_name_the_path(synth: Path, tmp_path: Path) -> None:
    data = yaml.safe_load((synth / "clinical" / "mapping.yaml").read_text())
    data["tables"]["disease"]["fields"]["favourite_colour"] = {"column": "icd10"}
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RecordError, match="favourite_colour"):
        load_mapping(path)
    data["tables"]["disease"]["fields"].pop("favourite_colour")
    data["tables"]["treatment"]["fields"]["type"]["colum"] = "x"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RecordError, match="colum"):
        load_mapping(path)


def test_missing_column_names_the_header(synth: Path, target: NodeTarget, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(synth / "clinical", bad)
    text = (bad / "outcomes.csv").read_text().replace("vital_status", "status", 1)
    (bad / "outcomes.csv").write_text(text)
    report = ingest_clinical([bad / "outcomes.csv"], bad / "mapping.yaml", target)
    assert report.files[0].status == "rejected"
    assert "header" in report.files[0].detail and "vital_status" in report.files[0].detail


def test_one_export_is_one_transaction(synth: Path, target: NodeTarget, tmp_path: Path) -> None:
    """A bad birth date in patients.csv keeps the diagnoses, treatments and outcomes of the
    same export out as well; the report names the file and line; no dataset is left."""
    bad = tmp_path / "bad"
    shutil.copytree(synth / "clinical", bad)
    rows = _rows(bad / "patients.csv")
    rows[4]["birth_date"] = "1961-13-40"
    with (bad / "patients.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    report = ingest_clinical([bad], bad / "mapping.yaml", target, dataset="export-1")
    status = {Path(f.path).name: f for f in report.files}
    exported = {f.name for f in bad.glob("*.csv")}
    assert {f.status for f in report.files} == {"rejected"} and set(status) == exported
    assert "patients.csv" in status["patients.csv"].detail
    assert "line 6" in status["patients.csv"].detail
    assert "not loaded: patients.csv was rejected" in status["diagnoses.csv"].detail
    with target.store.reading() as con:
        for table in ("patient", "disease", "treatment", "outcome"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
        assert con.execute("SELECT count(*) FROM dataset").fetchone() == (0,)
    # fixed, the rerun loads all of it
    fixed = ingest_clinical([synth / "clinical"], bad / "mapping.yaml", target, dataset="export-1")
    assert {f.status for f in fixed.files} == {"ingested"}
