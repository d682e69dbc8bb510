"""The node's HTTP service (local API, Beacon, EUCAIM mediator) and its hub agent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi_offline import FastAPIOffline

from oncofed import __version__
from oncofed.beacon.errors import install_error_handlers
from oncofed.node import admin_routes
from oncofed.node.agent import Agent
from oncofed.node.beacon import create_beacon_router, node_engine
from oncofed.node.context import NodeContext
from oncofed.node.grants import request_grants, revocation_loop
from oncofed.node.ingest.jobs import IngestJobs, JobState, admin_token
from oncofed.node.mediator import MediatorContext, make_mediator_router
from oncofed.node.tasks import node_summary
from oncofed.privacy import DisclosureDecision
from oncofed.security.http import DEFAULT_BODY_BYTES, harden
from oncofed.settings import NodeSettings

log = logging.getLogger("oncofed.node")


def node_context(request: Request) -> NodeContext:
    ctx: NodeContext = request.app.state.node
    return ctx


def create_app(settings: NodeSettings, run_agent: bool = True) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = NodeContext.open(settings)
        ctx.store.migrate()
        app.state.node = ctx
        admin_token(settings, create=True)

        def published(state: JobState) -> None:
            """After an ingest through the service, the catalogue shows the new figures."""
            from oncofed.node.publish import request_refresh

            request_refresh(settings, ctx.key)

        app.state.ingest_jobs = IngestJobs(ctx, after=published)
        ctx.audit.append(
            "node",
            "node.start",
            "info",
            settings.name,
            details={"version": __version__, "policy": ctx.policy.summary()},
        )
        stop = asyncio.Event()
        agent_task = None
        # Visa revocations from the hub (issue 6): refreshed every grant_refresh_seconds.
        grants_task = asyncio.create_task(revocation_loop(ctx, stop)) if settings.enrolled else None
        if run_agent and settings.enrolled:
            app.state.agent = Agent(ctx)
            agent_task = asyncio.create_task(app.state.agent.run(stop))
        elif run_agent:
            log.warning("node is not enrolled: run `oncofed node enrol --hub URL --token T`")
        try:
            yield
        finally:
            stop.set()
            if agent_task is not None:
                await agent_task
            if grants_task is not None:
                await grants_task
            ctx.close()

    # /docs and /redoc with their assets from the package, not a CDN (nodes run offline).
    app = FastAPIOffline(
        title=f"oncofed node {settings.name}",
        version=__version__,
        lifespan=lifespan,
        max_body_size=DEFAULT_BODY_BYTES,  # see security/http.py
    )
    harden(app)

    @app.get("/health", tags=["node"])
    async def health(request: Request) -> dict[str, Any]:
        agent = getattr(request.app.state, "agent", None)
        return {
            "status": "ok",
            "name": settings.name,
            "version": __version__,
            "enrolled": settings.enrolled,
            "hub_connected": bool(agent and agent.connected),
        }

    @app.get("/info", tags=["node"])
    async def info(request: Request) -> dict[str, Any]:
        """The same summary a `node.info` task returns (the benchmark's direct-call floor)."""
        return await run_in_threadpool(node_summary, node_context(request))

    def mediator_context(request: Request) -> MediatorContext:
        ctx = node_context(request)

        def audit(d: DisclosureDecision) -> None:
            ctx.audit.append(
                d.requester,
                "search",
                "allow" if d.decision == "answered" else "deny",
                target="mediator",
                reason=d.reason,
                details=d.model_dump(mode="json", exclude={"query"}),
            )

        return MediatorContext(
            store=ctx.store,
            policy=ctx.policy.mediator_disclosure(),
            state_engine=ctx.state,
            node_id=settings.node_id or settings.name,
            api_key=settings.mediator_api_key or None,
            api_keys=settings.mediator_api_keys,
            strict=settings.mediator_strict,
            audit=audit,
            ledger=ctx.privacy_ledger,
        )

    # EUCAIM compatibility: a EUCAIM search stack's Focus agent can query this node directly.
    app.include_router(make_mediator_router(mediator_context))
    # GA4GH Beacon v2 (record level only with a verified grant; see node/beacon).
    app.include_router(create_beacon_router(grants=request_grants))
    install_error_handlers(app, lambda request: node_engine(request).config.beacon_id)
    # Ingest through the running service (local, admin token): `oncofed node ingest ...`.
    app.include_router(admin_routes.router)
    return app
