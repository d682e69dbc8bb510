"""Reports of ingest jobs run by the node service travel as JSON and print the same."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from oncofed.node.ingest.common import FileOutcome, ImportReport
from oncofed.node.ingest.images import IngestReport, Rejection
from oncofed.node.ingest.jobs import IngestJob, admin_token, report_from_json, report_to_json
from oncofed.settings import load_node_settings
from tests.clinical_fixtures import make_node


def test_reports_round_trip_through_json() -> None:
    imports = ImportReport(
        "clinical import",
        [FileOutcome("/x/a.csv", "csv", "ingested", 12), FileOutcome("/x/b.csv", "csv",
                                                                     "rejected", 0, "line 3")],
        1.5,
    )  # fmt: skip
    assert report_from_json(report_to_json(imports)) == imports
    images = IngestReport(seen=3, ingested=1, duplicates=1, quarantined=Counter({"phi": 1}),
                          rejections=[Rejection("/x/c.dcm", "phi", "PatientName")])  # fmt: skip
    back = report_from_json(report_to_json(images))
    assert back == images and isinstance(back, IngestReport)


def test_jobs_are_checked_before_they_run() -> None:
    with pytest.raises(ValidationError):
        IngestJob.model_validate({"kind": "images", "paths": []})
    with pytest.raises(ValidationError):
        IngestJob.model_validate({"kind": "images", "paths": ["a"], "rm": "-rf"})


def test_admin_token_is_private_and_stable(tmp_path: Path) -> None:
    settings = load_node_settings(make_node(tmp_path / "node"))
    assert admin_token(settings) is None
    token = admin_token(settings, create=True)
    path = settings.resolve("keys/admin.token")
    assert token and path.stat().st_mode & 0o077 == 0
    assert admin_token(settings, create=True) == token
