"""Logging in and out of the portal (password, or the hub's external OIDC provider)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from oncofed.hub.admin import revoke_tokens
from oncofed.hub.auth import Caller
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.portal.session import (
    check_csrf,
    clear_session,
    optional_user,
    session_token,
    set_session,
)
from oncofed.hub.portal.templating import render
from oncofed.hub.routes.auth import password_login

router = APIRouter(include_in_schema=False)
Ctx = Annotated[HubContext, Depends(hub_context)]


def safe_next(target: str) -> str:
    """Only a path on this hub: never an open redirect to another site."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _oidc_label(ctx: HubContext) -> str:
    if ctx.settings.oidc_issuer and ctx.settings.oidc_client_id:
        return ctx.settings.oidc_issuer.split("//", 1)[-1].split("/", 1)[0]
    return ""


@router.get("/login", response_class=HTMLResponse)
async def login_page(
    request: Request,
    ctx: Ctx,
    user: Annotated[Caller | None, Depends(optional_user)],
    next: str = "/",
) -> Response:
    return render(
        request,
        ctx,
        "login.html",
        user,
        title="Log in",
        next=safe_next(next),
        oidc=_oidc_label(ctx),
    )


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    ctx: Ctx,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    try:
        token = await password_login(request, ctx, username, password, name="portal")
    except HTTPException as exc:
        return render(
            request,
            ctx,
            "login.html",
            None,
            exc.status_code,
            title="Log in",
            next=safe_next(next),
            username=username,
            error=f"{exc.detail}.",
            oidc=_oidc_label(ctx),
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session(response, token, ctx.settings.url.startswith("https://"))
    return response


@router.post("/logout")
async def logout(
    request: Request,
    ctx: Ctx,
    user: Annotated[Caller | None, Depends(optional_user)],
    _: Annotated[None, Depends(check_csrf)],
) -> Response:
    """End this browser's session: the token is revoked at the hub, not just forgotten."""
    if user is not None:
        await run_in_threadpool(revoke_tokens, ctx.engine, user.username, session_token(request))
        await run_in_threadpool(ctx.audit.append, user.username, "auth.logout", "info", "portal")
    response = RedirectResponse("/", status_code=303)
    clear_session(response)
    return response
