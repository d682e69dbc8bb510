"""The node agent's checks on a delivered task, without a hub process."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from oncofed.node.admin import init_node
from oncofed.node.agent import Agent
from oncofed.node.context import NodeContext
from oncofed.security.envelope import SignedEnvelope, iso, utcnow
from oncofed.security.keys import SigningKey
from oncofed.settings import save_settings

HUB = SigningKey.generate()


@pytest.fixture
def agent(tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = init_node(tmp_path / "node", "n1", "p1")
    settings.hub_url, settings.node_id = "http://127.0.0.1:9", "node-abc"
    settings.hub_public_key, settings.hub_key_id = HUB.public.b64, HUB.kid
    save_settings(settings)
    ctx = NodeContext.open(settings)
    yield Agent(ctx)
    ctx.close()


def task(
    task_id: str = "t1",
    expires_in: float = 60,
    to: list[str] | None = None,
    kind: str = "node.info",
    key: SigningKey = HUB,
    body: dict | None = None,
) -> dict:
    now = utcnow()
    payload = {
        "type": "oncofed.task",
        "id": task_id,
        "kind": kind,
        "body": body or {},
        "from": "alice",
        "to": to or ["node-abc"],
        "issued_at": iso(now),
        "expires_at": iso(now + timedelta(seconds=expires_in)),
    }
    return SignedEnvelope.sign(payload, key).model_dump()


def outcome(agent: Agent, task_id: str, envelope: dict) -> tuple[str, str | None]:
    result, _ = agent.process(task_id, envelope)
    assert result.verify(agent.ctx.key.public)["task_id"] == task_id
    return result.payload["status"], result.payload["error"]


def test_valid_task_runs_once(agent: Agent) -> None:
    status, _ = outcome(agent, "t1", task())
    assert status == "succeeded"


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (task(expires_in=-3600), "expired"),
        (task(to=["node-other"]), "not addressed"),
        (task(key=SigningKey.generate()), "signature"),
        (task(task_id="t2"), "not this task"),
        ({"payload": "garbage"}, "signature invalid"),
    ],
)
def test_bad_tasks_are_refused(agent: Agent, envelope: dict, reason: str) -> None:
    status, error = outcome(agent, "t1", envelope)
    assert status == "refused" and error is not None and reason in error
    assert any(e["decision"] == "deny" for e in agent.ctx.audit.entries())


def test_policy_and_body_checks(agent: Agent, monkeypatch: pytest.MonkeyPatch) -> None:
    from oncofed.protocol import TASK_KINDS, TaskBody

    class Probe(TaskBody):
        pass

    monkeypatch.setitem(TASK_KINDS, "test.probe", Probe)
    status, error = outcome(agent, "t3", task("t3", kind="test.probe"))
    assert status == "refused" and "policy does not allow test.probe" in str(error)
    status, error = outcome(agent, "t4", task("t4", body={"x": 1}))
    assert status == "failed" and "malformed" in str(error)
