"""The Analyse page: run a federated analysis on a cohort from the explorer, see the pooled
result (a Kaplan-Meier curve as SVG beside its table, a model's coefficient table) and
download it as CSV. The same runs as ``POST /api/analyses``; nothing here sees a partial."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from oncofed.analysis import ANALYSES
from oncofed.analysis.plot import km_svg
from oncofed.analysis.tables import result_csv
from oncofed.analysis.variables import VARIABLES
from oncofed.hub.analysis.runs import AnalysisError, Run
from oncofed.hub.auth import Caller
from oncofed.hub.channel import ChannelError
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.portal.session import check_csrf, user_with
from oncofed.hub.portal.templating import render
from oncofed.hub.search import combine
from oncofed.hub.search_runs import search_view

router = APIRouter(include_in_schema=False)
Ctx = Annotated[HubContext, Depends(hub_context)]
Researcher = Annotated[Caller, Depends(user_with("researcher"))]
Csrf = Annotated[None, Depends(check_csrf)]
ALL = {"operand": "AND", "children": []}
WAIT_SECONDS = 60.0


async def _cohort(
    ctx: HubContext, user: Caller, search_id: str
) -> tuple[dict[str, Any], list[str]]:
    """The AST and matching datasets (NODE:DATASET) of one of the user's searches."""
    if await run_in_threadpool(ctx.channel.owner, search_id) != user.username:
        raise ChannelError(404, "not yours")
    result = combine(await search_view(ctx, search_id))
    datasets = sorted({f"{c['provider']}:{c['id']}" for c in result["collections"]})
    return result.get("ast") or ALL, datasets


@router.get("/analyse")
async def analyse_form(request: Request, ctx: Ctx, user: Researcher, run: str = "") -> Response:
    ast, error = ALL, ""
    datasets: list[str] = []
    if run:
        try:
            ast, datasets = await _cohort(ctx, user, run)
        except ChannelError:
            error = f"no search {run} of yours; run the cohort query again"
    return render(
        request, ctx, "analyse.html", user, title="Analyse", error=error,
        ast_json=json.dumps(ast), datasets=datasets, variables=VARIABLES,
        analyses=list(ANALYSES), runs=ctx.analyses.mine(user.username)[:20], run=None,
    )  # fmt: skip


@router.post("/analyse")
async def analyse_start(request: Request, ctx: Ctx, user: Researcher, _: Csrf) -> Response:
    form = await request.form()
    algorithm = str(form.get("algorithm", ""))
    fields = {
        "km": ("group_by", "bin_days"),
        "glm": ("formula", "family"),
        "cox": ("formula",),
        "crosstab": ("row", "column"),
        "summary": ("variable",),
    }.get(algorithm, ())
    spec: dict[str, Any] = {}
    for name in fields:
        value = str(form.get(f"{algorithm}_{name}", "")).strip()
        if value:
            spec[name] = int(value) if name == "bin_days" and value.isdigit() else value
    datasets = [str(d) for d in form.getlist("dataset")]
    try:
        ast = json.loads(str(form.get("ast", "")) or "{}") or ALL
        run = await ctx.analyses.start(
            ctx, user.username, algorithm, spec, ast, datasets,
            allow_partial=form.get("allow_partial") == "on",
        )  # fmt: skip
    except (AnalysisError, ValueError) as exc:
        message = exc.message if isinstance(exc, AnalysisError) else str(exc)
        return render(
            request, ctx, "analyse.html", user, 422, title="Analyse", error=message,
            ast_json=json.dumps(ALL), datasets=datasets, variables=VARIABLES,
            analyses=list(ANALYSES), runs=ctx.analyses.mine(user.username)[:20], run=None,
        )  # fmt: skip
    return RedirectResponse(f"/analyse/{run.id}", status_code=303)


def _run(ctx: HubContext, user: Caller, run_id: str) -> Run | None:
    try:
        return ctx.analyses.get(run_id, user.username, "admin" in user.roles)
    except AnalysisError:
        return None


@router.get("/analyse/{run_id}.csv")
async def analyse_csv(ctx: Ctx, user: Researcher, run_id: str) -> Response:
    run = _run(ctx, user, run_id)
    if run is None or run.result is None:
        return Response("no finished analysis of yours with this id", 404)
    return Response(
        result_csv(run.result),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{run.algorithm}-{run_id}.csv"'},
    )


@router.get("/analyse/{run_id}")
async def analyse_result(request: Request, ctx: Ctx, user: Researcher, run_id: str) -> Response:
    run = _run(ctx, user, run_id)
    if run is None:
        return render(request, ctx, "error.html", user, 404, title="Not found",
                      message=f"no analysis {run_id} of yours")  # fmt: skip
    svg = None
    if run.result is not None and run.result["analysis"] == "km":
        svg = Markup(km_svg(run.result, f"Kaplan-Meier, {run.result['bin_days']}-day bins"))
    return render(
        request, ctx, "analyse.html", user, title="Analysis result", error="", run=run.view(),
        svg=svg, ast_json=json.dumps(run.cohort), datasets=run.datasets, variables=VARIABLES,
        analyses=list(ANALYSES), runs=ctx.analyses.mine(user.username)[:20],
    )  # fmt: skip
