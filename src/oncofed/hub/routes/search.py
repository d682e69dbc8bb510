"""Federated cohort search: `POST /api/search`, results as JSON or server-sent events."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from oncofed.hub.auth import Caller, require
from oncofed.hub.channel import ChannelError, TaskView
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.search import SEARCH_KIND, SearchRefused, combine
from oncofed.query import QueryValidationError, parse_query, vocabulary
from oncofed.query.ast import to_json

router = APIRouter()
RECHECK_SECONDS = 1.0


class SearchRequest(BaseModel):
    ast: dict[str, Any] = Field(description="EUCAIM AST (STANDARDS §2), or {'ast': ..., 'id'}")
    nodes: list[str] | None = Field(None, description="node names; all if empty")
    timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="the deadline: answer with what arrived by then"
    )


@router.get("/api/vocabulary", tags=["search"])
async def get_vocabulary() -> Any:
    """Every search key with its labels, value type and allowed values."""
    return vocabulary()


async def _view(ctx: HubContext, task_id: str) -> TaskView:
    try:
        view: TaskView = await run_in_threadpool(ctx.channel.view, task_id)
    except ChannelError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    if view.kind != SEARCH_KIND:
        raise HTTPException(404, f"no search {task_id}")
    return view


async def _wait(ctx: HubContext, task_id: str, seconds: float) -> TaskView:
    deadline = time.monotonic() + seconds
    while True:
        ev = ctx.notifier.event(f"task:{task_id}")
        view = await _view(ctx, task_id)
        remaining = deadline - time.monotonic()
        if view.complete or remaining <= 0:
            return view
        await ctx.notifier.wait(ev, min(remaining, RECHECK_SECONDS))


@router.post("/api/search", tags=["search"])
async def search(
    req: SearchRequest,
    ctx: Annotated[HubContext, Depends(hub_context)],
    caller: Annotated[Caller, Depends(require("researcher", "admin"))],
    wait: Annotated[bool, Query(description="wait for the answers (up to the deadline)")] = True,
) -> Response:
    """Fan a search out to the nodes; 200 with all answers, 206 with those by the deadline."""
    raw = req.ast.get("ast", req.ast) if isinstance(req.ast.get("ast"), dict) else req.ast
    try:
        op = parse_query(raw)
    except QueryValidationError as exc:
        await run_in_threadpool(
            ctx.audit.append, caller.username, "search", "deny", "", str(exc)[:2000]
        )
        raise HTTPException(422, exc.as_dict()) from exc
    try:
        await run_in_threadpool(ctx.search_admission.admit, ctx.sessions, caller.username)
        task_id, node_ids = await run_in_threadpool(
            ctx.channel.create,
            SEARCH_KIND,
            {"ast": to_json(op)},
            req.nodes,
            max(1, round(req.timeout_seconds)),
            caller.username,
        )
    except SearchRefused as exc:
        await run_in_threadpool(
            ctx.audit.append, caller.username, "search", "deny", "", exc.message
        )
        raise HTTPException(exc.status, exc.message) from exc
    except ChannelError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    for node_id in node_ids:
        ctx.notifier.wake(f"node:{node_id}")
    if not wait:
        return JSONResponse(
            {"id": task_id, "nodes": len(node_ids)},
            status_code=202,
            headers={"Location": f"/api/search/{task_id}"},
        )
    view = await _wait(ctx, task_id, req.timeout_seconds + 1)
    return JSONResponse(combine(view), status_code=200 if view.complete else 206)


async def _own(ctx: HubContext, caller: Caller, task_id: str) -> None:
    try:
        owner = await run_in_threadpool(ctx.channel.owner, task_id)
    except ChannelError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    if owner != caller.username and "admin" not in caller.roles:
        raise HTTPException(404, f"no search {task_id}")


@router.get("/api/search/{task_id}", tags=["search"])
async def search_result(
    task_id: str,
    ctx: Annotated[HubContext, Depends(hub_context)],
    caller: Annotated[Caller, Depends(require("researcher", "admin"))],
    wait_time: Annotated[float, Query(ge=0, le=300)] = 0,
) -> Response:
    await _own(ctx, caller, task_id)
    view = await _wait(ctx, task_id, wait_time)
    return JSONResponse(combine(view), status_code=200 if view.complete else 206)


@router.get("/api/search/{task_id}/events", tags=["search"])
async def search_events(
    task_id: str,
    ctx: Annotated[HubContext, Depends(hub_context)],
    caller: Annotated[Caller, Depends(require("researcher", "admin"))],
) -> StreamingResponse:
    """Server-sent events: one `node` event per node as its answer arrives, then `done`."""
    await _own(ctx, caller, task_id)

    async def events() -> AsyncIterator[str]:
        sent: set[str] = set()
        while True:
            ev = ctx.notifier.event(f"task:{task_id}")
            view = await _view(ctx, task_id)
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

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
