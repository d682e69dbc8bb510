"""Log-in for the CLI and SDK: a username and password give a scoped, expiring API token."""

from __future__ import annotations

import functools
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
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


class LoginLimiter:
    """Exponential delay per (account, address) pair: never a lock-out.

    The first ``free`` wrong passwords of a pair cost nothing; after that each attempt has
    to wait ``base * 2**k`` seconds (k = failures beyond the free ones, at most ``longest``)
    from the last failure. An attempt during the wait is refused unchecked (429 with the
    seconds left); after it, the right password logs in and clears the pair. One attacker
    therefore slows down only the pairs they try: the account from other addresses and
    other accounts from theirs are untouched, so nobody can lock anybody out (the old limit
    locked an account, and everyone behind one proxy address, after ten failures a minute).
    A pair is forgotten a day after its last failure; at most ``pairs`` are kept.
    """

    def __init__(
        self,
        free: int = 5,
        base: float = 1.0,
        longest: float = 900.0,
        pairs: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free, self.base, self.longest, self.pairs = free, base, longest, pairs
        self.clock = clock
        self._failures: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()

    def wait(self, username: str, address: str) -> float:
        """Seconds before this pair may try again (0: now)."""
        failed = self._failures.get((username, address))
        if failed is None:
            return 0.0
        count, last = failed
        elapsed = self.clock() - last
        if elapsed > 86_400:
            del self._failures[(username, address)]
            return 0.0
        if count < self.free:
            return 0.0
        delay = min(self.longest, self.base * 2 ** (count - self.free))
        return max(0.0, delay - elapsed)

    def fail(self, username: str, address: str) -> None:
        key = (username, address)
        count, _ = self._failures.pop(key, (0, 0.0))
        self._failures[key] = (count + 1, self.clock())
        while len(self._failures) > self.pairs:
            self._failures.popitem(last=False)

    def succeed(self, username: str, address: str) -> None:
        self._failures.pop((username, address), None)


limiter = LoginLimiter()


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
    wait = limiter.wait(username, address)
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
        limiter.fail(username, address)
        await run_in_threadpool(
            ctx.audit.append, username, "auth.login", "deny", name, "wrong username or password"
        )
        raise HTTPException(401, "wrong username or password")
    limiter.succeed(username, address)
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
