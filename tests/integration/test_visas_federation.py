"""Grants across real processes: a hub approves, a node process verifies the visa with the
key it pinned at enrolment, and a revocation at the hub reaches the node within seconds."""

from __future__ import annotations

import time

import httpx
import pytest

from oncofed.audit import AuditLog
from oncofed.client.hub import HubClient
from oncofed.hub.admin import add_user, create_api_token, open_hub
from oncofed.node.grants import verified_datasets
from oncofed.node.state import state_engine
from oncofed.settings import load_node_settings
from tests.conftest import FederationFactory
from tests.integration.test_negotiation import FORM

pytestmark = pytest.mark.integration


def test_visa_verified_and_revoked_at_a_real_node(
    make_federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONCOFED_NODE_GRANT_REFRESH_SECONDS", "1")
    fed = make_federation(1, patients=40)
    _, engine = open_hub(fed.hub.directory)
    add_user(engine, "alice", ["researcher"])
    add_user(engine, "dac1", ["dac:node-1"])
    tok = {u: create_api_token(engine, u, days=1) for u in ("alice", "dac1")}
    tok["admin"] = fed.admin_token
    engine.dispose()

    def call(user: str, path: str, **body: object) -> dict:  # type: ignore[type-arg]
        r = httpx.post(
            fed.hub.url + path, json=body, headers={"authorization": f"Bearer {tok[user]}"}
        )
        assert r.status_code < 300, r.text
        return dict(r.json())

    nid = call(
        "alice",
        "/api/negotiations",
        title="t",
        resources=[{"id": "p1-cohort", "provider": "node-1"}],
        form=FORM,
    )["id"]
    for user, ev in (("alice", "SUBMIT"), ("admin", "APPROVE"), ("alice", "START")):
        view = call(user, f"/api/negotiations/{nid}/events", event=ev)
    row = view["resources"][0]["row"]
    for ev in ("MARK_AS_AVAILABLE", "GRANT_ACCESS_TO_RESOURCE"):
        call("dac1", f"/api/negotiations/{nid}/resources/{row}/events", event=ev)
    visas = httpx.get(
        fed.hub.url + "/api/visas", headers={"authorization": f"Bearer {tok['alice']}"}
    ).json()["visas"]
    token, jti = visas[0]["visa"], visas[0]["jti"]

    settings = load_node_settings(fed.nodes["node-1"].directory)
    node_state = state_engine(settings.resolve(settings.state_file))
    audit = AuditLog(node_state)
    deadline = time.monotonic() + 20
    while not verified_datasets(settings, node_state, audit, [token]):
        assert time.monotonic() < deadline, "the node never fetched a revocation list"
        time.sleep(0.5)

    # The SDK (and so the CLI) presents the researcher's visas by itself: records come back
    # where a plain query without them stays a count (issue 15).
    sdk = HubClient(fed.hub.url, tok["alice"])
    query = {"requestedGranularity": "record"}
    assert sdk.passport() == token
    answer = sdk.beacon("individuals", **query)
    assert answer["meta"]["returnedGranularity"] == "record", answer["meta"]
    assert answer["response"]["resultSets"][0]["results"], answer["response"]
    bare = httpx.get(
        fed.hub.url + "/beacon/v2/individuals",
        params=query,
        headers={"authorization": f"Bearer {tok['alice']}"},
        timeout=60,
    ).json()
    assert bare["meta"]["returnedGranularity"] != "record"
    # A caller without visas (the admin here) presents none.
    assert HubClient(fed.hub.url, tok["admin"]).passport() == ""

    start = time.monotonic()
    call("dac1", f"/api/visas/{jti}/revoke", reason="consent withdrawn")
    while verified_datasets(settings, node_state, audit, [token]):
        assert time.monotonic() - start < 30, "revocation did not reach the node in 30 s"
        time.sleep(0.5)
    entries = list(audit.entries())
    assert any(e["action"] == "visa.revocations" and jti in e["details"] for e in entries)
    assert entries[-1]["action"] == "visa.verify" and entries[-1]["decision"] == "deny"
    assert audit.verify() == []
