"""The task channel with a real hub and three real node processes on loopback."""

from __future__ import annotations

import json
import os
import signal
import time

import httpx
import pytest
import sqlalchemy as sa

from oncofed.audit import AuditLog
from oncofed.client.hub import HubClient, HubError
from oncofed.hub.db import make_engine
from oncofed.hub.models import Task, TaskTarget
from oncofed.node.admin import NodeAdminError, enrol, init_node
from oncofed.node.policy import NodePolicy
from oncofed.node.state import state_engine, task_ledger
from oncofed.security.envelope import SignedEnvelope, iso, utcnow
from oncofed.security.keys import SigningKey
from oncofed.security.request_auth import sign_request
from oncofed.settings import load_hub_settings, load_node_settings
from tests.conftest import FederationFactory

pytestmark = pytest.mark.integration


def hub_engine(fed) -> sa.Engine:  # type: ignore[no-untyped-def]
    return make_engine(load_hub_settings(fed.hub.directory).db_url)


def node_audit(fed, name: str) -> list[dict]:  # type: ignore[no-untyped-def]
    settings = load_node_settings(fed.nodes[name].directory)
    return list(AuditLog(state_engine(settings.resolve(settings.state_file))).entries())


def statuses(view: dict) -> dict[str, str]:
    return {t["node_name"]: t["status"] for t in view["targets"]}


def test_tasks_delivered_and_results_collected(
    make_federation: FederationFactory, hub_database: str
) -> None:
    fed = make_federation(3, database_url=hub_database)
    with fed.admin() as client:
        view = client.run("node.info", wait_time=30)
        assert view["complete"]
        assert statuses(view) == {
            "node-1": "succeeded",
            "node-2": "succeeded",
            "node-3": "succeeded",
        }
        for target in view["targets"]:
            assert target["result"]["name"] == target["node_name"]
            assert target["result"]["policy"]["allowed_tasks"] == sorted(NodePolicy().allowed_tasks)
        # Addressing one node reaches only that node.
        one = client.run("node.info", nodes=["node-2"], wait_time=30)
        assert statuses(one) == {"node-2": "succeeded"}
        # Every node is listed with its key and last contact.
        listed = {n["name"]: n for n in client.nodes()}
        assert all(listed[f"node-{i}"]["status"] == "enrolled" for i in (1, 2, 3))
        assert all(listed[f"node-{i}"]["last_seen_at"] for i in (1, 2, 3))
    assert AuditLog(hub_engine(fed)).verify() == []


def test_node_killed_mid_task_times_out_others_answer(make_federation: FederationFactory) -> None:
    fed = make_federation(3)
    victim = fed.nodes["node-3"]
    assert victim.proc is not None
    # Freeze the node: its open long poll still claims the task, then it dies holding it.
    os.kill(victim.proc.pid, signal.SIGSTOP)
    with fed.admin() as client:
        task_id = client.submit("node.info", ttl_seconds=4)
        time.sleep(0.5)
        victim.stop(kill=True)
        partial = client.results(task_id, wait_time=0)
        view = client.results(task_id, wait_time=20)
    assert partial["complete"] is False or statuses(partial)["node-3"] == "timed_out"
    assert statuses(view) == {"node-1": "succeeded", "node-2": "succeeded", "node-3": "timed_out"}
    assert view["complete"]
    by_name = {t["node_name"]: t for t in view["targets"]}
    assert by_name["node-3"]["attempts"] == 1  # it had claimed the task before dying
    assert "deadline" in by_name["node-3"]["error"]


def test_hub_restart_loses_nothing(make_federation: FederationFactory, hub_database: str) -> None:
    fed = make_federation(2, database_url=hub_database)
    with fed.admin() as client:
        done_id = client.submit("node.info")
        done = client.results(done_id, wait_time=30)
        assert done["complete"]
        fed.nodes["node-2"].stop()
        pending_id = client.submit("node.info", ttl_seconds=120)
        first = client.results(pending_id, wait_count=1, wait_time=30)
        assert statuses(first)["node-1"] == "succeeded"
        assert statuses(first)["node-2"] in ("pending", "claimed")
    fed.restart_hub(kill=True)
    with fed.admin() as client:
        assert client.task(done_id)["targets"] == done["targets"]
        again = client.task(pending_id)
        assert statuses(again)["node-1"] == "succeeded"
        assert statuses(again)["node-2"] in ("pending", "claimed")
        # The stopped node comes back and completes the task that waited for it.
        fed.start_node("node-2")
        finished = client.results(pending_id, wait_time=30)
        assert statuses(finished) == {"node-1": "succeeded", "node-2": "succeeded"}
        # node-1 reconnected by itself after the restart.
        assert client.run("node.info", wait_time=30)["complete"]


def _stop_and_get_pending(fed, client, node: str):  # type: ignore[no-untyped-def]
    fed.nodes[node].stop()
    task_id = client.submit("node.info", nodes=[node], ttl_seconds=60)
    return task_id


def test_tampered_task_is_refused(make_federation: FederationFactory) -> None:
    fed = make_federation(1)
    engine = hub_engine(fed)
    with fed.admin() as client:
        task_id = _stop_and_get_pending(fed, client, "node-1")
        with engine.begin() as con:
            envelope = con.execute(sa.select(Task.envelope).where(Task.id == task_id)).scalar_one()
            envelope["payload"]["kind"] = "node.info"
            envelope["payload"]["body"] = {"injected": True}
            con.execute(sa.update(Task).where(Task.id == task_id).values(envelope=envelope))
        fed.start_node("node-1")
        view = client.results(task_id, wait_time=30)
    target = view["targets"][0]
    assert target["status"] == "refused"
    assert "signature" in target["error"]
    assert any(
        e["action"] == "task.verify" and e["decision"] == "deny" for e in node_audit(fed, "node-1")
    )


def test_wrongly_addressed_task_is_refused(make_federation: FederationFactory) -> None:
    fed = make_federation(2)
    engine = hub_engine(fed)
    with fed.admin() as client:
        fed.nodes["node-2"].stop()
        task_id = client.submit("node.info", nodes=["node-1"], ttl_seconds=60)
        assert client.results(task_id, wait_time=30)["complete"]
        node2_id = load_node_settings(fed.nodes["node-2"].directory).node_id
        # A compromised hub database hands node-1's task to node-2 as well.
        with engine.begin() as con:
            con.execute(
                sa.insert(TaskTarget).values(
                    task_id=task_id, node_id=node2_id, status="pending", attempts=0
                )
            )
        fed.start_node("node-2")
        view = client.results(task_id, wait_time=30)
    assert statuses(view) == {"node-1": "succeeded", "node-2": "refused"}
    assert "not addressed" in {t["node_name"]: t for t in view["targets"]}["node-2"]["error"]


def test_replayed_task_is_not_run_again(make_federation: FederationFactory) -> None:
    fed = make_federation(1)
    engine = hub_engine(fed)
    with fed.admin() as client:
        task_id = client.submit("node.info")
        first = client.results(task_id, wait_time=30)
        assert statuses(first) == {"node-1": "succeeded"}
        # The hub (or an attacker inside it) delivers the same signed task again.
        with engine.begin() as con:
            con.execute(
                sa.update(TaskTarget)
                .where(TaskTarget.task_id == task_id)
                .values(status="pending", finished_at=None)
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(e["action"] == "task.replay" for e in node_audit(fed, "node-1")):
                break
            time.sleep(0.2)
        second = client.results(task_id, wait_time=30)
    replays = [e for e in node_audit(fed, "node-1") if e["action"] == "task.replay"]
    assert replays and replays[0]["decision"] == "deny"
    runs = [
        e
        for e in node_audit(fed, "node-1")
        if e["action"] == "task.node.info" and e["target"] == task_id
    ]
    assert len(runs) == 1  # executed once
    assert second["targets"][0]["result"] == first["targets"][0]["result"]


def test_replayed_and_altered_node_requests_are_refused(make_federation: FederationFactory) -> None:
    fed = make_federation(1)
    settings = load_node_settings(fed.nodes["node-1"].directory)
    key = SigningKey.load(settings.resolve(settings.key_file))
    target = "/api/channel/tasks?wait=0"
    headers = sign_request(settings.node_id, key, "GET", target)
    ok = httpx.get(fed.hub.url + target, headers=headers)
    assert ok.status_code == 200
    replay = httpx.get(fed.hub.url + target, headers=headers)
    assert replay.status_code == 401 and "replayed" in replay.json()["detail"]
    # Signed for another path: refused.
    altered = sign_request(settings.node_id, key, "GET", "/api/channel/tasks?wait=1")
    assert httpx.get(fed.hub.url + target, headers=altered).status_code == 401
    # Signed by a key the hub does not know for this node: refused.
    forged = sign_request(settings.node_id, SigningKey.generate(), "GET", target)
    assert httpx.get(fed.hub.url + target, headers=forged).status_code == 401
    denied = [e for e in AuditLog(hub_engine(fed)).entries() if e["action"] == "node.request"]
    assert len(denied) >= 3 and all(e["decision"] == "deny" for e in denied)


def test_result_for_another_task_is_refused(make_federation: FederationFactory) -> None:
    fed = make_federation(1)
    settings = load_node_settings(fed.nodes["node-1"].directory)
    key = SigningKey.load(settings.resolve(settings.key_file))
    with fed.admin() as client:
        fed.nodes["node-1"].stop()
        task_a = client.submit("node.info", ttl_seconds=60)
        task_b = client.submit("node.info", ttl_seconds=60)
    payload = {
        "type": "oncofed.result",
        "task_id": task_a,
        "node_id": settings.node_id,
        "status": "succeeded",
        "body": {"forged": True},
        "error": None,
        "issued_at": iso(utcnow()),
    }
    body = SignedEnvelope.sign(payload, key).model_dump_json().encode()
    path = f"/api/channel/tasks/{task_b}/result"
    response = httpx.put(
        fed.hub.url + path,
        content=body,
        headers={
            **sign_request(settings.node_id, key, "PUT", path, body),
            "content-type": "application/json",
        },
    )
    assert response.status_code == 400 and "another task" in response.json()["detail"]
    # The same result posted twice to its own task is harmless.
    path_a = f"/api/channel/tasks/{task_a}/result"
    for expected_duplicate in (False, True):
        response = httpx.put(
            fed.hub.url + path_a,
            content=body,
            headers={
                **sign_request(settings.node_id, key, "PUT", path_a, body),
                "content-type": "application/json",
            },
        )
        assert response.status_code == 200
        assert response.json()["duplicate"] is expected_duplicate
    # A different result for the finished target is a conflict.
    payload2 = {**payload, "body": {"other": 1}}
    body2 = SignedEnvelope.sign(payload2, key).model_dump_json().encode()
    response = httpx.put(
        fed.hub.url + path_a,
        content=body2,
        headers={
            **sign_request(settings.node_id, key, "PUT", path_a, body2),
            "content-type": "application/json",
        },
    )
    assert response.status_code == 409


def test_enrolment_token_rules(make_federation: FederationFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from oncofed.hub.admin import add_node, open_hub

    fed = make_federation(0)
    _, engine = open_hub(fed.hub.directory)
    token = add_node(engine, "site-a", hours=1)
    init_node(tmp_path / "a", "site-a", "site-a")
    enrol(tmp_path / "a", fed.hub.url, token)
    # The same token a second time: refused, whoever presents it.
    init_node(tmp_path / "b", "site-b", "site-b")
    with pytest.raises(NodeAdminError, match="already used"):
        enrol(tmp_path / "b", fed.hub.url, token)
    with pytest.raises(NodeAdminError, match="unknown"):
        enrol(tmp_path / "b", fed.hub.url, "ofe_" + "x" * 40)
    expired = add_node(engine, "site-b", hours=1)
    with engine.begin() as con:
        con.execute(
            sa.text("UPDATE enrolment_token SET expires_at = :t WHERE used_at IS NULL"),
            {"t": utcnow().replace(year=2000)},
        )
    with pytest.raises(NodeAdminError, match="expired"):
        enrol(tmp_path / "b", fed.hub.url, expired)
    reasons = [e["reason"] for e in AuditLog(engine).entries() if e["action"] == "node.enrol"]
    assert sum("already used" in r for r in reasons) == 1
    assert sum("expired" in r for r in reasons) == 1


def test_revoked_node_is_refused(make_federation: FederationFactory) -> None:
    from oncofed.hub.admin import open_hub, revoke_node

    fed = make_federation(2)
    _, engine = open_hub(fed.hub.directory)
    with fed.admin() as client:
        fed.nodes["node-2"].stop()
        task_id = client.submit("node.info", ttl_seconds=60)
        revoke_node(engine, "node-2")
        view = client.results(task_id, wait_time=30)
        assert statuses(view) == {"node-1": "succeeded", "node-2": "refused"}
        settings = load_node_settings(fed.nodes["node-2"].directory)
        key = SigningKey.load(settings.resolve(settings.key_file))
        target = "/api/channel/tasks?wait=0"
        response = httpx.get(
            fed.hub.url + target, headers=sign_request(settings.node_id, key, "GET", target)
        )
        assert response.status_code == 403 and "revoked" in response.json()["detail"]
        # New tasks go only to enrolled nodes.
        assert statuses(client.run("node.info", wait_time=30)) == {"node-1": "succeeded"}


def test_malformed_requests_get_clear_errors(make_federation: FederationFactory) -> None:
    fed = make_federation(1)
    with fed.admin() as client:
        with pytest.raises(
            HubError, match="malformed node.info task body: unexpected: Extra inputs"
        ):
            client.submit("node.info", body={"unexpected": 1})
        with pytest.raises(HubError, match="unknown task kind 'no.such'"):
            client.submit("no.such")
        with pytest.raises(HubError, match="no enrolled node named ghost"):
            client.submit("node.info", nodes=["ghost"])
    anonymous = HubClient(fed.hub.url)
    with pytest.raises(HubError, match="log in first"):
        anonymous.nodes()
    with pytest.raises(HubError, match="wrong username or password"):
        anonymous.login("admin", "not-the-password")
    token = anonymous.login("admin", fed.admin_password)
    assert HubClient(fed.hub.url, token).me()["roles"] == ["admin"]
    # Logging out revokes that token only; the admin CLI can revoke all of an account's.
    assert HubClient(fed.hub.url, token).logout() == 1
    with pytest.raises(HubError, match="expired or revoked"):
        HubClient(fed.hub.url, token).me()
    from oncofed.hub.admin import open_hub, revoke_tokens

    _, engine = open_hub(fed.hub.directory)
    assert revoke_tokens(engine, "admin") >= 1
    with pytest.raises(HubError, match="expired or revoked"):
        fed.admin().me()


def test_node_ledger_records_each_task_once(make_federation: FederationFactory) -> None:
    fed = make_federation(1)
    with fed.admin() as client:
        ids = [client.submit("node.info") for _ in range(5)]
        for task_id in ids:
            assert client.results(task_id, wait_time=30)["complete"]
    settings = load_node_settings(fed.nodes["node-1"].directory)
    engine = state_engine(settings.resolve(settings.state_file))
    # `posted` records the hub's acknowledgement, which reaches the node while (not before)
    # the requester learns of the result: give the last one a moment.
    deadline = time.monotonic() + 10
    while True:
        with engine.connect() as con:
            rows = con.execute(sa.select(task_ledger.c.task_id, task_ledger.c.posted)).all()
        if all(r.posted for r in rows) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert sorted(r.task_id for r in rows) == sorted(ids)
    assert all(r.posted for r in rows)
    assert json.loads(json.dumps(ids))  # ids are plain strings
