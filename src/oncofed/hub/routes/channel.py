"""The node side of the task channel: long-poll for tasks, post signed results."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool

from oncofed.hub.auth import authenticated_node
from oncofed.hub.channel import ChannelError
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.models import Node
from oncofed.security.envelope import SignedEnvelope

router = APIRouter()

# How often a waiting poll looks at the database even without a wake-up.
RECHECK_SECONDS = 1.0


@router.get("/api/channel/tasks", tags=["channel"])
async def poll(
    request: Request,
    ctx: Annotated[HubContext, Depends(hub_context)],
    node: Annotated[Node, Depends(authenticated_node)],
    wait: Annotated[float, Query(ge=0, le=120)] = 0,
    fresh: Annotated[bool, Query(description="the agent has just started")] = False,
) -> dict[str, Any]:
    if fresh:
        # A restarted agent works on nothing: what it had claimed can go out again now
        # instead of after the lease.
        await run_in_threadpool(ctx.channel.release, node.id)
    deadline = time.monotonic() + min(wait, ctx.settings.long_poll_seconds)
    while True:
        ev = ctx.notifier.event(f"node:{node.id}")
        if await request.is_disconnected():
            # Claiming for a node that hung up would hold the task until its lease ends.
            return {"tasks": []}
        tasks = await run_in_threadpool(ctx.channel.claim, node.id)
        remaining = deadline - time.monotonic()
        if tasks or remaining <= 0:
            return {"tasks": tasks}
        await ctx.notifier.wait(ev, min(remaining, RECHECK_SECONDS))


@router.put("/api/channel/tasks/{task_id}/result", tags=["channel"])
async def post_result(
    task_id: str,
    envelope: SignedEnvelope,
    ctx: Annotated[HubContext, Depends(hub_context)],
    node: Annotated[Node, Depends(authenticated_node)],
) -> dict[str, Any]:
    try:
        recorded = await run_in_threadpool(ctx.channel.record_result, node, task_id, envelope)
    except ChannelError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    if recorded:
        ctx.notifier.wake(f"task:{task_id}")
    return {"recorded": recorded, "duplicate": not recorded}
