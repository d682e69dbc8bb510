"""Access negotiation on a real hub application (in process, real database and audit log):
the whole path from a request to a signed visa, DAC sovereignty, comments, attachments,
notifications, reminders, revocation and the Negotiator v3 hand-over.

The `hub` fixture here is shared by the other identity tests (authorisation matrix, OIDC).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from oncofed.audit import AuditLog
from oncofed.hub.admin import add_node, add_user, create_api_token, init_hub
from oncofed.hub.app import create_app
from oncofed.hub.context import HubContext
from oncofed.hub.db import make_engine
from oncofed.hub.negotiation.mail import OUTBOX_FILE, deliver_pending, send_reminders
from oncofed.security.keys import SigningKey
from oncofed.security.visas import VisaError, verify_revocation_list, verify_visa
from oncofed.settings import HubSettings, save_settings

FORM = {
    "purpose": "Validate an MRI prostate cancer detection model on external cohorts.",
    "duo_codes": ["DUO:0000006", "DUO:0000019"],
    "hypothesis": "The model generalises across scanners.",
    "objectives": "AUC on three external sites.",
    "methods": "Federated evaluation; no data leaves the sites.",
    "team": "A. Researcher (PI), B. Analyst",
    "funding": "Horizon Europe grant 101057123",
    "ethics_approval": "EC-2024-117, approved 2024-03-02",
}
USERS = {
    "alice": ["researcher"],
    "bob": ["researcher"],
    "dac1": ["dac:node-1"],
    "dac2": ["dac:node-2"],
    "holder1": ["data_holder:node-1"],
}


@dataclass
class Hub:
    client: TestClient
    settings: HubSettings
    directory: Path
    tokens: dict[str, str]
    nodes: dict[str, str] = field(default_factory=dict)  # name -> node id
    passwords: dict[str, str] = field(default_factory=dict)

    def h(self, user: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[user]}"} if user else {}

    def call(self, method: str, path: str, user: str | None, **kw: Any) -> Any:
        return self.client.request(method, path, headers=self.h(user), **kw)

    @property
    def ctx(self) -> HubContext:
        ctx: HubContext = self.client.app.state.hub  # type: ignore[attr-defined]
        return ctx

    def outbox(self) -> list[dict[str, Any]]:
        deliver_pending(self.ctx)
        path = self.directory / OUTBOX_FILE
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def start_hub(base: Path, **overrides: Any) -> Iterator[Hub]:
    result = init_hub(base, "test hub", "127.0.0.1", 8799)
    settings = result.settings
    for key, value in overrides.items():
        setattr(settings, key, value)
    save_settings(settings)
    engine = make_engine(settings.db_url)
    tokens = {"admin": result.admin_token}
    passwords = {"admin": result.admin_password}
    for user, roles in USERS.items():
        passwords[user] = add_user(engine, user, roles)
        tokens[user] = create_api_token(engine, user, name="test", days=1)
    node_tokens = {name: add_node(engine, name, hours=1) for name in ("node-1", "node-2", "node-3")}
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        hub = Hub(client, settings, base, tokens, passwords=passwords)
        for name, token in node_tokens.items():
            key = SigningKey.generate()
            r = client.post("/api/nodes/enrol", json={"token": token, "public_key": key.public.b64})
            assert r.status_code == 200, r.text
            hub.nodes[name] = r.json()["node_id"]
        yield hub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from start_hub(tmp_path / "hub")


def new_request(hub: Hub, user: str = "alice", form: dict[str, Any] | None = None) -> str:
    r = hub.call(
        "POST",
        "/api/negotiations",
        user,
        json={
            "title": "MRI prostate model validation",
            "resources": [
                {"id": "ds-a", "name": "Prostate MRI A", "provider": "node-1"},
                {"id": "ds-b", "name": "Prostate MRI B", "provider": "node-2"},
                {"id": "ds-c", "name": "Prostate MRI C", "provider": "node-3"},
            ],
            "form": FORM if form is None else form,
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "DRAFT"
    return str(r.json()["id"])


def event(hub: Hub, nid: str, user: str, ev: str, status: int = 200) -> dict[str, Any]:
    r = hub.call("POST", f"/api/negotiations/{nid}/events", user, json={"event": ev})
    assert r.status_code == status, r.text
    return dict(r.json())


def res_event(
    hub: Hub, nid: str, row: int, user: str, ev: str, status: int = 200, **extra: Any
) -> dict[str, Any]:
    r = hub.call(
        "POST",
        f"/api/negotiations/{nid}/resources/{row}/events",
        user,
        json={"event": ev, **extra},
    )
    assert r.status_code == status, r.text
    return dict(r.json())


def started(hub: Hub) -> tuple[str, dict[str, int]]:
    """A request that is IN_PROGRESS; returns its id and resource rows by provider."""
    nid = new_request(hub)
    event(hub, nid, "alice", "SUBMIT")
    event(hub, nid, "admin", "APPROVE")
    view = event(hub, nid, "alice", "START")
    return nid, {r["provider"]: r["row"] for r in view["resources"]}


def grant(hub: Hub) -> tuple[str, str]:
    """alice holds a visa for ds-a at node-1; returns (negotiation id, visa token)."""
    nid, rows = started(hub)
    # One step for the DAC (issue 15), recorded as the Negotiator's two transitions.
    view = res_event(hub, nid, rows["node-1"], "dac1", "GRANT_ACCESS_TO_RESOURCE")
    steps = [(h["event"], h["to"]) for h in view["history"] if h["resource_row"] == rows["node-1"]]
    assert steps[-2:] == [
        ("MARK_AS_AVAILABLE", "RESOURCE_AVAILABLE"),
        ("GRANT_ACCESS_TO_RESOURCE", "RESOURCE_MADE_AVAILABLE"),
    ]
    assert {h["provider"] for h in view["history"] if h["resource_row"]} >= {"node-1"}
    visas = hub.call("GET", "/api/visas", "alice").json()["visas"]
    assert len(visas) == 1
    return nid, str(visas[0]["visa"])


def test_request_to_grant_to_revocation(hub: Hub) -> None:
    nid = new_request(hub)
    # A draft is private to its author.
    assert hub.call("GET", f"/api/negotiations/{nid}", "dac1").status_code == 404
    assert hub.call("GET", f"/api/negotiations/{nid}", "bob").status_code == 404
    event(hub, nid, "alice", "SUBMIT")
    # Only the hub's reviewers approve; the researcher cannot approve their own request.
    assert "admin" in event(hub, nid, "alice", "APPROVE", 403)["detail"]
    event(hub, nid, "admin", "APPROVE")
    view = event(hub, nid, "alice", "START")
    states = {r["provider"]: r["state"] for r in view["resources"]}
    assert states == {
        "node-1": "REPRESENTATIVE_CONTACTED",
        "node-2": "REPRESENTATIVE_CONTACTED",
        "node-3": "REPRESENTATIVE_UNREACHABLE",  # no DAC member for node-3
    }
    rows = {r["provider"]: r["row"] for r in view["resources"]}
    # Each provider's DAC decides on its own resource only; the hub admin decides on none.
    res_event(hub, nid, rows["node-1"], "dac2", "MARK_AS_AVAILABLE", 403)
    res_event(hub, nid, rows["node-1"], "admin", "GRANT_ACCESS_TO_RESOURCE", 403)
    res_event(hub, nid, rows["node-1"], "holder1", "MARK_AS_AVAILABLE", 403)
    res_event(hub, nid, rows["node-1"], "dac1", "MARK_AS_CHECKING_AVAILABILITY")
    res_event(hub, nid, rows["node-1"], "dac1", "MARK_AS_AVAILABLE")
    res_event(
        hub,
        nid,
        rows["node-1"],
        "dac1",
        "INDICATE_ACCESS_CONDITIONS",
        conditions="Acknowledge the provider in publications.",
    )
    res_event(hub, nid, rows["node-1"], "dac1", "ACCEPT_ACCESS_CONDITIONS", 403)
    res_event(hub, nid, rows["node-1"], "alice", "ACCEPT_ACCESS_CONDITIONS")
    view = res_event(hub, nid, rows["node-1"], "dac1", "GRANT_ACCESS_TO_RESOURCE", grant_days=30)
    res_event(hub, nid, rows["node-2"], "dac2", "MARK_AS_UNAVAILABLE", note="consent excludes AI")
    final = {
        r["provider"]: r["state"]
        for r in hub.call("GET", f"/api/negotiations/{nid}", "alice").json()["resources"]
    }
    assert final["node-1"] == "RESOURCE_MADE_AVAILABLE"
    assert final["node-2"] == "RESOURCE_UNAVAILABLE"
    # A refusal is final: no grant afterwards, not even in one step.
    err = res_event(hub, nid, rows["node-2"], "dac2", "GRANT_ACCESS_TO_RESOURCE", 409)
    assert "RESOURCE_UNAVAILABLE is final" in err["detail"]
    assert [h["event"] for h in view["history"]][:3] == ["SUBMIT", "APPROVE", "START"]

    # The grant is a visa signed by the hub key, for this dataset, at this node only.
    visas = hub.call("GET", "/api/visas", "alice").json()["visas"]
    assert [v["dataset"] for v in visas] == ["ds-a"]
    hub_key = hub.ctx.key.public
    visa = verify_visa(
        visas[0]["visa"],
        hub_key,
        issuer=hub.settings.url,
        audience=hub.nodes["node-1"],
        dataset="ds-a",
        subject="alice",
    )
    assert visa.claims["ga4gh_visa_v1"]["by"] == "dac"
    assert visa.claims["oncofed"]["duo"] == ["DUO:0000006", "DUO:0000019"]
    with pytest.raises(VisaError) as wrong_node:
        verify_visa(visas[0]["visa"], hub_key, audience=hub.nodes["node-2"], dataset="ds-a")
    assert wrong_node.value.reason == "audience"
    assert hub.call("GET", "/api/visas", "bob").json()["visas"] == []

    # Revocation: not by another provider's DAC; by node-1's DAC, published in the signed list.
    jti = visas[0]["jti"]
    assert (
        hub.call("POST", f"/api/visas/{jti}/revoke", "dac2", json={"reason": "x"}).status_code
        == 404
    )
    r = hub.call("POST", f"/api/visas/{jti}/revoke", "dac1", json={"reason": "consent withdrawn"})
    assert r.status_code == 200, r.text
    listed = verify_revocation_list(
        hub.client.get("/api/visas/revoked").json()["token"], hub_key, hub.settings.url
    )
    assert jti in listed.revoked
    with pytest.raises(VisaError) as revoked:
        verify_visa(visas[0]["visa"], hub_key, dataset="ds-a", revoked=listed.revoked)
    assert revoked.value.reason == "revoked"
    assert hub.call("GET", "/api/visas", "alice").json()["visas"] == []

    # Every decision is in the hash-chained audit log, and the chain verifies.
    audit = AuditLog(hub.ctx.engine)
    actions = [e["action"] for e in audit.entries()]
    for action in (
        "negotiation.create",
        "negotiation.submit",
        "negotiation.approve",
        "negotiation.start",
        "negotiation.resource.grant_access_to_resource",
        "negotiation.resource.mark_as_unavailable",
        "visa.revoke",
    ):
        assert action in actions, action
    denied = [e for e in audit.entries() if e["decision"] == "deny"]
    assert any(e["actor"] == "dac2" and "node-1" in e["reason"] for e in denied)
    assert audit.verify() == []

    # Notifications went to the log outbox (no SMTP configured).
    mails = hub.outbox()
    assert any(m["to_user"] == "admin" and "new access request" in m["subject"] for m in mails)
    assert any(m["to_user"] == "dac1" and nid in m["subject"] for m in mails)
    assert any(m["to_user"] == "alice" and m["subject"].endswith(": granted") for m in mails)
    assert any(m["to_user"] == "alice" and "revoked" in m["subject"] for m in mails)
    assert not any(m["to_user"] == "dac1" and "Bearer" in m["body"] for m in mails)


def test_submit_needs_the_whole_form(hub: Hub) -> None:
    nid = new_request(hub, form={"purpose": "a study", "duo_codes": ["DUO:0000019"]})
    detail = event(hub, nid, "alice", "SUBMIT", 422)["detail"]
    assert "hypothesis" in detail and "ethics_approval" in detail and "duo_codes" in detail
    r = hub.call("PUT", f"/api/negotiations/{nid}/form", "alice", json=FORM)
    assert r.status_code == 200 and r.json()["missing"] == []
    assert hub.call("PUT", f"/api/negotiations/{nid}/form", "bob", json=FORM).status_code == 404
    event(hub, nid, "alice", "SUBMIT")
    # Submitted requests are frozen.
    assert hub.call("PUT", f"/api/negotiations/{nid}/form", "alice", json=FORM).status_code == 409
    bad = hub.call("PUT", f"/api/negotiations/{nid}/form", "alice", json={"duo_codes": ["DUO:9"]})
    assert bad.status_code == 422 and "unknown DUO code" in bad.text


def test_unknown_provider_and_illegal_events_are_explained(hub: Hub) -> None:
    r = hub.call(
        "POST",
        "/api/negotiations",
        "alice",
        json={"title": "t", "resources": [{"id": "x", "provider": "nowhere"}]},
    )
    assert r.status_code == 422 and "node-1" in r.json()["detail"]
    nid = new_request(hub)
    assert (
        "possible from DRAFT: SUBMIT, ABANDON" in event(hub, nid, "alice", "START", 409)["detail"]
    )
    assert "one of SUBMIT" in event(hub, nid, "alice", "FINISH", 422)["detail"]
    event(hub, nid, "alice", "ABANDON")
    assert "final" in event(hub, nid, "alice", "SUBMIT", 409)["detail"]


def test_pause_blocks_decisions_and_abandon_revokes(hub: Hub) -> None:
    nid, token = grant(hub)
    rows = {
        r["provider"]: r["row"]
        for r in hub.call("GET", f"/api/negotiations/{nid}", "alice").json()["resources"]
    }
    event(hub, nid, "alice", "PAUSE")
    detail = res_event(hub, nid, rows["node-2"], "dac2", "MARK_AS_AVAILABLE", 409)["detail"]
    assert "PAUSED" in detail
    event(hub, nid, "admin", "UNPAUSE")
    res_event(hub, nid, rows["node-2"], "dac2", "MARK_AS_AVAILABLE")
    event(hub, nid, "alice", "ABANDON")
    listed = verify_revocation_list(
        hub.client.get("/api/visas/revoked").json()["token"], hub.ctx.key.public
    )
    claims = verify_visa(token, hub.ctx.key.public).claims
    assert claims["jti"] in listed.revoked


def test_comments_and_attachments(hub: Hub) -> None:
    nid, _ = started(hub)
    r = hub.call(
        "POST",
        f"/api/negotiations/{nid}/comments",
        "alice",
        json={"body": "Can you share T2 only?", "provider": "node-1"},
    )
    assert r.status_code == 201, r.text
    r = hub.call("POST", f"/api/negotiations/{nid}/comments", "dac1", json={"body": "Yes."})
    assert r.status_code == 201
    assert (
        hub.call(
            "POST", f"/api/negotiations/{nid}/comments", "bob", json={"body": "hi"}
        ).status_code
        == 404
    )
    bodies = [
        c["body"] for c in hub.call("GET", f"/api/negotiations/{nid}/comments", "holder1").json()
    ]
    assert bodies == ["Can you share T2 only?", "Yes."]
    # Addressed to node-1: not for node-2's DAC, which may not write to node-1 either.
    seen = [c["body"] for c in hub.call("GET", f"/api/negotiations/{nid}/comments", "dac2").json()]
    assert seen == ["Yes."]
    r = hub.call("POST", f"/api/negotiations/{nid}/comments", "dac2",
                 json={"body": "psst", "provider": "node-1"})  # fmt: skip
    assert r.status_code == 403
    pdf = b"%PDF-1.4 ethics approval letter"
    r = hub.call(
        "POST",
        f"/api/negotiations/{nid}/attachments",
        "alice",
        files={"file": ("../../ethics.pdf", pdf, "application/pdf")},
    )
    assert r.status_code == 201, r.text
    assert r.json()["filename"] == "ethics.pdf"
    att = r.json()["id"]
    got = hub.call("GET", f"/api/negotiations/{nid}/attachments/{att}", "dac1")
    assert got.content == pdf and got.headers["content-disposition"].startswith("attachment")
    assert hub.call("GET", f"/api/negotiations/{nid}/attachments/{att}", "bob").status_code == 404
    mails = hub.outbox()
    assert any(m["to_user"] == "dac1" and "comment" in m["subject"] for m in mails)
    assert not any(m["to_user"] == "dac2" and "comment" in m["subject"] for m in mails)


def test_reminders_to_a_silent_dac(tmp_path: Path) -> None:
    for hub in start_hub(tmp_path / "hub", negotiation_reminder_seconds=1):
        started(hub)
        time.sleep(1.2)
        assert send_reminders(hub.ctx) == 2  # node-1 and node-2; node-3 has no DAC
        assert send_reminders(hub.ctx) == 0  # not again within the period
        reminders = [m for m in hub.outbox() if "reminder" in m["subject"]]
        assert {m["to_user"] for m in reminders} == {"dac1", "dac2"}


def test_negotiator_v3_handover(hub: Hub) -> None:
    body = {
        "url": "https://search.example.org/query/42",
        "humanReadable": "sex: female AND diagnosis: breast",
        "resources": [
            {"id": "ds-a", "name": "Breast MRI", "organization": {"externalId": "node-1"}},
            {"id": "ds-b", "name": "Breast CT", "provider": "node-2"},
        ],
    }
    assert hub.call("POST", "/api/v3/requests", None, json=body).status_code == 401
    assert hub.call("POST", "/api/v3/requests", "dac1", json=body).status_code == 403
    r = hub.call("POST", "/api/v3/requests", "alice", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["redirectUrl"].endswith(out["negotiationId"])
    assert [x["provider"] for x in out["resources"]] == ["node-1", "node-2"]
    view = hub.call("GET", f"/api/negotiations/{out['id']}", "alice").json()
    assert view["state"] == "DRAFT" and view["source"]["url"] == body["url"]
