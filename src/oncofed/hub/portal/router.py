"""Mounting the portal on the hub's app: its pages, its static files, its error pages."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oncofed.hub.context import hub_context
from oncofed.hub.portal import (
    analyse_pages,
    catalogue_pages,
    cohort_pages,
    federation_pages,
    help_pages,
    login_pages,
    request_pages,
)
from oncofed.hub.portal.session import LoginRequired, PortalDenied, optional_user
from oncofed.hub.portal.templating import HERE, render
from oncofed.security.http import installed_handler


class ServerTiming:
    """Adds `Server-Timing: app;dur=<ms>` (time to the response's start) to every answer:
    what browsers' developer tools and bench/portal.py read as the hub's own time. A plain
    ASGI wrapper, so streamed answers (server-sent events) pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = (time.perf_counter() - started) * 1000
                MutableHeaders(scope=message).append("Server-Timing", f"app;dur={took:.1f}")
            await send(message)

        await self.app(scope, receive, timed)


# Pages of the portal may load only what the hub itself serves, may not be framed, and send
# no referrer elsewhere. (The API docs pages of fastapi-offline use an inline script and
# keep their own defaults.)
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
API_DOCS = ("/docs", "/redoc", "/static-offline-docs")


class SecurityHeaders:
    """Browser hardening on every answer; a strict content security policy on HTML pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = str(scope.get("path", "")).startswith(API_DOCS)

        async def hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                if headers.get("content-type", "").startswith("text/html") and not docs:
                    headers.setdefault("Content-Security-Policy", CSP)
                    headers.setdefault("X-Frame-Options", "DENY")
            await send(message)

        await self.app(scope, receive, hardened)


def install(app: FastAPI) -> None:
    for module in (
        login_pages,
        catalogue_pages,
        cohort_pages,
        request_pages,
        federation_pages,
        help_pages,
        analyse_pages,  # issue 19
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    app.add_middleware(ServerTiming)
    app.add_middleware(SecurityHeaders)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return RedirectResponse("/static/favicon.svg", status_code=301)

    before = installed_handler(app, StarletteHTTPException)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        page = (
            await help_pages.not_found(request, str(exc.detail)) if exc.status_code == 404 else None
        )
        return page or await before(request, exc)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(exc.next_url, status_code=303)

    @app.exception_handler(PortalDenied)
    async def denied(request: Request, exc: PortalDenied) -> Response:
        ctx = hub_context(request)
        user = await optional_user(request, ctx)
        return render(
            request, ctx, "error.html", user, 403, title="Not allowed", message=exc.message
        )
