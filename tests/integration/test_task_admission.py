"""One admission path for every route that makes a task, and task retention (issue 17).

``POST /api/tasks`` with kind ``search.count`` skipped the AST check and the per-minute
limit of ``/api/search``; the hub's Beacon forwarded unknown request fields to every node;
tasks and their results were never deleted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from oncofed.hub.app import prune_tasks
from oncofed.hub.models import Task, TaskTarget
from tests.integration.test_negotiation import Hub, start_hub

SEX = {"key": "SNOMEDCT263495000", "type": "EQUALS", "value": "SNOMEDCT248152002"}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    yield from start_hub(
        tmp_path_factory.mktemp("hub"), search_rate_per_minute=4, beacon_wait_seconds=0.1
    )


def _tasks(hub: Hub) -> list[Task]:
    with hub.ctx.sessions() as s:
        return list(s.scalars(sa.select(Task)))


def test_tasks_route_applies_the_search_checks(hub: Hub) -> None:
    bad = {"operand": "AND", "children": [{"key": "nosuchkey", "type": "EQUALS", "value": 1}]}
    r = hub.call("POST", "/api/tasks", "alice", json={"kind": "search.count", "body": {"ast": bad}})
    assert r.status_code == 422 and "nosuchkey" in r.text
    good = {"kind": "search.count", "body": {"ast": {"operand": "AND", "children": [SEX]}}}
    codes = [hub.call("POST", "/api/tasks", "alice", json=good).status_code for _ in range(3)]
    codes.append(hub.call("POST", "/api/search?wait=false", "alice",
                          json={"ast": good["body"]["ast"]}).status_code)  # fmt: skip
    # the fifth search-tier task in a minute, by either route: refused
    codes.append(hub.call("POST", "/api/tasks", "alice", json=good).status_code)
    assert codes == [201, 201, 201, 202, 429]
    denials = [e for e in hub.ctx.audit.entries() if e["decision"] == "deny"]
    assert any("nosuchkey" in e["reason"] for e in denials)
    assert any("in the last minute" in e["reason"] for e in denials)


def test_beacon_forwards_only_declared_fields(hub: Hub) -> None:
    junk = "J" * 50_000
    body = {"meta": {"apiVersion": "v2.0", "padding": junk},
            "query": {"filters": [{"id": "NCIT:C16576", "extra": junk}], "more": junk},
            "unknown": junk}  # fmt: skip
    r = hub.call("POST", "/beacon/v2/individuals", "bob", json=body)
    assert r.status_code in (200, 503), r.text[:300]
    (task,) = [t for t in _tasks(hub) if t.kind == "beacon.query"]
    assert junk not in str(task.body) and len(str(task.body)) < 2000
    assert task.body["request"]["query"]["filters"][0]["id"] == "NCIT:C16576"


def test_old_tasks_and_results_are_deleted(hub: Hub) -> None:
    ast = {"operand": "AND", "children": [SEX]}
    ids = []
    for _ in range(2):
        r = hub.call("POST", "/api/search?wait=false", "bob", json={"ast": ast})
        assert r.status_code == 202
        ids.append(r.json()["id"])
    old, new = (next(t for t in _tasks(hub) if t.id == i) for i in ids)
    with hub.ctx.sessions.begin() as s:
        s.execute(sa.update(Task).where(Task.id == old.id).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=31)))  # fmt: skip
    assert prune_tasks(hub.ctx) == 1
    assert old.id not in {t.id for t in _tasks(hub)} and new.id in {t.id for t in _tasks(hub)}
    with hub.ctx.sessions() as s:
        targets = {t.task_id for t in s.scalars(sa.select(TaskTarget))}
    assert old.id not in targets and new.id in targets
