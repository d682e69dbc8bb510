"""The researcher's Tier-3 API: ``POST /api/analyses`` starts a run, ``GET`` follows it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from oncofed.analysis import ANALYSES
from oncofed.analysis.variables import catalogue
from oncofed.hub.analysis.runs import AnalysisError, Run
from oncofed.hub.auth import Caller, require
from oncofed.hub.context import HubContext, hub_context

router = APIRouter()


class AnalysisRequest(BaseModel):
    algorithm: str = Field(description="km, glm, cox, crosstab or summary (optionally @version)")
    spec: dict[str, Any] = Field(default_factory=dict, description="the analysis's parameters")
    cohort: dict[str, Any] = Field(
        default_factory=lambda: {"operand": "AND", "children": []},
        description="EUCAIM search AST selecting the patients (all if empty)",
    )
    datasets: list[str] = Field(min_length=1, description="NODE:DATASET, one per dataset")
    allow_partial: bool = Field(False, description="go on without a node that drops out")
    round_timeout_seconds: float = Field(30.0, gt=0, le=600)
    passport: str | None = Field(
        None, description="visas to present (default: the caller's valid visas, from the hub)"
    )


def _answer(run: Run) -> JSONResponse:
    status = 202 if run.status == "running" else 200
    return JSONResponse(
        run.view(), status_code=status, headers={"Location": f"/api/analyses/{run.id}"}
    )


async def _wait(run: Run, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(run.done.wait(), seconds)


@router.get("/api/analyses/variables", tags=["analysis"])
async def variables() -> dict[str, Any]:
    """The analysable variables and which analyses may use each."""
    return {
        **catalogue(),
        "analyses": {
            a.name: {
                "version": a.version,
                "iterative": a.iterative,
                "epsilon_units": a.epsilon_units,
            }
            for a in ANALYSES.values()
        },
    }


@router.post("/api/analyses", tags=["analysis"])
async def start_analysis(
    req: AnalysisRequest,
    ctx: Annotated[HubContext, Depends(hub_context)],
    caller: Annotated[Caller, Depends(require("researcher", "admin"))],
    wait: Annotated[float, Query(ge=0, le=600, description="seconds to wait for the end")] = 120,
) -> JSONResponse:
    """Start a run; 200 with the pooled result when it ends within `wait`, else 202."""
    try:
        run = await ctx.analyses.start(
            ctx,
            caller.username,
            req.algorithm,
            req.spec,
            req.cohort,
            req.datasets,
            allow_partial=req.allow_partial,
            round_timeout=req.round_timeout_seconds,
            passport=req.passport,
        )
    except AnalysisError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    await _wait(run, wait)
    return _answer(run)


@router.get("/api/analyses", tags=["analysis"])
async def my_analyses(
    ctx: Annotated[HubContext, Depends(hub_context)],
    caller: Annotated[Caller, Depends(require("researcher", "admin"))],
) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in r.view().items() if k != "result"}
        for r in ctx.analyses.mine(caller.username)
    ]


@router.get("/api/analyses/{run_id}", tags=["analysis"])
async def get_analysis(
    run_id: str,
    ctx: Annotated[HubContext, Depends(hub_context)],
    caller: Annotated[Caller, Depends(require("researcher", "admin"))],
    wait: Annotated[float, Query(ge=0, le=600)] = 0,
) -> JSONResponse:
    try:
        run = ctx.analyses.get(run_id, caller.username, "admin" in caller.roles)
    except AnalysisError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    await _wait(run, wait)
    return _answer(run)
