"""Bounded request bodies and errors that never echo input, on the hub and the node.

Issue 17: one anonymous 10 MB JSON body to ``POST /api/nodes/enrol`` held the hub's event
loop for 12 s and came back whole inside the 422; the node's anonymous Beacon grew by
~200 MB per such request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from oncofed.hub.negotiation.forms import ResourceEventRequest
from oncofed.node.admin import init_node
from oncofed.node.app import create_app as create_node_app
from oncofed.security.http import DEFAULT_BODY_BYTES, harden, small_int
from oncofed.settings import load_node_settings
from tests.integration.test_negotiation import Hub, start_hub, started

MB = 1024 * 1024


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    yield from start_hub(tmp_path_factory.mktemp("hub"))


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    base = tmp_path_factory.mktemp("node")
    init_node(base / "node", "node-x", "px", port=8712)
    with TestClient(create_node_app(load_node_settings(base / "node"), run_agent=False)) as c:
        yield c


def _chunks(total: int) -> Iterator[bytes]:
    """A body without Content-Length (chunked), so only counting the bytes can stop it."""
    yield b'{"token": "'
    for _ in range(total // MB):
        yield b"A" * MB
    yield b'"}'


def test_oversized_bodies_are_refused_unread(hub: Hub, node: TestClient) -> None:
    big = json.dumps({"token": "A" * (10 * MB), "public_key": "x"})
    form = "application/x-www-form-urlencoded"
    for client, path, kind, status in (
        (hub.client, "/api/nodes/enrol", "application/json", {413}),
        (hub.client, "/api/search", "application/json", {413}),
        (hub.client, "/login", form, {413}),
        (node, "/beacon/v2/individuals", "application/json", {413}),
        (node, "/mediator", "application/json", {403, 413}),  # no API key: refused unread
    ):
        for body in (big, _chunks(10 * MB)):
            r = client.post(path, content=body, headers={"content-type": kind})
            assert r.status_code in status, (path, r.status_code)
            assert len(r.content) < 1000


def test_validation_errors_never_echo_input(hub: Hub, node: TestClient) -> None:
    secret = "B" * (DEFAULT_BODY_BYTES // 2)
    for body in (
        {"token": {"nested": secret}, "public_key": "x"},  # wrong type
        {secret: 1},  # a huge unknown key, and the fields missing
        [secret],  # not an object at all
    ):
        r = hub.client.post("/api/nodes/enrol", json=body)
        assert r.status_code == 422, r.text[:200]
        assert secret[:300] not in r.text and len(r.content) < 4096, r.text[:300]
        assert r.json()["detail"][0]["loc"][0] == "body"
    r = node.post("/beacon/v2/individuals", json={"query": {"filters": [{"id": secret}]}})
    assert r.status_code == 400 and len(r.content) < 4096


def test_uploads_take_their_own_size(hub: Hub) -> None:
    nid, _ = started(hub)
    path = f"/api/negotiations/{nid}/attachments"
    letter = b"%PDF-1.4 " + b"x" * (2 * MB)  # over the default limit, under the upload's
    r = hub.call("POST", path, "alice", files={"file": ("ethics.pdf", letter, "application/pdf")})
    assert r.status_code == 201, r.text[:300]
    huge = b"x" * (12 * MB)
    r = hub.call("POST", path, "alice", files={"file": ("big.pdf", huge, "application/pdf")})
    assert r.status_code == 413


def test_ids_and_numbers_are_checked_at_the_edge(hub: Hub) -> None:
    """An id past the database's integer range is a 422, not a 500 from the database;
    '²' passes ``str.isdigit`` but is no number."""
    nid, _ = started(hub)
    for big in (2**31, 2**63, 2**64):
        r = hub.call("GET", f"/api/negotiations/{nid}/attachments/{big}", "alice")
        assert r.status_code == 422, (big, r.status_code)
        r = hub.call("POST", f"/api/negotiations/{nid}/resources/{big}/events", "dac1",
                     json={"event": "MARK_AS_AVAILABLE"})  # fmt: skip
        assert r.status_code == 422
    assert [small_int(t) for t in ("²", "٣", "12", " 7 ", "-1", "99999999999")] == [
        None, None, 12, 7, None, None]  # fmt: skip
    with pytest.raises(ValidationError):
        ResourceEventRequest(event="GRANT", grant_days="²")  # type: ignore[arg-type]


def test_a_trickled_body_gets_408() -> None:
    """A body that does not arrive in time frees its connection and handler (driven as
    ASGI: the test client sends a body whole)."""
    app = FastAPI()
    harden(app, body_seconds=0.2)

    @app.post("/echo")
    async def echo(payload: dict[str, int]) -> dict[str, int]:
        return payload

    async def run() -> list[Any]:
        sent: list[Any] = []
        parts = [b'{"a": ', b"1}"]

        async def receive() -> dict[str, Any]:
            if len(parts) == 1:
                await asyncio.sleep(5)  # the client stalls before its last byte
            return {"type": "http.request", "body": parts.pop(0), "more_body": bool(parts)}

        async def send(message: Any) -> None:
            sent.append(message)

        headers = [(b"content-type", b"application/json")]
        scope = {"type": "http", "method": "POST", "path": "/echo", "headers": headers,
                 "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
                 "server": ("t", 80), "client": ("c", 1)}  # fmt: skip
        await app(scope, receive, send)
        return sent

    sent = asyncio.run(run())
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 408
    assert b"did not arrive within" in sent[1]["body"]
