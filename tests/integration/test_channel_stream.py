"""The task channel's stream (WebSocket) transport, driven by hand against a real hub.

The agents in the other channel tests use the stream already; here a test plays the node
so that it can replay a handshake, forge one, send a result for the wrong task and watch
what the hub answers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from oncofed.audit import AuditLog
from oncofed.hub.admin import open_hub, revoke_node
from oncofed.local import LocalFederation
from oncofed.security.envelope import SignedEnvelope, iso, utcnow
from oncofed.security.keys import SigningKey
from oncofed.security.request_auth import sign_request
from oncofed.settings import load_node_settings
from tests.conftest import FederationFactory

pytestmark = pytest.mark.integration

PATH = "/api/channel/stream"


def node_identity(fed: LocalFederation, name: str) -> tuple[str, SigningKey]:
    settings = load_node_settings(fed.nodes[name].directory)
    return settings.node_id, SigningKey.load(settings.resolve(settings.key_file))


def open_stream(fed: LocalFederation, headers: dict[str, str]) -> ClientConnection:
    return connect(
        fed.hub.url.replace("http://", "ws://") + PATH, additional_headers=headers, open_timeout=10
    )


def receive(ws: ClientConnection) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=30)))


def result(task_id: str, node_id: str, key: SigningKey, body: dict[str, Any]) -> dict[str, Any]:
    payload = {
        "type": "oncofed.result",
        "task_id": task_id,
        "node_id": node_id,
        "status": "succeeded",
        "body": body,
        "error": None,
        "issued_at": iso(utcnow()),
    }
    return SignedEnvelope.sign(payload, key).model_dump()


def test_stream_delivers_tasks_and_acknowledges_results(
    make_federation: FederationFactory,
) -> None:
    fed = make_federation(1)
    fed.nodes["node-1"].stop()
    node_id, key = node_identity(fed, "node-1")
    with fed.admin() as client, open_stream(fed, sign_request(node_id, key, "GET", PATH)) as ws:
        assert receive(ws) == {"type": "tasks", "tasks": []}  # the handshake's answer
        task_id = client.submit("node.info", ttl_seconds=60)
        pushed = receive(ws)
        assert [t["task_id"] for t in pushed["tasks"]] == [task_id]
        assert pushed["tasks"][0]["envelope"]["payload"]["to"] == [node_id]
        # A result for another task is refused (and nothing is recorded for either).
        other = client.submit("node.info", ttl_seconds=60)
        assert [t["task_id"] for t in receive(ws)["tasks"]] == [other]
        wrong = result(other, node_id, key, {"forged": True})
        ws.send(json.dumps({"type": "result", "task_id": task_id, "envelope": wrong}))
        ack = receive(ws)
        assert ack["task_id"] == task_id and ack["status"] == 400
        assert "another task" in ack["detail"]
        # A result signed by another key is refused.
        forged = result(task_id, node_id, SigningKey.generate(), {"name": "node-1"})
        ws.send(json.dumps({"type": "result", "task_id": task_id, "envelope": forged}))
        assert receive(ws)["status"] == 400
        # The right result is recorded once; the same again is a harmless duplicate.
        good = result(task_id, node_id, key, {"name": "node-1"})
        for recorded in (True, False):
            ws.send(json.dumps({"type": "result", "task_id": task_id, "envelope": good}))
            assert receive(ws) == {
                "type": "ack",
                "task_id": task_id,
                "status": 200,
                "recorded": recorded,
            }
        # A different result for the finished target is a conflict.
        changed = result(task_id, node_id, key, {"name": "changed"})
        ws.send(json.dumps({"type": "result", "task_id": task_id, "envelope": changed}))
        assert receive(ws)["status"] == 409
        view = client.task(task_id)
        assert view["targets"][0]["status"] == "succeeded"
        assert view["targets"][0]["result"] == {"name": "node-1"}
        assert client.task(other)["targets"][0]["status"] == "claimed"
    denials = {e["action"] for e in AuditLog(open_hub(fed.hub.directory)[1]).entries()}
    assert {"result.address", "result.signature", "task.result"} <= denials


def test_batched_acknowledgements_ride_on_the_next_message(
    make_federation: FederationFactory,
) -> None:
    fed = make_federation(1)
    fed.nodes["node-1"].stop()
    node_id, key = node_identity(fed, "node-1")
    path = PATH + "?acks=batch"
    stream = connect(
        fed.hub.url.replace("http://", "ws://") + path,
        additional_headers=sign_request(node_id, key, "GET", path),
        open_timeout=10,
    )
    with fed.admin() as client, stream as ws:
        assert receive(ws) == {"type": "tasks", "tasks": []}
        task_id = client.submit("node.info", ttl_seconds=60)
        assert [t["task_id"] for t in receive(ws)["tasks"]] == [task_id]
        assert client.task(task_id)["targets"][0]["status"] == "claimed"  # leased at creation
        good = result(task_id, node_id, key, {"name": "node-1"})
        ws.send(json.dumps({"type": "result", "task_id": task_id, "envelope": good}))
        # Recorded before it is acknowledged: the requester does not wait for the ack.
        done = client.results(task_id, wait_time=30)
        assert done["complete"] and done["targets"][0]["result"] == {"name": "node-1"}
        other = client.submit("node.info", ttl_seconds=60)
        # The ack comes on the next tasks message, or alone when none came soon enough.
        acks: list[dict[str, Any]] = []
        delivered: list[str] = []
        while not (acks and delivered):
            message = receive(ws)
            assert message["type"] in ("tasks", "acks")
            acks += message.get("acks", [])
            delivered += [t["task_id"] for t in message.get("tasks", [])]
        assert acks == [{"task_id": task_id, "status": 200, "recorded": True}]
        assert delivered == [other]


def test_replayed_and_forged_handshakes_are_refused(make_federation: FederationFactory) -> None:
    fed = make_federation(1)
    fed.nodes["node-1"].stop()
    node_id, key = node_identity(fed, "node-1")
    headers = sign_request(node_id, key, "GET", PATH)
    with open_stream(fed, headers) as ws:
        receive(ws)
    with pytest.raises(InvalidStatus) as replay:
        open_stream(fed, headers)
    assert replay.value.response.status_code == 401
    assert b"replayed" in replay.value.response.body
    # Signed for another path, or with a key the hub does not know for this node.
    for bad in (
        sign_request(node_id, key, "GET", "/api/channel/tasks"),
        sign_request(node_id, SigningKey.generate(), "GET", PATH),
        {},
    ):
        with pytest.raises(InvalidStatus) as refused:
            open_stream(fed, bad)
        assert refused.value.response.status_code == 401
    denied = [
        e
        for e in AuditLog(open_hub(fed.hub.directory)[1]).entries()
        if e["action"] == "node.request"
    ]
    assert len(denied) >= 4 and all(e["decision"] == "deny" for e in denied)


def test_revoked_node_loses_its_stream(make_federation: FederationFactory) -> None:
    fed = make_federation(1)
    fed.nodes["node-1"].stop()
    node_id, key = node_identity(fed, "node-1")
    with open_stream(fed, sign_request(node_id, key, "GET", PATH)) as ws:
        receive(ws)
        revoke_node(open_hub(fed.hub.directory)[1], "node-1")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                receive(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    with pytest.raises(InvalidStatus) as refused:
        open_stream(fed, sign_request(node_id, key, "GET", PATH))
    assert refused.value.response.status_code == 403
    assert b"revoked" in refused.value.response.body
