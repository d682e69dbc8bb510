"""Log-in for the CLI and SDK: a username and password give a scoped, expiring API token."""

from __future__ import annotations

import functools
import math
import secrets
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from oncofed.hub.admin import create_api_token, revoke_tokens
from oncofed.hub.auth import Caller, current_caller
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.models import Account
from oncofed.security.secrets_ import hash_password, verify_password

router = APIRouter()

TOKEN_DAYS = 30
PORTAL_TOKEN_DAYS = 1  # a browser session: one working day


def client_address(request: Request) -> str:
    """The caller's address as the server saw it (forwarded headers are believed only from
    the configured ``trusted_proxies``: the server applies them, see security/http.py)."""
    return request.client.host if request.client else "?"


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_hex(16))


def _login(ctx: HubContext, username: str, password: str, name: str) -> str | None:
    with ctx.sessions() as s:
        account = s.scalar(sa.select(Account).where(Account.username == username))
    if account is None or account.disabled or not account.password_hash:
        verify_password(_dummy_hash(), password)  # same time as a real miss
        return None
    if not verify_password(account.password_hash, password):
        return None
    days = PORTAL_TOKEN_DAYS if name == "portal" else TOKEN_DAYS
    return create_api_token(ctx.engine, username, name=name, days=days)


async def password_login(
    request: Request, ctx: HubContext, username: str, password: str, name: str = "login"
) -> str:
    """A new API token for a right username and password; limited, audited either way."""
    address = client_address(request)
    wait = await run_in_threadpool(ctx.logins.wait, username, address)
    if wait > 0:
        await run_in_threadpool(
            ctx.audit.append, username, "auth.login", "deny", name, "rate limited"
        )
        raise HTTPException(
            429,
            f"too many failed log-ins for {username} from this address; try again in "
            f"{math.ceil(wait)} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    token = await run_in_threadpool(_login, ctx, username, password, name)
    if token is None:
        await run_in_threadpool(ctx.logins.fail, username, address)
        await run_in_threadpool(
            ctx.audit.append, username, "auth.login", "deny", name, "wrong username or password"
        )
        raise HTTPException(401, "wrong username or password")
    await run_in_threadpool(ctx.logins.succeed, username, address)
    await run_in_threadpool(ctx.audit.append, username, "auth.login", "allow", name)
    return token


@router.post("/api/auth/token", tags=["auth"])
async def login(
    request: Request,
    ctx: Annotated[HubContext, Depends(hub_context)],
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
) -> dict[str, Any]:
    token = await password_login(request, ctx, username, password)
    return {"access_token": token, "token_type": "bearer", "expires_in": TOKEN_DAYS * 24 * 3600}


@router.get("/api/me", tags=["auth"])
async def me(caller: Annotated[Caller, Depends(current_caller)]) -> dict[str, Any]:
    return {"username": caller.username, "roles": sorted(caller.roles)}


@router.delete("/api/auth/token", tags=["auth"])
async def logout(
    request: Request,
    ctx: Annotated[HubContext, Depends(hub_context)],
    caller: Annotated[Caller, Depends(current_caller)],
) -> dict[str, Any]:
    """Revoke the token this request presents (log out of this CLI or session)."""
    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    count = await run_in_threadpool(revoke_tokens, ctx.engine, caller.username, token)
    return {"revoked": count}
