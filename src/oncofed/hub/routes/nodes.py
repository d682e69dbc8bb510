"""Enrolment of nodes and the federation's node list."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from oncofed.hub.auth import Caller, current_caller
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.models import EnrolmentToken, Node
from oncofed.security.envelope import iso, utcnow
from oncofed.security.keys import KeyFileError, PublicKey
from oncofed.security.secrets_ import token_hash

router = APIRouter()


class EnrolRequest(BaseModel):
    token: str = Field(min_length=10, max_length=200)
    public_key: str = Field(min_length=40, max_length=100)
    version: str = Field("", max_length=50)


class EnrolResponse(BaseModel):
    node_id: str
    name: str
    hub_name: str
    hub_key_id: str
    hub_public_key: str


class EnrolRefused(Exception):
    def __init__(self, status: int, message: str, name: str = "?") -> None:
        super().__init__(message)
        self.status, self.message, self.name = status, message, name


def _enrol(ctx: HubContext, req: EnrolRequest) -> EnrolResponse:
    try:
        key = PublicKey.from_b64(req.public_key)
    except KeyFileError as exc:
        raise EnrolRefused(422, f"public_key: {exc}") from exc
    now = utcnow()
    with ctx.sessions.begin() as s:
        row = s.execute(
            sa.select(EnrolmentToken, Node)
            .join(Node, Node.id == EnrolmentToken.node_id)
            .where(EnrolmentToken.token_hash == token_hash(req.token))
        ).first()
        if row is None:
            raise EnrolRefused(
                403,
                "enrolment token unknown: check it was copied whole, or ask "
                "the hub admin for a new one (`oncofed hub node add NAME`)",
            )
        token, node = row
        if token.used_at is not None:
            raise EnrolRefused(
                403,
                f"this enrolment token was already used on "
                f"{iso(token.used_at)}; each token enrols one node once. Ask "
                "the hub admin for a new one",
                node.name,
            )
        if token.expires_at <= now:
            raise EnrolRefused(
                403,
                f"this enrolment token expired on {iso(token.expires_at)}; "
                f"ask the hub admin for a new one (`oncofed hub node add "
                f"{node.name}`)",
                node.name,
            )
        # Consume the token atomically: of two racing enrolments only one wins.
        used = s.execute(
            sa.update(EnrolmentToken)
            .where(EnrolmentToken.id == token.id, EnrolmentToken.used_at.is_(None))
            .values(used_at=now)
        )
        if getattr(used, "rowcount", 0) != 1:
            raise EnrolRefused(403, "this enrolment token was already used", node.name)
        node.public_key = key.b64
        node.key_id = key.kid
        node.status = "enrolled"
        node.version = req.version
        node.enrolled_at = now
        node.revoked_at = None
        response = EnrolResponse(
            node_id=node.id,
            name=node.name,
            hub_name=ctx.settings.name,
            hub_key_id=ctx.key.kid,
            hub_public_key=ctx.key.public.b64,
        )
    return response


@router.post("/api/nodes/enrol", response_model=EnrolResponse, tags=["nodes"])
async def enrol(
    req: EnrolRequest, ctx: Annotated[HubContext, Depends(hub_context)]
) -> EnrolResponse:
    try:
        response = await run_in_threadpool(_enrol, ctx, req)
    except EnrolRefused as exc:
        await run_in_threadpool(
            ctx.audit.append, f"node:{exc.name}", "node.enrol", "deny", exc.name, exc.message
        )
        raise HTTPException(exc.status, exc.message) from exc
    await run_in_threadpool(
        ctx.audit.append,
        f"node:{response.name}",
        "node.enrol",
        "allow",
        response.name,
        "",
        {"node_id": response.node_id},
    )
    return response


def _nodes(ctx: HubContext) -> list[dict[str, Any]]:
    with ctx.sessions() as s:
        return [
            {
                "id": n.id,
                "name": n.name,
                "status": n.status,
                "version": n.version,
                "enrolled_at": iso(n.enrolled_at) if n.enrolled_at else None,
                "last_seen_at": iso(n.last_seen_at) if n.last_seen_at else None,
                "key_id": n.key_id,
            }
            for n in s.scalars(sa.select(Node).order_by(Node.name))
        ]


@router.get("/api/nodes", tags=["nodes"])
async def nodes(
    ctx: Annotated[HubContext, Depends(hub_context)],
    _caller: Annotated[Caller, Depends(current_caller)],
) -> list[dict[str, Any]]:
    return await run_in_threadpool(_nodes, ctx)


@router.get("/api/hub/keys", tags=["nodes"])
async def keys(ctx: Annotated[HubContext, Depends(hub_context)]) -> dict[str, Any]:
    """The hub's public signing keys (JWKS), which nodes pin at enrolment."""
    return {"keys": [ctx.key.public.to_jwk()]}
