"""The node side of the task channel: long-poll for tasks, post signed results."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool

from oncofed.hub.auth import NodeRequest, authenticated_node
from oncofed.hub.channel import ChannelError
from oncofed.hub.context import HubContext, hub_context
from oncofed.security.envelope import SignedEnvelope

router = APIRouter()

# How often a waiting poll looks at the database even without a wake-up.
RECHECK_SECONDS = 1.0


@router.get("/api/channel/tasks", tags=["channel"])
async def poll(
    request: Request,
    ctx: Annotated[HubContext, Depends(hub_context)],
    caller: Annotated[NodeRequest, Depends(authenticated_node)],
    wait: Annotated[float, Query(ge=0, le=120)] = 0,
    fresh: Annotated[bool, Query(description="the agent has just started")] = False,
) -> dict[str, Any]:
    node = caller.node
    deadline = time.monotonic() + min(wait, ctx.settings.long_poll_seconds)
    nonce: str | None = caller.nonce  # recorded with the first claim only
    while True:
        ev = ctx.notifier.event(f"node:{node.id}")
        if nonce is None and await request.is_disconnected():
            # Claiming for a node that hung up would hold the task until its lease ends.
            return {"tasks": []}
        try:
            tasks = await run_in_threadpool(ctx.channel.claim, node.id, nonce, fresh)
        except ChannelError as exc:
            await run_in_threadpool(
                ctx.audit.append, f"node:{node.name}", "node.request", "deny", "poll", exc.message
            )
            raise HTTPException(exc.status, exc.message) from exc
        nonce, fresh = None, False
        remaining = deadline - time.monotonic()
        if tasks or remaining <= 0:
            return {"tasks": tasks}
        await ctx.notifier.wait(ev, min(remaining, RECHECK_SECONDS))


@router.put("/api/channel/tasks/{task_id}/result", tags=["channel"])
async def post_result(
    task_id: str,
    envelope: SignedEnvelope,
    ctx: Annotated[HubContext, Depends(hub_context)],
    caller: Annotated[NodeRequest, Depends(authenticated_node)],
) -> dict[str, Any]:
    try:
        recorded = await run_in_threadpool(
            ctx.channel.record_result, caller.node, task_id, envelope, caller.nonce
        )
    except ChannelError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    if recorded:
        ctx.notifier.wake(f"task:{task_id}")
    return {"recorded": recorded, "duplicate": not recorded}
