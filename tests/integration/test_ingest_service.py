"""`oncofed node ingest` while the node service runs: the command hands the work to the
service (which holds the store), waits, and prints the same report; the catalogue follows.
The local admin API refuses other machines and a wrong token, and logs each refusal."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from oncofed.node.app import create_app
from oncofed.node.ingest.jobs import admin_token
from oncofed.settings import load_node_settings
from tests.clinical_fixtures import make_node, make_synth

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oncofed", *args], capture_output=True, text=True, timeout=300
    )


def test_ingest_goes_through_the_running_node(make_federation, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fed = make_federation(nodes=1)
    node_dir = fed.nodes["node-1"].directory
    synth = make_synth(tmp_path / "synth", patients=30)
    out = cli("node", "ingest", "clinical", str(synth / "clinical"), "--dir", str(node_dir))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "the node service holds the store" in out.stderr
    assert "ingested" in out.stdout and "rejected" in out.stdout  # the report's total row
    # The service answers from the new data at once (its own store), and the hub's
    # catalogue was asked to refresh.
    info = httpx.get(f"{fed.nodes['node-1'].url}/info", timeout=30).json()
    assert any(d["id"].endswith("-clinical") for d in info["datasets"]), info
    client = fed.admin()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        titles = [d["identifier"] for d in client.catalogue()["results"]]
        if any(t.endswith("-clinical") for t in titles):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the catalogue did not pick up the new dataset: {titles}")
    # Running it again changes nothing: every file is recognised as already imported.
    again = cli("node", "ingest", "clinical", str(synth / "clinical"), "--dir", str(node_dir))
    assert again.returncode == 0 and "unchanged" in again.stdout
    # A variant file through the service as well.
    vcf = cli("node", "ingest", "vcf", str(synth / "variants"), "--dir", str(node_dir))
    assert vcf.returncode == 0, vcf.stdout[-2000:] + vcf.stderr[-2000:]
    # A bad mapping is reported by the service with the reason, and the command fails.
    bad = tmp_path / "bad.yaml"
    bad.write_text("patients: [unclosed\n")
    out = cli(
        "node", "ingest", "clinical", str(synth / "clinical"), "--mapping", str(bad),
        "--dir", str(node_dir),
    )  # fmt: skip
    assert out.returncode != 0
    assert "bad.yaml" in out.stdout + out.stderr


def test_admin_api_is_local_and_needs_the_token(tmp_path: Path) -> None:
    node_dir = make_node(tmp_path / "node")
    settings = load_node_settings(node_dir)
    app = create_app(settings, run_agent=False)
    job = {"kind": "fhir", "paths": [str(tmp_path)]}
    with TestClient(app) as local:
        token = admin_token(settings)
        assert token and (node_dir / "keys" / "admin.token").stat().st_mode & 0o077 == 0
        assert local.post("/api/admin/ingest", json=job).status_code == 401
        wrong = {"authorization": "Bearer nope"}
        assert local.post("/api/admin/ingest", json=job, headers=wrong).status_code == 401
        ok = {"authorization": f"Bearer {token}"}
        assert local.get("/api/admin/ingest/none", headers=ok).status_code == 404
        r = local.post("/api/admin/ingest", json={"kind": "tar", "paths": ["x"]}, headers=ok)
        assert r.status_code == 422
    with TestClient(app, client=("192.0.2.7", 5000)) as remote:
        r = remote.post("/api/admin/ingest", json=job, headers=ok)
        assert r.status_code == 403 and "only on this machine" in r.json()["detail"]
        ctx = remote.app.state.node  # type: ignore[attr-defined]
        refused = [e for e in ctx.audit.entries() if e["action"] == "admin.request"]
        assert [e["decision"] for e in refused] == ["deny", "deny", "deny"]
