"""HTTP API of the catalogue (public reads; holders edit; admins refresh and harvest).

JSON for the portal and scripts:

- ``GET /api/catalogue/datasets?q=&condition=&modality=&body_part=&country=&access_rights=
  &tier=&provider=&limit=&offset=``: full-text search with facet counts;
- ``GET /api/catalogue/datasets/{key}``: one record; ``PATCH`` it (data holder of its node,
  or admin) to edit title, description, keywords, provenance, collection method, access
  rights, HDAB, version, country;
- ``POST /api/catalogue/refresh`` (admin): ask the nodes now; ``POST
  /api/catalogue/nodes/refresh`` (a node, signed): "my data changed, ask me";
- ``GET /api/catalogue/export``: the whole catalogue as Turtle, JSON-LD or JSON;
- ``POST /api/catalogue/harvest`` (admin): import another FAIR Data Point's catalogue.

RDF for harvesters: the FAIR Data Point tree under ``/fdp`` (see :mod:`.fdp`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from oncofed.hub.auth import Caller, NodeRequest, authenticated_node, current_caller, require
from oncofed.hub.catalogue import dcat, fdp, service
from oncofed.hub.catalogue.harvest import HarvestError, harvest
from oncofed.hub.catalogue.schema import DatasetRecord
from oncofed.hub.channel import ChannelError, _record_contact
from oncofed.hub.context import HubContext, hub_context

router = APIRouter(tags=["catalogue"])
Ctx = Annotated[HubContext, Depends(hub_context)]


def _fail(exc: service.CatalogueError) -> HTTPException:
    return HTTPException(exc.status, exc.message)


async def optional_caller(request: Request, ctx: Ctx) -> Caller | None:
    """The caller when a bearer token is sent (to mark editable records), else None."""
    if not request.headers.get("authorization"):
        return None
    return await current_caller(request, ctx)


OptionalCaller = Annotated[Caller | None, Depends(optional_caller)]


def _json(record: DatasetRecord, caller: Caller | None) -> dict[str, Any]:
    editable = caller is not None and service.can_edit(caller.roles, record)
    return record.model_dump(mode="json") | {"editable": editable}


# -- JSON API ------------------------------------------------------------------------------


@router.get("/api/catalogue/datasets")
async def search_datasets(
    ctx: Ctx,
    caller: OptionalCaller,
    q: Annotated[str, Query(max_length=500, description="words; each must match")] = "",
    condition: Annotated[list[str] | None, Query(description="cancer type code or label")] = None,
    modality: Annotated[list[str] | None, Query()] = None,
    body_part: Annotated[list[str] | None, Query()] = None,
    country: Annotated[list[str] | None, Query()] = None,
    access_rights: Annotated[list[str] | None, Query()] = None,
    tier: Annotated[list[str] | None, Query()] = None,
    provider: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    """Full-text search of the catalogue with facets (cancer type, modality, body part,
    country, access rights, tier, provider)."""
    records = await run_in_threadpool(service.list_records, ctx)
    filters = {
        "condition": condition,
        "modality": modality,
        "body_part": body_part,
        "country": country,
        "access_rights": access_rights,
        "tier": tier,
        "provider": provider,
    }
    try:
        answer = service.search(records, q, {k: v or [] for k, v in filters.items()}, limit, offset)
    except service.CatalogueError as exc:
        raise _fail(exc) from exc
    if caller is not None:
        by_key = {r.key: r for r in records}
        for hit in answer["results"]:
            hit["editable"] = service.can_edit(caller.roles, by_key[hit["key"]])
    return answer


@router.get("/api/catalogue/datasets/{key:path}")
async def get_dataset(key: str, ctx: Ctx, caller: OptionalCaller) -> Any:
    try:
        record = await run_in_threadpool(service.get_record, ctx, key)
    except service.CatalogueError as exc:
        raise _fail(exc) from exc
    return _json(record, caller)


@router.patch("/api/catalogue/datasets/{key:path}")
async def edit_dataset(
    key: str,
    patch: dict[str, Any],
    ctx: Ctx,
    caller: Annotated[Caller, Depends(current_caller)],
) -> Any:
    """Edit descriptive fields; a field set to null returns to its default."""
    try:
        record = await run_in_threadpool(
            service.edit, ctx, caller.username, caller.roles, key, patch
        )
    except service.CatalogueError as exc:
        raise _fail(exc) from exc
    except ValidationError as exc:
        raise HTTPException(
            422,
            [
                {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors()
            ],
        ) from exc
    return _json(record, caller)


class RefreshRequest(BaseModel):
    nodes: list[str] | None = Field(None, description="node names; all if empty")
    timeout_seconds: float = Field(30.0, gt=0, le=300)


@router.post("/api/catalogue/refresh")
async def refresh_catalogue(
    req: RefreshRequest,
    ctx: Ctx,
    caller: Annotated[Caller, Depends(require("admin"))],
) -> Any:
    """Ask the nodes for their datasets now; answers with each node's status."""
    try:
        result = await service.refresh(ctx, req.nodes, req.timeout_seconds, caller.username)
    except service.CatalogueError as exc:
        raise _fail(exc) from exc
    return JSONResponse(result, status_code=200 if result["complete"] else 206)


def _note_contact(ctx: HubContext, node_id: str, nonce: str) -> None:
    with ctx.sessions.begin() as s:
        _record_contact(s, node_id, nonce)


@router.post("/api/catalogue/nodes/refresh", status_code=202)
async def node_asks_refresh(
    request: Request,
    ctx: Ctx,
    node: Annotated[NodeRequest, Depends(authenticated_node)],
) -> Any:
    """A node whose data changed (after an ingest) asks to be described again."""
    try:
        await run_in_threadpool(_note_contact, ctx, node.node.id, node.nonce)
    except ChannelError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    pending: dict[str, asyncio.Task[Any]] = request.app.state.__dict__.setdefault(
        "catalogue_refreshes", {}
    )
    name = node.node.name
    if name not in pending or pending[name].done():
        pending[name] = asyncio.create_task(
            service.refresh(ctx, [name], service.REFRESH_TTL_SECONDS, f"node:{name}")
        )
    return {"refresh": "scheduled", "node": name}


class HarvestRequest(BaseModel):
    url: str = Field(min_length=8, max_length=2000, description="a FAIR Data Point or catalogue")


@router.post("/api/catalogue/harvest")
async def harvest_catalogue(
    req: HarvestRequest,
    ctx: Ctx,
    caller: Annotated[Caller, Depends(require("admin"))],
) -> Any:
    """Import (or update) the datasets of another FAIR Data Point."""
    if not req.url.startswith(("http://", "https://")):
        raise HTTPException(422, "url must be an http(s) URL of a FAIR Data Point")
    try:
        result = await run_in_threadpool(harvest, req.url)
    except HarvestError as exc:
        raise HTTPException(502, f"harvest of {req.url} failed: {exc}") from exc
    catalogues = {}
    for origin, found in result.catalogues.items():
        catalogues[origin] = await run_in_threadpool(
            service.replace_harvested, ctx, origin, found, caller.username
        )
    return {
        "url": req.url,
        "pages": result.pages,
        "catalogues": catalogues,
        "problems": result.problems,
    }


@router.get("/api/catalogue/export")
async def export_catalogue(
    ctx: Ctx,
    accept: Annotated[str | None, Header()] = None,
    format: Annotated[str | None, Query(description="ttl, jsonld or json")] = None,
) -> Response:
    """The whole catalogue in one document (FAIR Data Point, catalogue, every dataset)."""
    kind = fdp.negotiate(accept, format)
    records = await run_in_threadpool(service.list_records, ctx)
    base, name = ctx.settings.url, ctx.settings.name
    if kind == "json":
        return JSONResponse(
            {
                "catalog": str(dcat.catalogue_iri(base)),
                "title": name,
                "datasets": [r.model_dump(mode="json") for r in records],
            }
        )
    graph = await run_in_threadpool(dcat.catalogue_graph, base, name, records)
    return fdp.respond(kind, graph, None)


# -- FAIR Data Point -----------------------------------------------------------------------


@router.get("/fdp")
async def fdp_root(
    ctx: Ctx,
    accept: Annotated[str | None, Header()] = None,
    format: Annotated[str | None, Query()] = None,
) -> Response:
    kind = fdp.negotiate(accept, format)
    graph, body = fdp.root_page(ctx.settings.url, ctx.settings.name)
    return fdp.respond(kind, graph, body)


@router.get("/fdp/catalog")
async def fdp_catalogue(
    ctx: Ctx,
    accept: Annotated[str | None, Header()] = None,
    format: Annotated[str | None, Query()] = None,
) -> Response:
    kind = fdp.negotiate(accept, format)
    records = await run_in_threadpool(service.list_records, ctx)
    graph, body = fdp.catalogue_page(ctx.settings.url, ctx.settings.name, records)
    return fdp.respond(kind, graph, body)


async def _record(ctx: HubContext, key: str) -> DatasetRecord:
    try:
        return await run_in_threadpool(service.get_record, ctx, key)
    except service.CatalogueError as exc:
        raise _fail(exc) from exc


@router.get("/fdp/dataset/{key:path}")
async def fdp_dataset(
    key: str,
    ctx: Ctx,
    accept: Annotated[str | None, Header()] = None,
    format: Annotated[str | None, Query()] = None,
) -> Response:
    kind = fdp.negotiate(accept, format)
    graph, body = fdp.dataset_page(ctx.settings.url, await _record(ctx, key))
    return fdp.respond(kind, graph, body)


@router.get("/fdp/distribution/{key:path}")
async def fdp_distribution(
    key: str,
    ctx: Ctx,
    accept: Annotated[str | None, Header()] = None,
    format: Annotated[str | None, Query()] = None,
) -> Response:
    kind = fdp.negotiate(accept, format)
    graph, body = fdp.distribution_page(ctx.settings.url, await _record(ctx, key))
    return fdp.respond(kind, graph, body)
