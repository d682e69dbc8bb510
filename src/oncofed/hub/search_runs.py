"""Starting a federated search and following its answers: shared by the API and the portal,
so that a search from a browser passes the same validation, admission limits and audit as one
from the CLI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.concurrency import run_in_threadpool

from oncofed.hub.admission import admit_task
from oncofed.hub.channel import ChannelError, TaskView
from oncofed.hub.context import HubContext
from oncofed.hub.search import SEARCH_KIND, combine
from oncofed.hub.waiting import RECHECK_SECONDS


async def start_search(
    ctx: HubContext,
    username: str,
    raw: dict[str, Any],
    nodes: list[str] | None,
    timeout_seconds: float,
) -> tuple[str, list[str]]:
    """Validate, admit and fan out a search; returns the task id and the addressed nodes.

    Raises QueryValidationError (422), SearchRefused (429) or ChannelError, each audited.
    """
    # Validation, admission and the task in one trip to a worker thread: on a busy hub each
    # trip waits for a core, and this one is on every search's critical path.
    task_id, node_ids = await run_in_threadpool(
        admit_task, ctx, username, SEARCH_KIND, {"ast": raw}, nodes, max(1, round(timeout_seconds))
    )
    for node_id in node_ids:
        ctx.notifier.wake(f"node:{node_id}")
    return task_id, node_ids


async def search_view(ctx: HubContext, task_id: str) -> TaskView:
    """The search's current state; ChannelError(404) for an unknown id or another kind."""
    view: TaskView = await run_in_threadpool(ctx.channel.view, task_id)
    if view.kind != SEARCH_KIND:
        raise ChannelError(404, f"no search {task_id}")
    return view


async def search_events(ctx: HubContext, task_id: str) -> AsyncIterator[str]:
    """Server-sent events: one `node` event per node as its answer arrives, then `done`.

    An error after the stream started (the task vanished) is sent as an `error` event: the
    status line is long gone by then.
    """
    sent: set[str] = set()
    while True:
        ev = ctx.notifier.event(f"task:{task_id}")
        try:
            view = await search_view(ctx, task_id)
        except ChannelError as exc:
            yield f"event: error\ndata: {json.dumps({'error': exc.message})}\n\n"
            return
        combined = combine(view)
        for provider in combined["providers"]:
            if provider["status"] in ("pending", "claimed") or provider["provider"] in sent:
                continue
            sent.add(provider["provider"])
            yield f"event: node\ndata: {json.dumps(provider)}\n\n"
        if view.complete:
            yield f"event: done\ndata: {json.dumps(combined)}\n\n"
            return
        await ctx.notifier.wait(ev, RECHECK_SECONDS)
