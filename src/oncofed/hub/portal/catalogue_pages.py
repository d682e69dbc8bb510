"""Portal pages of the public catalogue: the start page, search with facets, dataset pages,
and the data holder's edit form. Readable without logging in, like the catalogue API."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from oncofed.hub.auth import Caller
from oncofed.hub.catalogue import service
from oncofed.hub.catalogue.schema import UNSPECIFIED, DatasetRecord
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.portal.charts import Bar, bar_chart, range_chart
from oncofed.hub.portal.session import check_csrf, optional_user, user_with
from oncofed.hub.portal.templating import render

router = APIRouter(include_in_schema=False)
Ctx = Annotated[HubContext, Depends(hub_context)]
MaybeUser = Annotated[Caller | None, Depends(optional_user)]
PAGE = 20
EDITABLE = ("title", "description", "keywords", "provenance", "collection_method", "version")


def individuals_bar(label: str, r: DatasetRecord) -> Bar:
    f = r.figures
    return Bar(label, f.individuals, f.individuals_below)


def by_provider(records: list[DatasetRecord]) -> list[Bar]:
    """Individuals per provider; a provider whose every count is withheld shows '< k'."""
    totals: dict[str, tuple[int, int]] = {}
    for r in records:
        shown, withheld = totals.get(r.provider, (0, 0))
        if r.figures.individuals is not None:
            shown += r.figures.individuals
        elif r.figures.individuals_below:
            withheld = max(withheld, r.figures.individuals_below)
        totals[r.provider] = (shown, withheld)
    return [
        Bar(p, s if s or not w else None, w or None, " (some counts withheld)" if w and s else "")
        for p, (s, w) in sorted(totals.items())
    ]


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, ctx: Ctx, user: MaybeUser) -> Response:
    records = await run_in_threadpool(service.list_records, ctx)
    providers = sorted({r.provider for r in records})
    individuals = sum(r.figures.individuals or 0 for r in records)
    answer = service.search(records, "", {}, limit=1)
    return render(
        request,
        ctx,
        "home.html",
        user,
        title="Find cancer data across the federation",
        datasets=len(records),
        providers=providers,
        individuals=individuals,
        chart=bar_chart("Individuals per provider", by_provider(records)),
        facets=answer["facets"],
    )


@router.get("/catalogue", response_class=HTMLResponse)
async def catalogue(
    request: Request,
    ctx: Ctx,
    user: MaybeUser,
    q: Annotated[str, Query(max_length=500)] = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    filters = {
        facet: request.query_params.getlist(facet)
        for facet in service.FACETS
        if request.query_params.getlist(facet)
    }
    records = await run_in_threadpool(service.list_records, ctx)
    answer = service.search(records, q, filters, limit=PAGE, offset=(page - 1) * PAGE)
    for hit in answer["results"]:
        hit["editable"] = bool(user) and service.can_edit(
            user.roles if user else (), DatasetRecord.model_validate(hit)
        )
    pages = max(1, -(-answer["total"] // PAGE))
    base = [(k, v) for k, vs in filters.items() for v in vs] + ([("q", q)] if q else [])
    return render(
        request,
        ctx,
        "catalogue.html",
        user,
        title="Catalogue",
        q=q,
        answer=answer,
        page=page,
        pages=pages,
        base=base,
        chart=bar_chart(
            "Individuals per dataset",
            [
                individuals_bar(f"{h['provider']}: {h['title']}", DatasetRecord.model_validate(h))
                for h in answer["results"]
            ],
        ),
    )


def _dataset_page(
    request: Request,
    ctx: HubContext,
    user: Caller | None,
    record: DatasetRecord,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    f = record.figures
    age = (
        range_chart(
            "Age at diagnosis (released range)",
            [(record.title, f.age_range.min, f.age_range.max)],
            max(0, f.age_range.min // 10 * 10),
            max(f.age_range.max, f.age_range.min + 10) // 10 * 10 + 10,
        )
        if f.age_range
        else None
    )
    return render(
        request,
        ctx,
        "dataset.html",
        user,
        status_code=status_code,
        title=record.title,
        d=record,
        editable=bool(user) and service.can_edit(user.roles if user else (), record),
        countries=_countries(),
        unspecified=UNSPECIFIED,
        age_chart=age,
        **extra,
    )


@cache
def _countries() -> list[tuple[str, str]]:
    """ISO 3166-1 countries as (alpha-3 code, name), by name: the data holder's choices."""
    import pycountry

    return sorted(((c.alpha_3, c.name) for c in pycountry.countries), key=lambda c: c[1])


@router.get("/catalogue/{key:path}", response_class=HTMLResponse)
async def dataset(request: Request, key: str, ctx: Ctx, user: MaybeUser) -> Response:
    try:
        record = await run_in_threadpool(service.get_record, ctx, key)
    except service.CatalogueError as exc:
        return render(
            request, ctx, "error.html", user, exc.status, title="Not found", message=exc.message
        )
    return _dataset_page(request, ctx, user, record)


@router.post("/catalogue/{key:path}", response_class=HTMLResponse)
async def edit_dataset(
    request: Request,
    key: str,
    ctx: Ctx,
    user: Annotated[Caller, Depends(user_with())],
    _: Annotated[None, Depends(check_csrf)],
) -> Response:
    """The data holder's edit of the descriptive fields (the figures come from the node)."""
    form = await request.form()
    patch: dict[str, Any] = {}
    for field in EDITABLE:
        raw = str(form.get(field, "")).strip()
        if field == "keywords":
            patch[field] = [k.strip() for k in raw.split(",") if k.strip()] or None
        else:
            patch[field] = raw or None
    for field in ("access_rights", "country"):
        raw = str(form.get(field, "")).strip()
        patch[field] = raw or None
    hdab = str(form.get("hdab_name", "")).strip()
    if hdab:
        patch["hdab"] = {
            "name": hdab,
            "url": str(form.get("hdab_url", "")).strip() or None,
            "email": str(form.get("hdab_email", "")).strip() or None,
        }
    try:
        await run_in_threadpool(service.edit, ctx, user.username, user.roles, key, patch)
    except (service.CatalogueError, ValidationError) as exc:
        if isinstance(exc, ValidationError):
            message = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            status = 422
        else:
            message, status = exc.message, exc.status
        try:
            record = await run_in_threadpool(service.get_record, ctx, key)
        except service.CatalogueError:
            return render(request, ctx, "error.html", user, 404, title="Not found", message=message)
        return _dataset_page(request, ctx, user, record, status, error=message)
    return RedirectResponse(f"/catalogue/{key}?done=edited", status_code=303)
