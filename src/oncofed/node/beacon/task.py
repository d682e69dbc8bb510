"""The node's handler of ``beacon.query`` tasks: the hub's Beacon network fan-out.

The node answers as its own Beacon would, under its own policy: the task kind must be in
``allowed_tasks`` of ``policy.toml`` (refused by default), granularity is capped by each
dataset's access level and counts below the minimum are withheld. Record granularity
through the hub needs a grant the *node* verifies: the passport the task carries is checked
by :func:`verified_task_grants` (the node's visa verification, bound to the requester).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oncofed.beacon.wire import BEACON_TASK, BeaconError, BeaconQueryBody, BeaconRequest
from oncofed.node.beacon.router import engine_for
from oncofed.node.context import NodeContext
from oncofed.node.handlers import TaskMeta, handler
from oncofed.protocol import register_kind

register_kind(BEACON_TASK, BeaconQueryBody)

TaskGrantChecker = Callable[[NodeContext, str | None, str], set[str]]


def verified_task_grants(ctx: NodeContext, passport: str | None, requester: str) -> set[str]:
    """Datasets the task's passport verifiably grants to the researcher who sent it.

    Uses the node's visa verification (:mod:`oncofed.node.grants`: signature, audience,
    expiry, revocation list, subject = requester); without it nothing is granted.
    """
    try:
        from oncofed.node.grants import task_grants_for
    except ImportError:
        return set()
    return task_grants_for(ctx, passport, requester)


TASK_GRANTS: list[TaskGrantChecker] = [verified_task_grants]
_ENGINES: dict[int, Any] = {}


@handler(BEACON_TASK)
def beacon_query(ctx: NodeContext, body: dict[str, Any], meta: TaskMeta) -> dict[str, Any]:
    task = BeaconQueryBody.model_validate(body)
    engine = _ENGINES.get(id(ctx))
    if engine is None or engine.store is not ctx.store:
        engine = _ENGINES[id(ctx)] = engine_for(ctx)
    granted = TASK_GRANTS[-1](ctx, task.passport, meta.requester) if task.passport else set()
    try:
        if task.entry_type == "filtering_terms":
            return {"status": 200, "document": engine.filtering_terms()}
        request = BeaconRequest.parse(task.request)
        document = engine.query(
            task.entry_type, request, granted, task.entry_id, task.via, meta.requester
        )
    except BeaconError as exc:
        return {"status": exc.status, "error": str(exc)}
    return {"status": 200, "document": document}
