"""`oncofed demo --once` works end to end: synthetic data in; node.info, a federated search
and a Beacon network query out."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def run_demo(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oncofed", "demo", "--dir", str(directory), "--once", *extra],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_demo_runs_once(tmp_path: Path) -> None:
    out = run_demo(tmp_path / "demo", "--nodes", "2", "--patients", "12")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "node.info from 2 nodes" in out.stdout
    info, _, later = out.stdout.partition("federated search")
    assert info.count("succeeded") == 2
    assert later.count("succeeded") == 8  # two nodes in each of 3 searches and the Beacon
    # 12 patients (clinical records, images, variants), shown as the node discloses them
    # (cached noise, rounded to a multiple of 5, withheld below 10): never the exact 12.
    assert re.search(r"\((10|15|<10)\)", out.stdout), out.stdout[-2000:]
    assert "admin login" in out.stdout
    # The catalogue's titles are people's words, not dataset ids (issue 15).
    assert "Charité Berlin (synthetic): oncology cohort" in " ".join(out.stdout.split())
    # The sample federated search and the Beacon network query ran through the hub.
    assert "federated search, CT imaging" in out.stdout, out.stdout[-3000:]
    assert "Beacon v2 network, variants in KRAS: exists" in out.stdout, out.stdout[-3000:]
    # Commands to paste as printed: the venv's own `oncofed`, criteria by label (issue 15).
    exe = Path(sys.executable).parent / "oncofed"
    assert f'{exe} search --where "diagnosis=lung cancer" --where "modality=CT"' in out.stdout
    password = re.search(r"admin login:\s+admin / (\S+)", out.stdout)
    assert password, out.stdout[-2000:]

    # Run again: the same federation comes back (same passwords, nothing regenerated) ...
    again = run_demo(tmp_path / "demo")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "reusing the demo" in again.stdout and "generating" not in again.stdout
    assert f"admin / {password.group(1)}" in again.stdout
    assert again.stdout.count("succeeded") == out.stdout.count("succeeded")
    # ... unless --fresh.
    fresh = run_demo(tmp_path / "demo", "--nodes", "1", "--patients", "12", "--fresh")
    assert fresh.returncode == 0, fresh.stdout[-3000:] + fresh.stderr[-3000:]
    assert "generating 1 synthetic providers" in fresh.stdout
    assert f"admin / {password.group(1)}" not in fresh.stdout
