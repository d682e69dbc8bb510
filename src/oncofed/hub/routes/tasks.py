"""The requester side of the task channel: submit a task, wait for its results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from oncofed.hub.admission import admit_task
from oncofed.hub.auth import Caller, require
from oncofed.hub.channel import ChannelError, TaskView
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.search import SearchRefused
from oncofed.hub.waiting import wait_for_results
from oncofed.protocol import TaskBodyError
from oncofed.query import QueryValidationError

router = APIRouter()


class TaskRequest(BaseModel):
    kind: str = Field(min_length=1, max_length=100)
    body: dict[str, Any] = Field(default_factory=dict)
    nodes: list[str] | None = Field(None, description="node names; all enrolled nodes if empty")
    ttl_seconds: int | None = Field(None, ge=1, le=7 * 24 * 3600)


@router.post("/api/tasks", status_code=201, tags=["tasks"])
async def create_task(
    req: TaskRequest,
    response: Response,
    ctx: Annotated[HubContext, Depends(hub_context)],
    caller: Annotated[Caller, Depends(require("researcher", "admin"))],
) -> dict[str, Any]:
    ttl = req.ttl_seconds or ctx.settings.task_ttl_seconds
    try:
        task_id, node_ids = await run_in_threadpool(
            admit_task, ctx, caller.username, req.kind, req.body, req.nodes, ttl
        )
    except TaskBodyError as exc:
        raise HTTPException(422, str(exc)) from exc
    except QueryValidationError as exc:
        raise HTTPException(422, exc.as_dict()) from exc
    except (SearchRefused, ChannelError) as exc:
        raise HTTPException(exc.status, exc.message) from exc
    for node_id in node_ids:
        ctx.notifier.wake(f"node:{node_id}")
    response.headers["Location"] = f"/api/tasks/{task_id}"
    return {"id": task_id, "nodes": len(node_ids)}


async def _own_task(ctx: HubContext, caller: Caller, task_id: str) -> None:
    try:
        owner = await run_in_threadpool(ctx.channel.owner, task_id)
    except ChannelError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    if owner != caller.username and "admin" not in caller.roles:
        raise HTTPException(404, f"no task {task_id}")


@router.get("/api/tasks", tags=["tasks"])
async def list_tasks(
    ctx: Annotated[HubContext, Depends(hub_context)],
    caller: Annotated[Caller, Depends(require("researcher", "admin"))],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    owner = None if "admin" in caller.roles else caller.username
    return await run_in_threadpool(ctx.channel.list_tasks, owner, limit)


@router.get("/api/tasks/{task_id}", tags=["tasks"])
async def get_task(
    task_id: str,
    ctx: Annotated[HubContext, Depends(hub_context)],
    caller: Annotated[Caller, Depends(require("researcher", "admin"))],
) -> dict[str, Any]:
    await _own_task(ctx, caller, task_id)
    view: TaskView = await run_in_threadpool(ctx.channel.view, task_id)
    return view.as_dict()


@router.get("/api/tasks/{task_id}/results", tags=["tasks"])
async def wait_results(
    task_id: str,
    response: Response,
    ctx: Annotated[HubContext, Depends(hub_context)],
    caller: Annotated[Caller, Depends(require("researcher", "admin"))],
    wait_count: Annotated[int | None, Query(ge=0)] = None,
    wait_time: Annotated[float, Query(ge=0, le=300)] = 0,
) -> dict[str, Any]:
    """Results so far; waits up to `wait_time` s for `wait_count` (default: all) nodes.

    200 when every node has a final status, 206 while some are still working (Beam's rule).

    See :func:`oncofed.hub.waiting.wait_for_results` for how few reads that takes.
    """

    def owned(view: TaskView) -> None:
        if view.created_by != caller.username and "admin" not in caller.roles:
            raise HTTPException(404, f"no task {task_id}")

    try:
        view = await wait_for_results(ctx, task_id, wait_time, wanted=wait_count, check=owned)
    except ChannelError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    response.status_code = 200 if view.complete else 206
    return view.as_dict()
