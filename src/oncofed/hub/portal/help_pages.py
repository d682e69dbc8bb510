"""The portal's help page, and the page every unknown address gets: HTML in the portal's
look for a browser, the API's JSON for everyone else."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.portal.session import optional_user
from oncofed.hub.portal.templating import render

router = APIRouter(include_in_schema=False)
Ctx = Annotated[HubContext, Depends(hub_context)]

# Addresses whose callers are programs: their errors stay the API's JSON.
MACHINE_PREFIXES = (
    "/api",
    "/beacon",
    "/fdp",
    "/mediator",
    "/oidc",
    "/.well-known",
    "/openapi.json",
    "/static",
)


@router.get("/help", response_class=HTMLResponse)
async def help_page(request: Request, ctx: Ctx) -> Response:
    user = await optional_user(request, ctx)
    return render(request, ctx, "help.html", user, title="Help")


async def not_found(request: Request, detail: str) -> Response | None:
    """404 as a page for a browser asking for a portal address; None for everyone else
    (who get the API's JSON)."""
    path = request.url.path
    wants_html = "text/html" in request.headers.get("accept", "")
    if not wants_html or path.startswith(MACHINE_PREFIXES):
        return None
    ctx = hub_context(request)
    user = await optional_user(request, ctx)
    message = (
        f"There is no page at {path}."
        if detail == "Not Found"
        else f"{detail}. The address may be old, or meant for another account."
    )
    return render(request, ctx, "error.html", user, 404, title="Page not found", message=message)
