"""The catalogue with real hub and node processes: nodes publish over the task channel, a
node asks for a refresh after an ingest, and a second hub harvests our FAIR Data Point."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oncofed.hub.catalogue import dcat
from oncofed.local import LocalFederation
from oncofed.node.publish import request_refresh
from oncofed.node.store import NodeStore
from oncofed.security.keys import SigningKey
from oncofed.settings import load_node_settings
from tests.conftest import load_synthetic

pytestmark = pytest.mark.integration
PATIENTS = 120
POLICY = 'allowed_tasks = ["node.info", "search.count", "catalogue.describe"]\n'


@pytest.fixture
def feds(tmp_path: Path) -> Iterator[tuple[LocalFederation, LocalFederation]]:
    a = LocalFederation(tmp_path / "a")
    b = LocalFederation(tmp_path / "b")
    try:
        a.init_hub("hub A")
        a.start_hub()
        for i in range(2):
            name = f"node-{i + 1}"
            a.add_node(name, f"p{i + 1}", start=False)
            load_synthetic(a.nodes[name].directory, i, PATIENTS)
            (a.nodes[name].directory / "policy.toml").write_text(POLICY)
            a.start_node(name)
        b.init_hub("hub B")
        b.start_hub()
        yield a, b
    finally:
        a.stop()
        b.stop()


def public(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    drop = {"key", "origin", "source", "editable", "score", "issued", "modified"}
    out = []
    for r in records:
        r = {k: v for k, v in r.items() if k not in drop}
        r["keywords"] = sorted(r["keywords"])  # RDF keeps no order
        out.append(r)
    return sorted(out, key=lambda r: r["identifier"])


def test_publish_refresh_after_ingest_and_harvest_by_second_hub(feds, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a, b = feds
    with a.admin() as admin:
        r = admin.http.post("/api/catalogue/refresh", json={"timeout_seconds": 30})
        assert r.status_code == 200, r.text
        assert {n: e["status"] for n, e in r.json()["nodes"].items()} == {
            "node-1": "succeeded",
            "node-2": "succeeded",
        }
        listing = admin.http.get("/api/catalogue/datasets").json()
        assert listing["total"] == 2
        for rec in listing["results"]:
            f = rec["figures"]
            assert abs(f["individuals"] - PATIENTS) <= 10 and f["individuals"] % 5 == 0
            assert f["sexes"] and f["conditions"] and f["modalities"] and f["body_parts"]
            assert rec["access_url"].startswith(f"{a.hub.url}/negotiation/new?dataset=")
        export = admin.http.get("/api/catalogue/export", headers={"accept": "text/turtle"})
        gaps = dcat.mandatory_gaps(dcat.parse(export.text, "turtle"))
        assert len(gaps) == 2 and all(v == [] for v in gaps.values()), gaps

        # An ingest at node-1 (60 more patients), then the node asks to be described again.
        node = a.nodes["node-1"]
        settings = load_node_settings(node.directory)
        node.stop()
        store = NodeStore(settings.resolve(settings.store_file))
        try:
            with store.transaction() as cur:
                cur.execute(
                    "INSERT INTO patient (id, dataset_id, sex) SELECT 'new' || i, "
                    "'p1-cohort', 'female' FROM range(60) t(i)"
                )
        finally:
            store.close()
        a.start_node("node-1")
        key = SigningKey.load(settings.resolve(settings.key_file))
        assert request_refresh(settings, key)
        deadline = time.monotonic() + 30
        while True:
            rec = admin.http.get("/api/catalogue/datasets/node-1:p1-cohort").json()
            if rec["figures"]["individuals"] >= PATIENTS + 40:
                break
            assert time.monotonic() < deadline, rec["figures"]
            time.sleep(0.3)
        ours = admin.http.get("/api/catalogue/datasets").json()["results"]

    # The same from the command line: refresh and export at hub A, harvest into hub B.
    refreshed = oncofed(a, "catalogue", "refresh", "--node", "node-2")
    assert re.search(r"node-2\W+succeeded", refreshed), refreshed
    exported = tmp_path / "catalogue.ttl"
    oncofed(a, "catalogue", "export", "--format", "ttl", "-o", str(exported))
    gaps = dcat.mandatory_gaps(dcat.parse(exported.read_text(), "turtle"))
    assert len(gaps) == 2 and all(v == [] for v in gaps.values()), gaps
    harvested = oncofed(b, "catalogue", "harvest", f"{a.hub.url}/fdp")
    assert f"{a.hub.url}/fdp/catalog: 2 added, 0 updated, 0 removed" in harvested, harvested
    refused = subprocess.run(
        [sys.executable, "-m", "oncofed", "catalogue", "harvest", "http://127.0.0.1:9/fdp"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ONCOFED_HUB": b.hub.url, "ONCOFED_TOKEN": b.admin_token},
    )
    assert refused.returncode == 1 and refused.stderr.startswith("error: "), refused
    with b.admin() as admin_b:
        theirs = admin_b.http.get("/api/catalogue/datasets").json()["results"]
    assert public(theirs) == public(ours)


def oncofed(fed: LocalFederation, *args: str) -> str:
    """`oncofed ARGS` as the hub's admin (the token from the environment, not a login)."""
    env = {**os.environ, "ONCOFED_HUB": fed.hub.url, "ONCOFED_TOKEN": fed.admin_token}
    env.update(COLUMNS="200", NO_COLOR="1")
    out = subprocess.run(
        [sys.executable, "-m", "oncofed", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout
