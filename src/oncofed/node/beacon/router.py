"""The node's Beacon v2 HTTP API: a FastAPI router to mount under a prefix (``/beacon/v2``).

Framework endpoints ``/``, ``/info``, ``/service-info``, ``/configuration``, ``/map``,
``/entry_types``, ``/filtering_terms``; entry types ``/individuals``, ``/biosamples``,
``/g_variants``, ``/analyses``, ``/runs``, ``/cohorts``, ``/datasets`` with ``/{id}`` and the
``/{id}/{entry}`` cross-links, each by GET (query parameters) or POST (a Beacon request
body). Record granularity needs a verified grant: :data:`GrantChecker` says which datasets
the caller holds one for; the default grants nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from oncofed.beacon.errors import error_response
from oncofed.beacon.wire import (
    ENTRY_TYPES,
    BeaconConfig,
    BeaconError,
    BeaconRequest,
    add_get_post,
)
from oncofed.node.beacon.engine import BeaconEngine
from oncofed.privacy.errors import DisclosureRefused

GrantChecker = Callable[[Request], set[str]]
"""Request → ids of the datasets the caller holds a *verified* grant for (record level).

The identity layer plugs in GA4GH passport verification here (signatures checked: never
decode a visa without verifying it). The default, :func:`deny_all`, grants nothing.
"""
EngineProvider = Callable[[Request], BeaconEngine]


def deny_all(request: Request) -> set[str]:
    del request
    return set()


def node_engine(request: Request) -> BeaconEngine:
    """The engine of the running node service (``app.state.node``), made once per app."""
    engine: BeaconEngine | None = getattr(request.app.state, "beacon_engine", None)
    if engine is None:
        ctx = request.app.state.node
        engine = engine_for(ctx)
        request.app.state.beacon_engine = engine
    return engine


def engine_for(ctx: Any) -> BeaconEngine:
    """A Beacon engine over a :class:`~oncofed.node.context.NodeContext`."""
    settings = ctx.settings
    provider = settings.provider_id or settings.name
    config = BeaconConfig(
        beacon_id=f"org.oncofed.{provider}",
        name=f"{settings.name} Beacon",
        organization=settings.name,
    )
    ledger = getattr(ctx, "privacy_ledger", None)
    node_id = settings.node_id or settings.name
    noise = None
    if ledger is not None:

        def noise(query: str, wanted: list[tuple[str, str, float]]) -> dict[tuple[str, str], int]:
            result: dict[tuple[str, str], int] = ledger.noise(node_id, query, wanted)
            return result

    def admit(requester: str, query: str) -> None:
        """The search budget and rate limit, applied to Beacon counts; every decision is
        written to the node's audit log."""
        if ledger is None:
            return
        try:
            admission = ledger.admit(requester, query, ctx.policy.disclosure)
        except DisclosureRefused as exc:
            ctx.audit.append(requester, "beacon.count", "deny", query, str(exc),
                             {"reason": exc.reason})  # fmt: skip
            raise
        ctx.audit.append(requester, "beacon.count", "allow", query, "",
                         {"epsilon": admission.epsilon_charged,
                          "remaining": round(admission.remaining, 6)})  # fmt: skip

    return BeaconEngine(ctx.store, ctx.policy.disclosure, config, noise, admit)


def create_beacon_router(
    engine: EngineProvider = node_engine,
    grants: GrantChecker = deny_all,
    prefix: str = "/beacon/v2",
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["beacon"])

    async def _request(request: Request) -> BeaconRequest:
        if request.method == "POST":
            return BeaconRequest.from_json(await request.body())
        return BeaconRequest.from_query(dict(request.query_params))

    def _root(request: Request) -> str:
        return str(request.base_url).rstrip("/") + prefix

    async def framework(request: Request) -> JSONResponse:
        e = engine(request)
        name = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        if request.url.path.rstrip("/").endswith(prefix.rstrip("/")):
            name = "info"
        documents = {
            "info": e.info,
            "service-info": e.service_info,
            "configuration": e.configuration,
            "entry_types": lambda: {
                "meta": e.meta(),
                "response": {"entryTypes": e.entry_types()},
            },
            "filtering_terms": e.filtering_terms,
            "map": lambda: e.map(_root(request)),
        }
        return JSONResponse(await run_in_threadpool(documents[name]))

    for path in ("", "/", "/info", "/service-info", "/configuration", "/map", "/entry_types",
                 "/filtering_terms"):  # fmt: skip
        add_get_post(router, path, framework, include_in_schema=path != "/")

    async def run(
        request: Request, entry: str, entry_id: str | None = None, via: str | None = None
    ) -> JSONResponse:
        e = engine(request)
        try:
            beacon_request = await _request(request)
            granted = grants(request)
            requester = f"beacon@{request.client.host if request.client else '?'}"
            result = await run_in_threadpool(
                e.query, entry, beacon_request, granted, entry_id, via, requester
            )
        except BeaconError as exc:
            return error_response(e.config.beacon_id, exc.status, str(exc))
        return JSONResponse(result)

    def entry_routes(entry: str) -> None:
        async def collection(request: Request) -> JSONResponse:
            return await run(request, entry)

        async def single(request: Request, entry_id: str) -> JSONResponse:
            return await run(request, entry, entry_id, entry)

        add_get_post(router, f"/{entry}", collection, name=f"beacon_{entry}")
        add_get_post(router, f"/{entry}/{{entry_id}}", single, name=f"beacon_{entry}_id")
        if entry in ("cohorts", "datasets"):
            return
        for other in ("individuals", "biosamples", "g_variants", "analyses", "runs"):
            if other != entry:
                add_get_post(
                    router,
                    f"/{entry}/{{entry_id}}/{other}",
                    cross_link(entry, other),
                    name=f"beacon_{entry}_{other}",
                )

    def cross_link(entry: str, other: str) -> Callable[..., Any]:
        async def linked(request: Request, entry_id: str) -> JSONResponse:
            return await run(request, other, entry_id, entry)

        return linked

    for entry in ENTRY_TYPES:
        entry_routes(entry)
    return router
