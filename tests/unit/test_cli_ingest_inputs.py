"""Every `oncofed node ingest` command names inputs that are not there before doing any work
(the clinical import once complained about its mapping file instead)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from oncofed.cli import app


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
