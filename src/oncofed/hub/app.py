"""The hub's FastAPI application and its background housekeeping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi_offline import FastAPIOffline

from oncofed import __version__
from oncofed.audit import AuditLog
from oncofed.beacon.errors import install_error_handlers
from oncofed.hub import blobs
from oncofed.hub.analysis import routes as analysis_routes
from oncofed.hub.beacon import HUB_BEACON_ID, create_hub_beacon_router
from oncofed.hub.catalogue import routes as catalogue
from oncofed.hub.catalogue.service import refresh_loop as catalogue_refresh_loop
from oncofed.hub.channel import Channel
from oncofed.hub.context import HubContext
from oncofed.hub.db import make_engine, sessions, upgrade
from oncofed.hub.identity import external as oidc_login
from oncofed.hub.identity import issuer as oidc_issuer
from oncofed.hub.learning import routes as learning_routes
from oncofed.hub.learning import runs as learning_runs
from oncofed.hub.login_delay import LoginDelay
from oncofed.hub.models import Task, TaskTarget, UsedNonce
from oncofed.hub.negotiation import routes as negotiation
from oncofed.hub.negotiation.mail import mail_loop
from oncofed.hub.notify import Notifier, listen
from oncofed.hub.portal import router as portal
from oncofed.hub.routes import auth, channel, nodes, search, tasks
from oncofed.hub.search import SearchAdmission
from oncofed.security.envelope import utcnow
from oncofed.security.http import DEFAULT_BODY_BYTES, harden
from oncofed.security.keys import SigningKey
from oncofed.settings import HubSettings

log = logging.getLogger("oncofed.hub")

SWEEP_SECONDS = 1.0


def build_context(settings: HubSettings) -> HubContext:
    engine = make_engine(settings.db_url)
    upgrade(engine)
    maker = sessions(engine)
    key = SigningKey.load(settings.resolve(settings.key_file))
    audit = AuditLog(engine)
    return HubContext(
        settings=settings,
        engine=engine,
        sessions=maker,
        key=key,
        audit=audit,
        channel=Channel(maker, key, audit, settings.lease_seconds, settings.max_attempts),
        notifier=Notifier(),
        search_admission=SearchAdmission(
            settings.search_rate_per_minute, settings.search_daily_limit
        ),
        logins=LoginDelay(engine),
    )


def _prune_nonces(ctx: HubContext) -> None:
    cutoff = utcnow() - timedelta(seconds=2 * ctx.settings.clock_skew_seconds)
    with ctx.sessions.begin() as s:
        s.execute(sa.delete(UsedNonce).where(UsedNonce.seen_at < cutoff))


RETENTION_BATCH = 500


def prune_tasks(ctx: HubContext) -> int:
    """Delete tasks (their targets and results go with them) that expired longer than
    ``task_retention_days`` ago; returns how many. In batches, each its own transaction:
    a backlog never holds the database for long, and a crash leaves only whole tasks."""
    cutoff = utcnow() - timedelta(days=ctx.settings.task_retention_days)
    deleted = 0
    while True:
        with ctx.sessions.begin() as s:
            ids = list(
                s.scalars(sa.select(Task.id).where(Task.expires_at < cutoff).limit(RETENTION_BATCH))
            )
            if not ids:
                return deleted
            s.execute(sa.delete(TaskTarget).where(TaskTarget.task_id.in_(ids)))
            s.execute(sa.delete(Task).where(Task.id.in_(ids)))
        deleted += len(ids)


async def _housekeeping(ctx: HubContext) -> None:
    """Time out overdue tasks (and wake their waiters), prune old nonces."""
    ticks = 0
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            for task_id in await run_in_threadpool(ctx.channel.expire_overdue):
                ctx.notifier.wake(f"task:{task_id}")
            ticks += 1
            if ticks % 60 == 0:
                await run_in_threadpool(_prune_nonces, ctx)
            if ticks % 600 == 1:  # at start, then every ten minutes
                pruned = await run_in_threadpool(prune_tasks, ctx)
                if pruned:
                    days = ctx.settings.task_retention_days
                    details = {"deleted": pruned, "days": days}
                    await run_in_threadpool(
                        ctx.audit.append, "hub", "task.retention", "info", "", details=details
                    )
        except Exception:  # keep sweeping; the error is in the log
            log.exception("housekeeping failed")


LEADER_LOCK = 0x6F6E636F  # "onco": the PostgreSQL advisory lock of the leading hub process
LEADER_RETRY_SECONDS = 15.0


def _try_lead(con: sa.Connection) -> bool:
    held = bool(con.execute(sa.select(sa.func.pg_try_advisory_lock(LEADER_LOCK))).scalar())
    con.commit()  # the lock is the session's: it outlives the transaction
    return held


async def _lead(ctx: HubContext) -> None:
    """Run the once-per-federation jobs (mail, catalogue refresh) in one hub process.

    On SQLite there is one process. On PostgreSQL several workers or hosts may serve one
    hub: the process holding a session-level advisory lock leads; if it dies, its
    connection and lock go with it and another takes over within LEADER_RETRY_SECONDS.
    """
    if ctx.engine.dialect.name != "postgresql":
        await asyncio.gather(mail_loop(ctx), catalogue_refresh_loop(ctx))
        return
    while True:
        con = await run_in_threadpool(ctx.engine.connect)
        try:
            if await run_in_threadpool(_try_lead, con):
                log.info("this hub process leads (mail, catalogue refresh)")
                # Training runs are coordinated in the process that started them: those
                # left running when the hub went down are ended, never shown as finished.
                await run_in_threadpool(learning_runs.interrupt_unfinished, ctx)
                await asyncio.gather(mail_loop(ctx), catalogue_refresh_loop(ctx))
        finally:
            await run_in_threadpool(con.close)
        await asyncio.sleep(LEADER_RETRY_SECONDS)


def create_app(settings: HubSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = build_context(settings)
        app.state.hub = ctx
        ctx.audit.append(
            "hub", "hub.start", "info", settings.name, details={"version": __version__}
        )
        if ctx.engine.dialect.name != "postgresql":  # one process: before any request
            await run_in_threadpool(learning_runs.interrupt_unfinished, ctx)  # issue 20
        # Every process sweeps (idempotent); one leads the mail and the catalogue refresh.
        jobs = [asyncio.create_task(_housekeeping(ctx)), asyncio.create_task(_lead(ctx))]
        if ctx.engine.dialect.name == "postgresql":  # other hub processes wake this one
            listening = asyncio.Event()
            relay = listen(ctx.notifier, settings.db_url, listening, ctx.channel.recorded_elsewhere)
            jobs.append(asyncio.create_task(relay))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await listening.wait()
        try:
            yield
        finally:
            for job in jobs:
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job
            ctx.engine.dispose()

    app = FastAPIOffline(
        title="oncofed hub",
        version=__version__,
        lifespan=lifespan,
        max_body_size=DEFAULT_BODY_BYTES,  # routes that take more say so (security/http.py)
    )  # /docs, /redoc: assets from the package, not a CDN
    harden(app)

    @app.get("/api/health", tags=["hub"])
    async def health() -> dict[str, Any]:
        return {"status": "ok", "name": settings.name, "version": __version__}

    for module in (auth, nodes, channel, tasks, search):
        app.include_router(module.router)
    for mine in (negotiation, oidc_issuer, oidc_login):  # issue 6: identity and access
        app.include_router(mine.router)
    app.include_router(catalogue.router)  # issue 7: catalogue, FAIR Data Point
    app.include_router(create_hub_beacon_router())  # issue 4: Beacon v2 network
    app.include_router(blobs.router)  # issue 20: weights between hub and nodes
    app.include_router(learning_routes.router)  # issue 20: training and validation runs
    install_error_handlers(app, lambda request: HUB_BEACON_ID)  # Beacon-shaped errors
    app.include_router(analysis_routes.router)  # issue 19: federated statistics
    portal.install(app)  # issue 7: the researcher portal
    return app


def app_from_environment() -> FastAPI:
    """The app of the hub in ``$ONCOFED_HUB_DIR`` (host and port overridden by
    ``$ONCOFED_HUB_HOST`` / ``$ONCOFED_HUB_PORT``): what each worker process builds when
    ``oncofed hub serve --workers N`` runs several (uvicorn imports it by name)."""
    from pathlib import Path

    from oncofed.settings import load_hub_settings

    settings = load_hub_settings(Path(os.environ["ONCOFED_HUB_DIR"]))
    settings.host = os.environ.get("ONCOFED_HUB_HOST") or settings.host
    settings.port = int(os.environ.get("ONCOFED_HUB_PORT") or settings.port)
    return create_app(settings)
