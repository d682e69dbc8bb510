"""`oncofed demo --once` works end to end: synthetic data in; node.info, a federated search
and a Beacon network query out."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_once(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "oncofed",
            "demo",
            "--dir",
            str(tmp_path / "demo"),
            "--nodes",
            "2",
            "--patients",
            "12",
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "node.info from 2 nodes" in out.stdout
    info, _, later = out.stdout.partition("federated search")
    assert info.count("succeeded") == 2
    assert later.count("succeeded") == 4  # two nodes in the search, two in the Beacon
    # 12 patients (clinical records, images, variants), shown as the node discloses them
    # (cached noise, rounded to a multiple of 5, withheld below 10): never the exact 12.
    assert re.search(r"\((10|15|<10)\)", out.stdout), out.stdout[-2000:]
    assert "admin login" in out.stdout
    # The sample federated search and the Beacon network query ran through the hub.
    assert "federated search, CT imaging" in out.stdout, out.stdout[-3000:]
    assert "Beacon v2 network, variants in KRAS: exists" in out.stdout, out.stdout[-3000:]
