"""Federated cohort search: `POST /api/search`, results as JSON or server-sent events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from oncofed.hub import search_runs
from oncofed.hub.auth import Caller, require
from oncofed.hub.channel import ChannelError, TaskView
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.search import SEARCH_KIND, SearchRefused, combine
from oncofed.hub.search_runs import start_search
from oncofed.hub.waiting import wait_for_results
from oncofed.query import QueryValidationError, vocabulary

router = APIRouter()


class SearchRequest(BaseModel):
    ast: dict[str, Any] = Field(description="EUCAIM AST (STANDARDS §2), or {'ast': ..., 'id'}")
    nodes: list[str] | None = Field(None, description="node names; all if empty")
    timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="the deadline: answer with what arrived by then"
    )


@router.get("/api/vocabulary", tags=["search"])
async def get_vocabulary() -> Any:
    """Every search key with its labels, value type and allowed values, and (``analysis``)
    the variables Tier-3 analyses may use, each with the analyses that accept it."""
    from oncofed.analysis.variables import catalogue

    return {**vocabulary(), "analysis": catalogue()}


async def _wait(
    ctx: HubContext, task_id: str, seconds: float, targets: int | None = None
) -> TaskView:
    """The search's state once every node answered, or at the deadline (404: no search)."""

    def is_search(view: TaskView) -> None:
        if view.kind != SEARCH_KIND:
            raise ChannelError(404, f"no search {task_id}")

    try:
        return await wait_for_results(ctx, task_id, seconds, targets=targets, check=is_search)
    except ChannelError as exc:
        raise HTTPException(exc.status, exc.message) from exc


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
        task_id, node_ids = await start_search(
            ctx, caller.username, raw, req.nodes, req.timeout_seconds
        )
    except QueryValidationError as exc:
        raise HTTPException(422, exc.as_dict()) from exc
    except (SearchRefused, ChannelError) as exc:
        raise HTTPException(exc.status, exc.message) from exc
    if not wait:
        return JSONResponse(
            {"id": task_id, "nodes": len(node_ids)},
            status_code=202,
            headers={"Location": f"/api/search/{task_id}"},
        )
    view = await _wait(ctx, task_id, req.timeout_seconds + 1, len(node_ids))
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
    return StreamingResponse(
        search_runs.search_events(ctx, task_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )
