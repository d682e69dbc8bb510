"""The hub as a Beacon v2 network aggregator: the same API, answered by the nodes.

Framework documents (``/info``, ``/map`` ...) are the hub's own; an entry-type request
becomes a ``beacon.query`` task to every enrolled node (over the signed task channel, as
any task), the hub waits up to ``wait_seconds`` for their answers and merges them:
``exists`` if any node has a hit, counts summed over the nodes that released one, result
sets listed per node and dataset (``<node>:<dataset>``), and each node's status in
``info.nodes`` (answered, refused, timed out ...). Nodes refuse ``beacon.query`` unless
their ``policy.toml`` lists it in ``allowed_tasks``. Entry queries need a signed-in
researcher (each one costs every hospital a task); the framework documents are public.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from oncofed.beacon.errors import error_response
from oncofed.beacon.wire import (
    BEACON_TASK,
    ENTRY_TYPES,
    ORDER,
    BeaconConfig,
    BeaconError,
    BeaconFramework,
    BeaconQueryBody,
    BeaconRequest,
    add_get_post,
)
from oncofed.hub.admission import admit_task
from oncofed.hub.auth import Caller, require
from oncofed.hub.channel import ChannelError, TaskView
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.search import SearchRefused
from oncofed.hub.waiting import wait_for_results
from oncofed.protocol import TaskBodyError, register_kind

register_kind(BEACON_TASK, BeaconQueryBody)

# Module level: with postponed annotations FastAPI resolves these names in module globals.
Researcher = Annotated[Caller, Depends(require("researcher", "admin"))]
HUB_BEACON_ID = "org.oncofed.hub"


def declared(model: BaseModel) -> dict[str, Any]:
    """A Beacon request with only the fields the specification declares: what the hub
    forwards to every node (extra fields went along whole, whatever their size)."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if value is None:
            continue
        if isinstance(value, BaseModel):
            out[name] = declared(value)
        elif isinstance(value, list):
            out[name] = [declared(v) if isinstance(v, BaseModel) else v for v in value]
        else:
            out[name] = value
    return out


def merge(
    framework: BeaconFramework,
    entry: str,
    request: BeaconRequest,
    view: TaskView,
) -> dict[str, Any]:
    """One Beacon response from the nodes' answers, with each node's status in ``info``.

    Granularity is each node's own decision (its grants, access levels and minimum counts):
    a node that returns records contributes its result sets even when another node with a
    hit answers only a count or a yes/no. The response's ``returnedGranularity`` is the
    finest any node gave, ``info.nodes[].returnedGranularity`` says which node gave what, and
    ``numTotalResults`` sums the nodes that released a count.
    """
    nodes: list[dict[str, Any]] = []
    exists = False
    total = 0
    counted = False
    granularities: list[str] = []
    result_sets: list[dict[str, Any]] = []
    collections: list[dict[str, Any]] = []
    for t in view.targets:
        status: dict[str, Any] = {"node": t.node_name, "status": t.status}
        result = t.result or {}
        doc = result.get("document") if t.status == "succeeded" else None
        if t.error:
            status["error"] = t.error
        if result.get("error"):
            status["error"] = result["error"]
        if isinstance(doc, dict):
            node_summary = doc.get("responseSummary", {})
            hit = bool(node_summary.get("exists"))
            status["exists"] = hit
            exists = exists or hit
            node_granularity = doc.get("meta", {}).get("returnedGranularity", "boolean")
            status["returnedGranularity"] = node_granularity
            if "numTotalResults" in node_summary:
                status["numTotalResults"] = node_summary["numTotalResults"]
            if hit:
                granularities.append(node_granularity)
                if "numTotalResults" in node_summary:
                    total += int(node_summary["numTotalResults"])
                    counted = True
            response = doc.get("response") or {}
            for rs in response.get("resultSets", []):
                where = {"node": t.node_name, "datasetId": rs["id"]}
                result_sets.append({**rs, "id": f"{t.node_name}:{rs['id']}", "info": where})
            for c in response.get("collections", []):
                about = {**c.get("info", {}), "node": t.node_name}
                collections.append({**c, "id": f"{t.node_name}:{c['id']}", "info": about})
        nodes.append(status)
    q = request.query
    if collections or entry in ("cohorts", "datasets"):
        returned = "record"
    elif not granularities:
        returned = "count" if q.requestedGranularity != "boolean" else "boolean"
    else:
        returned = max(granularities, key=ORDER.__getitem__)
        if returned == "record" and not result_sets:
            returned = "count"
    summary: dict[str, Any] = {"exists": exists or bool(collections)}
    if returned in ("count", "record"):
        summary["numTotalResults"] = len(collections) if collections else total
        if not counted and exists and not collections:
            returned = "boolean"
            del summary["numTotalResults"]
    info: dict[str, Any] = {"nodes": nodes, "complete": view.complete}
    # Said whenever the answering nodes granted different granularities (a node without
    # a hit may still have capped it: a researcher should see why records are missing).
    if len({n["returnedGranularity"] for n in nodes if "returnedGranularity" in n}) > 1:
        info["granularity"] = (
            "decided per node (info.nodes[].returnedGranularity): result sets come from the "
            "nodes that returned records; numTotalResults sums the nodes that released a count"
        )
    out: dict[str, Any] = {
        "meta": {
            **framework.meta(entry),
            "returnedGranularity": returned,
            "receivedRequestSummary": framework._received(request, entry),
        },
        "responseSummary": summary,
        "info": info,
    }
    if collections or entry in ("cohorts", "datasets"):
        out["response"] = {"collections": collections}
    elif returned == "record":
        out["response"] = {"resultSets": result_sets}
    return out


def create_hub_beacon_router(
    prefix: str = "/beacon/v2",
    ttl_seconds: int = 60,
    config: BeaconConfig | None = None,
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["beacon"])

    def framework_for(ctx: HubContext) -> BeaconFramework:
        return BeaconFramework(
            config
            or BeaconConfig(
                beacon_id=HUB_BEACON_ID,
                name=f"{ctx.settings.name} Beacon network",
                organization=ctx.settings.name,
                description="oncofed hub: a Beacon network over the federation's nodes",
                welcome_url=ctx.settings.url,
            )
        )

    async def fan_out(
        ctx: HubContext, caller: Caller, body: dict[str, Any]
    ) -> tuple[TaskView | None, str | None]:
        # The same admission as every task: body model and size, the search rate limit.
        try:
            task_id, node_ids = await run_in_threadpool(
                admit_task, ctx, caller.username, BEACON_TASK, body, None, ttl_seconds
            )
        except TaskBodyError as exc:
            raise BeaconError(str(exc), 422) from exc
        except (ChannelError, SearchRefused) as exc:
            if exc.status == 429:
                raise BeaconError(exc.message, 429) from exc
            return None, exc.message
        for node_id in node_ids:
            ctx.notifier.wake(f"node:{node_id}")
        view = await wait_for_results(
            ctx, task_id, ctx.settings.beacon_wait_seconds, targets=len(node_ids)
        )
        return view, None

    async def framework(request: Request) -> JSONResponse:
        ctx = hub_context(request)
        fw = framework_for(ctx)
        name = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        if request.url.path.rstrip("/").endswith(prefix.rstrip("/")):
            name = "info"
        root = str(request.base_url).rstrip("/") + prefix
        documents = {
            "info": fw.info,
            "service-info": fw.service_info,
            "configuration": fw.configuration,
            "entry_types": lambda: {
                "meta": fw.meta(),
                "response": {"entryTypes": fw.entry_types()},
            },
            "map": lambda: fw.map(root),
        }
        return JSONResponse(documents[name]())

    for path in ("", "/", "/info", "/service-info", "/configuration", "/map", "/entry_types"):
        add_get_post(router, path, framework, include_in_schema=path != "/")

    async def filtering_terms(
        request: Request,
        caller: Researcher,
    ) -> JSONResponse:
        ctx = hub_context(request)
        fw = framework_for(ctx)
        body = BeaconQueryBody(entry_type="filtering_terms").model_dump(mode="json")
        try:
            view, problem = await fan_out(ctx, caller, body)
        except BeaconError as exc:
            return error_response(fw.config.beacon_id, exc.status, str(exc))
        if view is None:
            return error_response(fw.config.beacon_id, 503, problem or "no nodes")
        terms: dict[str, dict[str, Any]] = {}
        resources: dict[str, dict[str, Any]] = {}
        for t in view.targets:
            doc = (t.result or {}).get("document") or {}
            response = doc.get("response", {})
            for term in response.get("filteringTerms", []):
                terms.setdefault(term["id"], term)
            for res in response.get("resources", []):
                resources.setdefault(res["id"], res)
        return JSONResponse({
            "meta": fw.meta(),
            "response": {"filteringTerms": list(terms.values()),
                         "resources": list(resources.values())},
        })  # fmt: skip

    async def run(
        request: Request,
        caller: Caller,
        entry: str,
        entry_id: str | None = None,
        via: str | None = None,
    ) -> JSONResponse:
        ctx = hub_context(request)
        fw = framework_for(ctx)
        try:
            if request.method == "POST":
                beacon_request = BeaconRequest.from_json(await request.body())
            else:
                beacon_request = BeaconRequest.from_query(dict(request.query_params))
        except BeaconError as exc:
            return error_response(fw.config.beacon_id, exc.status, str(exc))
        body = BeaconQueryBody(
            entry_type=entry,
            entry_id=entry_id,
            via=via,
            request=declared(beacon_request),
            passport=request.headers.get("ga4gh-passport"),
        ).model_dump(mode="json")
        try:
            view, problem = await fan_out(ctx, caller, body)
        except BeaconError as exc:
            return error_response(fw.config.beacon_id, exc.status, str(exc))
        if view is None:
            return error_response(fw.config.beacon_id, 503, problem or "no nodes")
        # A request every answering node rejected is the caller's error: pass it on.
        errors = [t.result for t in view.targets if t.result and t.result.get("status", 200) != 200]
        answered = [t for t in view.targets if t.result is not None]
        if answered and len(errors) == len(answered):
            first = errors[0] or {}
            return error_response(
                fw.config.beacon_id, int(first.get("status", 400)), str(first.get("error"))
            )
        return JSONResponse(merge(fw, entry, beacon_request, view))

    add_get_post(router, "/filtering_terms", filtering_terms)

    def routes(entry: str) -> None:
        async def collection(request: Request, caller: Researcher) -> JSONResponse:
            return await run(request, caller, entry)

        async def single(request: Request, entry_id: str, caller: Researcher) -> JSONResponse:
            return await run(request, caller, entry, entry_id, entry)

        add_get_post(router, f"/{entry}", collection)
        add_get_post(router, f"/{entry}/{{entry_id}}", single)
        if entry in ("cohorts", "datasets"):
            return
        for other in ("individuals", "biosamples", "g_variants", "analyses", "runs"):
            if other != entry:
                add_get_post(
                    router,
                    f"/{entry}/{{entry_id}}/{other}",
                    linked(entry, other),
                    name=f"{entry}_{other}",
                )

    def linked(entry: str, other: str) -> Any:
        async def handler(request: Request, entry_id: str, caller: Researcher) -> JSONResponse:
            return await run(request, caller, other, entry_id, entry)

        return handler

    for entry in ENTRY_TYPES:
        routes(entry)
    return router
