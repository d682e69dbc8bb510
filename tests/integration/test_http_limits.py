"""Bounded request bodies and errors that never echo input, on the hub and the node.

Issue 17: one anonymous 10 MB JSON body to ``POST /api/nodes/enrol`` held the hub's event
loop for 12 s and came back whole inside the 422; the node's anonymous Beacon grew by
~200 MB per such request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from oncofed.node.admin import init_node
from oncofed.node.app import create_app as create_node_app
from oncofed.security.http import DEFAULT_BODY_BYTES
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
            assert len(r.content) < 300


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
