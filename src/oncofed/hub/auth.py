"""Who is calling: a person with an API token, or a node with a signed request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import URL

from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.models import Account, ApiToken, Node
from oncofed.security.envelope import utcnow
from oncofed.security.keys import PublicKey
from oncofed.security.request_auth import (
    HEADER_DATE,
    HEADER_NODE,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    RequestAuthError,
    verify_request,
)
from oncofed.security.secrets_ import token_hash


@dataclass(frozen=True)
class Caller:
    username: str
    roles: frozenset[str]

    def has(self, *roles: str) -> bool:
        return bool(self.roles & set(roles)) or "admin" in self.roles


_api_token: sa.Table = ApiToken.__table__  # type: ignore[assignment]
_account: sa.Table = Account.__table__  # type: ignore[assignment]
# Every API call looks its token up: a prebuilt Core statement (compiled once, no ORM
# identity map or unit of work), and a write only when `last_used_at` is due.
_TOKEN = (
    sa.select(
        _api_token.c.id,
        _api_token.c.revoked_at,
        _api_token.c.expires_at,
        _api_token.c.last_used_at,
        _account.c.username,
        _account.c.roles,
        _account.c.disabled,
    )
    .join(_account, _account.c.id == _api_token.c.account_id)
    .where(_api_token.c.token_hash == sa.bindparam("k_hash"))
)
_TOUCH_TOKEN = (
    sa.update(_api_token)
    .where(_api_token.c.id == sa.bindparam("k_id"))
    .values(last_used_at=sa.bindparam("now", type_=_api_token.c.last_used_at.type))
)


def lookup_token(ctx: HubContext, token: str) -> Caller | None:
    now = utcnow()
    with ctx.engine.connect() as con:
        row = con.execute(_TOKEN, {"k_hash": token_hash(token)}).first()
        if row is None or row.revoked_at or row.expires_at <= now or row.disabled:
            return None
        # Touch at most once a minute: a write per request would serialise readers.
        if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
            con.execute(_TOUCH_TOKEN, {"k_id": row.id, "now": now})
            con.commit()
        return Caller(row.username, frozenset((row.roles or {}).get("roles", [])))


async def current_caller(
    request: Request, ctx: Annotated[HubContext, Depends(hub_context)]
) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            401,
            "log in first: `oncofed login --hub URL` (Bearer token missing)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    caller = await run_in_threadpool(lookup_token, ctx, token.strip())
    if caller is None:
        raise HTTPException(
            401,
            "the token is unknown, expired or revoked: log in again",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return caller


def require(*roles: str) -> Callable[[Caller], Awaitable[Caller]]:
    async def dependency(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if not caller.has(*roles):
            raise HTTPException(403, f"this needs the role {' or '.join(roles)}")
        return caller

    return dependency


@dataclass(frozen=True)
class NodeRequest:
    """A node whose request signature verified, and the nonce it used."""

    node: Node
    nonce: str


def _check_node(
    ctx: HubContext,
    method: str,
    target: str,
    body: bytes,
    headers: dict[str, str],
    body_sha256: str | None = None,
) -> NodeRequest:
    node_id = headers.get(HEADER_NODE.lower(), "")
    with ctx.sessions.begin() as s:
        node = s.get(Node, node_id)
        if node is None or node.public_key is None:
            raise RequestAuthError(f"unknown node {node_id!r}: enrol it first")
        if node.status != "enrolled":
            raise PermissionError(f"node {node.name} is {node.status}; the hub refuses it")
        verify_request(
            PublicKey.from_b64(node.public_key),
            method,
            target,
            body,
            headers.get(HEADER_DATE.lower(), ""),
            headers.get(HEADER_NONCE.lower(), ""),
            headers.get(HEADER_SIGNATURE.lower(), ""),
            ctx.settings.clock_skew_seconds,
            body_sha256,
        )
        s.expunge(node)
        # The nonce is recorded by the channel operation, in its own transaction: one
        # commit per request, and a replayed nonce fails that operation as a whole.
        return NodeRequest(node, headers.get(HEADER_NONCE.lower(), ""))


async def check_node_request(
    ctx: HubContext,
    method: str,
    target: str,
    body: bytes,
    headers: dict[str, str],
    body_sha256: str | None = None,
) -> NodeRequest:
    """Verify a node's signed request (HTTP call or stream handshake); refusals are audited.

    Raises HTTPException 401 (unknown node, bad signature, stale clock) or 403 (the node is
    not enrolled). `headers` must have lower-case names.
    """
    try:
        return await run_in_threadpool(_check_node, ctx, method, target, body, headers, body_sha256)
    except (RequestAuthError, ValueError) as exc:
        status, reason, detail = 401, str(exc), f"node request refused: {exc}"
    except PermissionError as exc:
        status, reason, detail = 403, str(exc), str(exc)
    await run_in_threadpool(
        ctx.audit.append,
        f"node:{headers.get('oncofed-node', '?')}",
        "node.request",
        "deny",
        target,
        reason,
    )
    raise HTTPException(status, detail)


def request_target(url: URL) -> str:
    """The path and query string a node signed."""
    return url.path + (f"?{url.query}" if url.query else "")


async def authenticated_node(
    request: Request, ctx: Annotated[HubContext, Depends(hub_context)]
) -> NodeRequest:
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    return await check_node_request(ctx, request.method, request_target(request.url), body, headers)
