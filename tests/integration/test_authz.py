"""The authorisation matrix: every hub and node endpoint x every role (and anonymous, and an
expired token) → the expected answer. 401: who are you; 403: not your role; 404: not yours
to see; anything else means the caller got past authorisation (2xx, or 409/422/400 because
the request itself was refused after the role check).

A new endpoint fails `test_every_endpoint_is_in_the_matrix` until it is added here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from oncofed.hub.admin import create_api_token
from oncofed.hub.db import make_engine
from oncofed.hub.models import ApiToken
from oncofed.node.admin import init_node
from oncofed.node.app import create_app as create_node_app
from oncofed.security.envelope import utcnow
from oncofed.security.secrets_ import token_hash
from oncofed.settings import load_node_settings
from tests.integration.test_negotiation import FORM, Hub, res_event, start_hub, started

pytestmark = pytest.mark.integration

# Columns: anonymous, an expired token, hub admin, the researcher who owns the objects, another
# researcher, a data holder of node-1, a DAC member of node-1.
ROLES = ("anonymous", "expired", "admin", "alice", "bob", "holder1", "dac1")
Expect = dict[str, int | frozenset[int]]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    # The test hub's nodes are enrolled but never run: Beacon network queries answer at once
    # with every node pending instead of waiting the production 10 s. The matrix asks every
    # Beacon route as every role: far more than the search limit a minute (not under test).
    yield from start_hub(tmp_path / "hub", beacon_wait_seconds=0.2, search_rate_per_minute=100_000)


def public(code: int) -> Expect:
    return dict.fromkeys(ROLES, code)


def auth(default: int, **override: int | frozenset[int]) -> Expect:
    out: Expect = dict.fromkeys(ROLES, default)
    out.update(anonymous=401, expired=401, **override)
    return out


@dataclass
class Row:
    method: str
    template: str
    expect: Expect
    path: Callable[[dict[str, Any]], str] | None = None
    kwargs: dict[str, Any] | None = None


def p(template: str) -> Callable[[dict[str, Any]], str]:
    return lambda ids: template.format(**ids)


NEW = {
    "title": "t",
    "resources": [{"id": "ds-z", "provider": "node-2"}],
    "form": FORM,
}
HANDOVER = {"url": "https://x", "humanReadable": "q", "resources": [NEW["resources"][0]]}
BUSY = frozenset({200, 206})

HUB_MATRIX = [
    Row("GET", "/api/health", public(200)),
    Row("POST", "/api/auth/token", public(200), kwargs={"data": {"username": "alice"}}),
    Row("GET", "/api/me", auth(200)),
    Row(
        "POST",
        "/api/nodes/enrol",
        public(403),
        kwargs={"json": {"token": "ofe_" + "x" * 20, "public_key": "A" * 43}},
    ),
    Row("GET", "/api/nodes", auth(200)),
    Row("GET", "/api/hub/keys", public(200)),
    # Node channel: only a node's signed request gets in; a person's token never does.
    Row("GET", "/api/channel/tasks", public(401)),
    Row(
        "PUT",
        "/api/channel/tasks/{task_id}/result",
        public(401),
        p("/api/channel/tasks/{tid}/result"),
        {"json": {}},
    ),
    Row(
        "POST",
        "/api/tasks",
        auth(403, admin=201, alice=201, bob=201),
        kwargs={"json": {"kind": "node.info", "nodes": ["node-1"]}},
    ),
    Row("GET", "/api/tasks", auth(403, admin=200, alice=200, bob=200)),
    Row(
        "GET",
        "/api/tasks/{task_id}",
        auth(403, admin=200, alice=200, bob=404),
        p("/api/tasks/{tid}"),
    ),
    Row(
        "GET",
        "/api/tasks/{task_id}/results",
        auth(403, admin=BUSY, alice=BUSY, bob=404),
        p("/api/tasks/{tid}/results"),
    ),
    Row("GET", "/api/vocabulary", public(200)),
    # Tier 3 (issue 19): researchers run analyses; only the run's owner (or an admin) sees it.
    Row("GET", "/api/analyses/variables", public(200)),
    Row("POST", "/api/analyses", auth(403, admin=422, alice=422, bob=422), kwargs={"json": {}}),
    Row("GET", "/api/analyses", auth(403, admin=200, alice=200, bob=200)),
    Row(
        "GET",
        "/api/analyses/{run_id}",
        auth(403, admin=404, alice=404, bob=404),
        p("/api/analyses/{nosuch}"),
    ),
    # Tier 3 (issue 20): training and validation runs are a researcher's; weights move as
    # blobs that only a signed request (a node's, or the hub's own worker) may read or write.
    Row("GET", "/api/learning/runs", auth(403, admin=200, alice=200, bob=200)),
    Row(
        "POST", "/api/learning/runs", auth(403, admin=422, alice=422, bob=422), kwargs={"json": {}}
    ),
    Row(
        "GET",
        "/api/learning/runs/{run_id}",
        auth(403, admin=404, alice=404, bob=404),
        p("/api/learning/runs/{nosuch}"),
    ),
    Row(
        "GET",
        "/api/learning/runs/{run_id}/model",
        auth(403, admin=404, alice=404, bob=404),
        p("/api/learning/runs/{nosuch}/model"),
    ),
    Row("POST", "/api/learning/models", auth(403, admin=400, alice=400, bob=400)),  # empty
    Row(
        "POST",
        "/api/learning/validations",
        auth(403, admin=422, alice=422, bob=422),
        kwargs={"json": {}},
    ),
    Row("GET", "/api/blobs/{sha256}", public(401), p("/api/blobs/" + "0" * 64)),
    Row("PUT", "/api/blobs/{sha256}", public(401), p("/api/blobs/" + "0" * 64)),
    Row("POST", "/api/search", auth(403, admin=422, alice=422, bob=422), kwargs={"json": {}}),
    Row(
        "GET",
        "/api/search/{task_id}",
        auth(403, admin=404, alice=404, bob=404),
        p("/api/search/{nosuch}"),
    ),
    Row(
        "GET",
        "/api/search/{task_id}/events",
        auth(403, admin=404, alice=404, bob=404),
        p("/api/search/{nosuch}/events"),
    ),
    # Access negotiation (alice owns an IN_PROGRESS request for node-1, node-2, node-3).
    Row("GET", "/api/negotiations", auth(200)),
    Row(
        "POST", "/api/negotiations", auth(403, admin=201, alice=201, bob=201), kwargs={"json": NEW}
    ),
    Row("GET", "/api/negotiations/{nid}", auth(200, bob=404), p("/api/negotiations/{nid}")),
    Row(
        "PUT",
        "/api/negotiations/{nid}/form",
        auth(403, alice=409, bob=404),
        p("/api/negotiations/{nid}/form"),
        {"json": FORM},
    ),
    # APPROVE is the hub reviewer's (illegal now: 409 once past the role check).
    Row(
        "POST",
        "/api/negotiations/{nid}/events",
        auth(403, admin=409, bob=404),
        p("/api/negotiations/{nid}/events"),
        {"json": {"event": "APPROVE"}},
    ),
    # Granting is node-1's DAC's alone (already granted: 409 once past the role check).
    Row(
        "POST",
        "/api/negotiations/{nid}/resources/{row}/events",
        auth(403, dac1=409, bob=404),
        p("/api/negotiations/{nid}/resources/{row}/events"),
        {"json": {"event": "GRANT_ACCESS_TO_RESOURCE"}},
    ),
    Row(
        "GET",
        "/api/negotiations/{nid}/comments",
        auth(200, bob=404),
        p("/api/negotiations/{nid}/comments"),
    ),
    Row(
        "POST",
        "/api/negotiations/{nid}/comments",
        auth(201, bob=404),
        p("/api/negotiations/{nid}/comments"),
        {"json": {"body": "hello"}},
    ),
    Row(
        "GET",
        "/api/negotiations/{nid}/attachments",
        auth(200, bob=404),
        p("/api/negotiations/{nid}/attachments"),
    ),
    Row(
        "POST",
        "/api/negotiations/{nid}/attachments",
        auth(403, alice=201, bob=404),
        p("/api/negotiations/{nid}/attachments"),
        {"files": {"file": ("a.txt", b"x", "text/plain")}},
    ),
    Row(
        "GET",
        "/api/negotiations/{nid}/attachments/{att_id}",
        auth(200, bob=404),
        p("/api/negotiations/{nid}/attachments/{att}"),
    ),
    Row(
        "POST",
        "/api/v3/requests",
        auth(403, admin=201, alice=201, bob=201),
        kwargs={"json": HANDOVER},
    ),
    Row("GET", "/api/visas", auth(200)),
    Row(
        "POST",
        "/api/visas/{jti}/revoke",
        auth(404, admin=200, dac1=200),
        p("/api/visas/{jti}/revoke"),
        {"json": {"reason": "matrix"}},
    ),
    Row("GET", "/api/visas/revoked", public(200)),
    # The embedded OIDC issuer: public protocol endpoints; API tokens open none of them.
    Row("GET", "/oidc/.well-known/openid-configuration", public(200)),
    Row("GET", "/oidc/jwks", public(200)),
    Row("GET", "/oidc/authorize", public(400)),
    Row(
        "POST", "/oidc/authorize", public(400), kwargs={"data": {"username": "a", "password": "b"}}
    ),
    Row("POST", "/oidc/token", public(400), kwargs={"data": {}}),
    Row("GET", "/oidc/userinfo", public(401)),
    # The public catalogue (Tier 1): reading is open (a stale token is still told it is
    # stale); editing needs a log-in, and the catalogue is public, so an unknown dataset is a
    # 404 for everyone (tests/integration/test_catalogue.py checks who may edit what);
    # refresh and harvest are the admin's; a node's refresh request must be signed.
    Row("GET", "/api/catalogue/datasets", {**public(200), "expired": 401}),
    Row(
        "GET",
        "/api/catalogue/datasets/{key}",
        {**public(404), "expired": 401},
        p("/api/catalogue/datasets/node-1:nosuch"),
    ),
    Row(
        "PATCH",
        "/api/catalogue/datasets/{key}",
        auth(404),
        p("/api/catalogue/datasets/node-1:nosuch"),
        {"json": {"title": "new title"}},
    ),
    Row(
        "POST",
        "/api/catalogue/refresh",
        auth(403, admin=frozenset({200, 206, 409})),
        kwargs={"json": {"timeout_seconds": 1}},
    ),
    Row("POST", "/api/catalogue/nodes/refresh", public(401)),
    Row(
        "POST",
        "/api/catalogue/harvest",
        auth(403, admin=422),
        kwargs={"json": {"url": "ftp://example.org/fdp"}},
    ),
    Row("GET", "/api/catalogue/export", public(200)),
    Row("GET", "/fdp", public(200)),
    Row("GET", "/fdp/catalog", public(200)),
    Row("GET", "/fdp/dataset/{key}", public(404), p("/fdp/dataset/node-1:nosuch")),
    Row("GET", "/fdp/distribution/{key}", public(404), p("/fdp/distribution/node-1:nosuch")),
    # External OIDC log-in is off unless configured.
    Row("GET", "/api/auth/oidc/login", public(404)),
    Row("GET", "/api/auth/oidc/callback", public(404)),
]


# Beacon v2 (issue 4): the framework documents are public; every query fans out to the
# nodes and needs a researcher (or the admin). GET and POST behave alike.
BEACON_FRAMEWORK = ("", "/info", "/service-info", "/configuration", "/map", "/entry_types")
BEACON_ENTRIES = (
    "individuals",
    "biosamples",
    "g_variants",
    "analyses",
    "runs",
    "cohorts",
    "datasets",
)
BEACON_LINKED = ("individuals", "biosamples", "g_variants", "analyses", "runs")


def beacon_paths() -> list[tuple[str, bool]]:
    """(path, public) for every Beacon endpoint under /beacon/v2."""
    out = [(f"/beacon/v2{p}", True) for p in BEACON_FRAMEWORK]
    out.append(("/beacon/v2/filtering_terms", False))
    for entry in BEACON_ENTRIES:
        out += [(f"/beacon/v2/{entry}", False), (f"/beacon/v2/{entry}/{{entry_id}}", False)]
        if entry not in ("cohorts", "datasets"):
            out += [
                (f"/beacon/v2/{entry}/{{entry_id}}/{other}", False)
                for other in BEACON_LINKED
                if other != entry
            ]
    return out


RESEARCH = auth(403, admin=200, alice=200, bob=200)
for _path, _public in beacon_paths():
    for _method in ("GET", "POST"):
        HUB_MATRIX.append(
            Row(
                _method,
                _path,
                public(200) if _public else RESEARCH,
                p(_path.replace("{entry_id}", "nosuch")) if "{" in _path else None,
                {"json": {}} if _method == "POST" else None,
            )
        )


# Log-out revokes the presented token: last, so that no later row runs with a revoked one.
HUB_MATRIX.append(Row("DELETE", "/api/auth/token", auth(200)))


def expired_token(hub: Hub) -> str:
    engine = make_engine(hub.settings.db_url)
    token = create_api_token(engine, "alice", name="old", days=1)
    with engine.begin() as con:
        con.execute(
            sa.update(ApiToken)
            .where(ApiToken.token_hash == token_hash(token))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    engine.dispose()
    return token


def fixtures(hub: Hub) -> dict[str, Any]:
    nid, rows = started(hub)
    res_event(hub, nid, rows["node-1"], "dac1", "MARK_AS_AVAILABLE")
    res_event(hub, nid, rows["node-1"], "dac1", "GRANT_ACCESS_TO_RESOURCE")
    jti = hub.call("GET", "/api/visas", "alice").json()["visas"][0]["jti"]
    att = hub.call(
        "POST",
        f"/api/negotiations/{nid}/attachments",
        "alice",
        files={"file": ("ethics.pdf", b"%PDF", "application/pdf")},
    ).json()["id"]
    tid = hub.call("POST", "/api/tasks", "alice", json={"kind": "node.info"}).json()["id"]
    # An unknown search id (a node.info task id would pass the owner check and then end
    # the events stream with an `error` event).
    nosuch = "0" * 32
    return {"nid": nid, "row": rows["node-1"], "jti": jti, "att": att, "tid": tid, "nosuch": nosuch}


def headers_for(hub: Hub, role: str, expired: str) -> dict[str, str]:
    if role == "anonymous":
        return {}
    token = expired if role == "expired" else hub.tokens[role]
    return {"authorization": f"Bearer {token}"}


def test_every_endpoint_is_in_the_matrix(hub: Hub) -> None:
    served = {
        (method.upper(), path)
        for path, ops in hub.client.app.openapi()["paths"].items()  # type: ignore[attr-defined]
        for method in ops
    }
    listed = {(r.method, r.template) for r in HUB_MATRIX}
    assert served - listed == set(), "add these endpoints to the authorisation matrix"
    assert listed - served == set(), "these matrix rows name endpoints that no longer exist"


def test_hub_authorisation_matrix(hub: Hub) -> None:
    ids = fixtures(hub)
    expired = expired_token(hub)
    body = HUB_MATRIX[1].kwargs
    assert body is not None
    body["data"]["password"] = hub.passwords["alice"]
    failures = []
    for row in HUB_MATRIX:
        path = row.path(ids) if row.path else row.template
        for role in ROLES:
            r = hub.client.request(
                row.method, path, headers=headers_for(hub, role, expired), **(row.kwargs or {})
            )
            want = row.expect[role]
            ok = r.status_code in want if isinstance(want, frozenset) else r.status_code == want
            if not ok:
                failures.append(
                    f"{row.method} {row.template} as {role}: {r.status_code} "
                    f"(expected {want}) {r.text[:120]}"
                )
    assert failures == [], "\n".join(failures)
    # Every refusal that reached a decision is in the audit log, and the chain holds.
    audit = list(hub.ctx.audit.entries())
    assert any(e["decision"] == "deny" and e["actor"] == "dac1" for e in audit)
    assert hub.ctx.audit.verify() == []


def test_node_authorisation_matrix(hub: Hub, tmp_path: Path) -> None:
    """The node trusts no hub API token: its endpoints answer the same to every role, the
    EUCAIM mediator is closed until the node's own key is configured, and record-level data
    needs a visa the node verifies itself (tests/unit/test_visas.py)."""
    init_node(tmp_path / "node", "node-x", "px", port=8711)
    settings = load_node_settings(tmp_path / "node")
    node_matrix = [
        Row("GET", "/health", public(200)),
        Row("GET", "/info", public(200)),
        Row("GET", "/mediator", public(403)),
        Row("POST", "/mediator", public(403), kwargs={"json": {}}),
        # The local admin API takes only the node's own admin token (a file on the node's
        # machine): every hub token, valid or not, is refused.
        Row("POST", "/api/admin/ingest", public(401),
            kwargs={"json": {"kind": "fhir", "paths": ["x"]}}),
        Row("GET", "/api/admin/ingest/{job_id}", public(401), p("/api/admin/ingest/none")),
    ]  # fmt: skip
    # The node's own Beacon answers everyone the same way (a hub token is no grant): open
    # framework documents, and queries capped to what each dataset allows without a visa.
    for path, _ in beacon_paths():
        for method in ("GET", "POST"):
            node_matrix.append(
                Row(
                    method,
                    path,
                    public(200),
                    p(path.replace("{entry_id}", "nosuch")) if "{" in path else None,
                    {"json": {}} if method == "POST" else None,
                )
            )
    expired = expired_token(hub)
    with TestClient(create_node_app(settings, run_agent=False)) as node:
        served = {
            (m.upper(), path)
            for path, ops in node.app.openapi()["paths"].items()  # type: ignore[attr-defined]
            for m in ops
        }
        assert served == {(r.method, r.template) for r in node_matrix}, "update the node matrix"
        failures = []
        for row in node_matrix:
            for role in ROLES:
                r = node.request(
                    row.method,
                    row.path({}) if row.path else row.template,
                    headers=headers_for(hub, role, expired),
                    **(row.kwargs or {}),
                )
                if r.status_code != row.expect[role]:
                    failures.append(f"{row.method} {row.template} as {role}: {r.status_code}")
        assert failures == [], "\n".join(failures)
