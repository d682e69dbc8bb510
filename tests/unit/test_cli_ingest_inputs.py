"""Every `oncofed node ingest` command names inputs that are not there before doing any work
(the clinical import once complained about its mapping file instead)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from oncofed.cli import app
from oncofed.node.ingest.commands import failed, print_report
from oncofed.node.ingest.images import IngestReport, ingest_images
from oncofed.node.ingest.jobs import report_from_json, report_to_json
from tests.imaging_fixtures import PHI, make_ct, make_node, save


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("node") / "node"
    result = CliRunner().invoke(app, ["node", "init", "--dir", str(directory), "--name", "ab-node"])
    assert result.exit_code == 0, result.output
    return directory


@pytest.mark.parametrize("kind", ["images", "clinical", "fhir", "omop", "vcf"])
def test_missing_inputs_are_named_before_any_work(
    kind: str, node_dir: Path, tmp_path: Path
) -> None:
    present = tmp_path / "present.txt"
    present.write_text("x")
    gone = tmp_path / "export-2026.csv"
    extra = ["--dataset", "ds1"] if kind != "images" else []
    result = CliRunner().invoke(
        app,
        ["node", "ingest", kind, str(present), str(gone), "--dir", str(node_dir), *extra],
    )
    assert result.exit_code == 1, result.output
    assert f"no such file or folder: {gone}" in " ".join(result.output.split())
    assert "ingested" not in result.output  # refused before any file was read


def test_image_ingest_reports_and_exits_the_same_here_and_through_the_service(
    node_dir: Path, tmp_path: Path
) -> None:
    """Quarantined and held files are printed with their reasons by the command itself, and
    the exit status (1: something was quarantined) and the printed report are the same when
    the report comes back from the node service (as JSON) as when it ran here."""
    leaky = make_ct(patient_id="MRN-9", instance=1)
    leaky.SeriesDescription = f"redo {PHI['name_family']}"
    save(leaky, tmp_path / "src" / "leaky.dcm")
    burned = make_ct(patient_id="MRN-9", instance=2)
    burned.BurnedInAnnotation = "YES"
    save(burned, tmp_path / "src" / "burned.dcm")
    result = CliRunner().invoke(
        app, ["node", "ingest", "images", str(tmp_path / "src"), "--dir", str(node_dir)]
    )
    out = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "leaky.dcm" in out and "SeriesDescription" in out
    assert "held-for-review" in out and "burned.dcm" in out

    node = make_node(tmp_path / "n")
    report = ingest_images(
        [tmp_path / "src"], node.store, node.ctx, node.cas, node.quarantine, progress=False
    )
    back = report_from_json(report_to_json(report))
    assert isinstance(back, IngestReport)

    def printed(r: IngestReport) -> str:
        console = Console(record=True, width=120)
        print_report(r, console)
        return console.export_text()

    assert printed(back) == printed(report) and failed(back) is failed(report) is True
