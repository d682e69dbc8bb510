"""Mounting the portal on the hub's app: its pages, its static files, its error pages."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from oncofed.hub.context import hub_context
from oncofed.hub.portal import (
    catalogue_pages,
    cohort_pages,
    federation_pages,
    login_pages,
    request_pages,
)
from oncofed.hub.portal.session import LoginRequired, PortalDenied, optional_user
from oncofed.hub.portal.templating import HERE, render


def install(app: FastAPI) -> None:
    for module in (login_pages, catalogue_pages, cohort_pages, request_pages, federation_pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return RedirectResponse("/static/favicon.svg", status_code=301)

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
