"""The cohort explorer: build a query from the vocabulary, run it across the federation and
watch each provider's count arrive, save and share the query, request access from the result.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from oncofed.hub.auth import Caller
from oncofed.hub.channel import ChannelError
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.portal import cohort
from oncofed.hub.portal.charts import Bar, bar_chart
from oncofed.hub.portal.models import SavedQuery
from oncofed.hub.portal.session import PortalDenied, check_csrf, user_with
from oncofed.hub.portal.templating import render
from oncofed.hub.search import SearchRefused, combine
from oncofed.hub.search_runs import search_events, search_view, start_search
from oncofed.query import KEYS, KEYS_BY_NAME, QueryValidationError, vocabulary
from oncofed.security.envelope import utcnow
from oncofed.security.http import small_int

router = APIRouter(include_in_schema=False)
Ctx = Annotated[HubContext, Depends(hub_context)]
Researcher = Annotated[Caller, Depends(user_with("researcher"))]
Csrf = Annotated[None, Depends(check_csrf)]
SEARCH_SECONDS = 10.0
LEVELS = {
    "patient": "Patient",
    "disease": "Diagnosis",
    "series": "Imaging",
    "treatment": "Treatment",
    "outcome": "Outcome",
    "variant": "Genomic variant",
    "biomarker": "Biomarker",
}


def _saved_list(ctx: HubContext, owner: str) -> list[SavedQuery]:
    with ctx.sessions() as s:
        return list(
            s.scalars(
                sa.select(SavedQuery)
                .where(SavedQuery.owner == owner)
                .order_by(SavedQuery.created_at.desc())
                .limit(50)
            )
        )


def _saved(ctx: HubContext, query_id: str) -> SavedQuery | None:
    with ctx.sessions() as s:
        return s.get(SavedQuery, query_id)


def result_bars(result: dict[str, Any]) -> list[Bar]:
    bars = []
    for p in result["providers"]:
        if p["status"] != "succeeded":
            continue
        shown, below = 0, 0
        for c in p.get("collections", []):
            if c.get("subjects_count") is not None:
                shown += int(c["subjects_count"])
            elif c.get("subjects_count_below"):
                below = max(below, int(c["subjects_count_below"]))
        bars.append(Bar(p["provider"], shown if shown or not below else None, below or None))
    return bars


async def _page(
    request: Request,
    ctx: HubContext,
    user: Caller,
    q: str,
    status_code: int = 200,
    error: str = "",
    **extra: Any,
) -> Response:
    try:
        ast, groups = cohort.parse_state(q)
    except cohort.CohortError as exc:
        ast, groups, error = cohort.to_ast([]), [], str(exc)
    params = request.query_params
    key = params.get("key", "")
    run_id = params.get("run", "")
    result = None
    if run_id:
        try:
            if await run_in_threadpool(ctx.channel.owner, run_id) != user.username:
                raise ChannelError(404, "not yours")
            result = combine(await search_view(ctx, run_id))
        except ChannelError:
            error = error or f"no search {run_id} of yours; run the query again"
    saved = await run_in_threadpool(_saved_list, ctx, user.username)
    keys_by_level: dict[str, list[Any]] = {}
    for spec in KEYS:
        keys_by_level.setdefault(LEVELS.get(spec.group.split(":", 1)[0], "Other"), []).append(spec)
    return render(
        request,
        ctx,
        "cohort.html",
        user,
        status_code,
        title="Cohort explorer",
        error=error,
        # The user's own shape (EUCAIM's), not the canonical form the nodes receive.
        q=(cohort.encode(groups) if groups is not None else json.dumps(ast)) if q else "",
        ast_pretty=json.dumps(cohort.to_ast(groups) if groups is not None else ast, indent=2),
        groups=groups,
        describe=cohort.describe(groups, ast),
        describe_criterion=cohort.describe_criterion,
        type_words=cohort.TYPE_WORDS,
        keys_by_level=keys_by_level,
        chosen=KEYS_BY_NAME.get(key),
        add_to=params.get("group", "0" if groups else "new"),
        vocabulary_json=json.dumps(vocabulary()),
        result=result,
        run_id=run_id if result else "",
        chart=bar_chart("Matching individuals per provider", result_bars(result))
        if result
        else None,
        saved=saved,
        base_url=str(request.base_url).rstrip("/"),
        **extra,
    )


@router.get("/cohort", response_class=HTMLResponse)
async def explorer(request: Request, ctx: Ctx, user: Researcher, q: str = "") -> Response:
    saved_id = request.query_params.get("saved", "")
    if saved_id and not q:
        row = await run_in_threadpool(_saved, ctx, saved_id)
        if row is None:
            return await _page(request, ctx, user, "", 404, f"no saved query {saved_id}")
        return await _page(
            request, ctx, user, json.dumps(row.ast), flash=f"Opened the saved query “{row.name}”."
        )
    return await _page(request, ctx, user, q)


def _to(q: str, **params: str) -> RedirectResponse:
    query = urlencode({"q": q, **params} if q else params)
    return RedirectResponse(f"/cohort?{query}" if query else "/cohort", status_code=303)


def _groups_of(q: str) -> cohort.Groups:
    _, groups = cohort.parse_state(q)
    if groups is None:
        raise cohort.CohortError(
            "this query is not made of simple groups; edit it as JSON below, or start anew"
        )
    return groups


@router.post("/cohort/add", response_class=HTMLResponse)
async def add(request: Request, ctx: Ctx, user: Researcher, _: Csrf) -> Response:
    form = await request.form()
    q = str(form.get("q", ""))
    try:
        groups = _groups_of(q)
        criterion = cohort.criterion_from_form(
            str(form.get("key", "")),
            str(form.get("type", "")),
            [str(v) for v in form.getlist("value")],
            str(form.get("min", "")),
            str(form.get("max", "")),
        )
    except cohort.CohortError as exc:
        return await _page(request, ctx, user, q, 422, str(exc))
    target = small_int(str(form.get("group", "new")))
    if target is not None and target < len(groups):
        groups[target].append(criterion)
    else:
        groups.append([criterion])
    return _to(cohort.encode(groups))


@router.post("/cohort/remove", response_class=HTMLResponse)
async def remove(request: Request, ctx: Ctx, user: Researcher, _: Csrf) -> Response:
    form = await request.form()
    q = str(form.get("q", ""))
    try:
        groups = _groups_of(q)
        g, i = int(str(form.get("group", "-1"))), int(str(form.get("index", "-1")))
        del groups[g][i]
    except (cohort.CohortError, ValueError, IndexError):
        return await _page(request, ctx, user, q, 422, "that criterion is no longer there")
    return _to(cohort.encode([grp for grp in groups if grp]))


@router.post("/cohort/json", response_class=HTMLResponse)
async def from_json(request: Request, ctx: Ctx, user: Researcher, _: Csrf) -> Response:
    """The advanced box: a query pasted as JSON (EUCAIM AST), validated before it is kept."""
    form = await request.form()
    raw = str(form.get("ast", "")).strip()
    try:
        cohort.parse_state(raw)
    except cohort.CohortError as exc:
        return await _page(request, ctx, user, str(form.get("q", "")), 422, str(exc))
    return _to(json.dumps(json.loads(raw), separators=(",", ":")) if raw else "")


@router.post("/cohort/run", response_class=HTMLResponse)
async def run(request: Request, ctx: Ctx, user: Researcher, _: Csrf) -> Response:
    form = await request.form()
    q = str(form.get("q", ""))
    try:
        ast, _groups = cohort.parse_state(q)
        task_id, _nodes = await start_search(ctx, user.username, ast, None, SEARCH_SECONDS)
    except cohort.CohortError as exc:
        return await _page(request, ctx, user, q, 422, str(exc))
    except QueryValidationError as exc:
        return await _page(request, ctx, user, q, 422, f"the query is not valid: {exc}")
    except (SearchRefused, ChannelError) as exc:
        return await _page(request, ctx, user, q, exc.status, exc.message)
    return _to(q, run=task_id)


@router.get("/cohort/runs/{task_id}/events")
async def events(task_id: str, ctx: Ctx, user: Researcher) -> Response:
    try:
        owner = await run_in_threadpool(ctx.channel.owner, task_id)
    except ChannelError:
        owner = ""
    if owner != user.username:
        return Response(f"no search {task_id} of yours", status_code=404)
    return StreamingResponse(
        search_events(ctx, task_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/cohort/runs/{task_id}.csv")
async def counts_csv(task_id: str, ctx: Ctx, user: Researcher) -> Response:
    """The counts on screen as CSV: one row per provider and dataset, a withheld count
    empty with its threshold beside it (never a made-up number)."""
    try:
        if await run_in_threadpool(ctx.channel.owner, task_id) != user.username:
            raise ChannelError(404, "not yours")
        result = combine(await search_view(ctx, task_id))
    except ChannelError:
        return Response(f"no search {task_id} of yours", status_code=404)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for p in result["providers"]:
        for c in p.get("collections") or [{}]:
            writer.writerow(
                [
                    p["provider"],
                    p["status"],
                    c.get("id", ""),
                    c.get("name", ""),
                    _cell(c.get("subjects_count")),
                    _cell(c.get("subjects_count_below")),
                    _cell(c.get("studies_count")),
                    _cell(c.get("studies_count_below")),
                    " ".join(c.get("modalities", [])),
                ]
            )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="cohort-{task_id}.csv"'},
    )


CSV_COLUMNS = (
    "provider",
    "status",
    "dataset",
    "dataset_name",
    "patients",
    "patients_fewer_than",
    "studies",
    "studies_fewer_than",
    "modalities",
)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


@router.post("/cohort/save", response_class=HTMLResponse)
async def save(request: Request, ctx: Ctx, user: Researcher, _: Csrf) -> Response:
    form = await request.form()
    q = str(form.get("q", ""))
    name = str(form.get("name", "")).strip()[:300]
    try:
        ast, groups = cohort.parse_state(q)
    except cohort.CohortError as exc:
        return await _page(request, ctx, user, q, 422, str(exc))
    row = SavedQuery(
        id=secrets.token_urlsafe(12),
        owner=user.username,
        name=name or cohort.describe(groups, ast)[:300],
        ast=json.loads(q) if q else ast,
        created_at=utcnow(),
    )

    def store() -> None:
        with ctx.sessions.begin() as s:
            s.add(row)
            ctx.audit.append(
                user.username,
                "cohort.save",
                "info",
                row.id,
                details={"name": row.name},
                con=s.connection(),
            )

    await run_in_threadpool(store)
    # The results on screen stay: the run's id goes back into the address.
    run_id = str(form.get("run", ""))
    return _to(q, done="saved", shared=row.id, **({"run": run_id} if run_id else {}))


@router.post("/cohort/saved/{query_id}/delete", response_class=HTMLResponse)
async def delete_saved(
    request: Request, query_id: str, ctx: Ctx, user: Researcher, _: Csrf
) -> Response:
    def drop() -> bool:
        with ctx.sessions.begin() as s:
            row = s.get(SavedQuery, query_id)
            if row is None or row.owner != user.username:
                return False
            s.delete(row)
            return True

    if not await run_in_threadpool(drop):
        raise PortalDenied(f"no saved query {query_id} of yours")
    return _to("", done="deleted")
