"""HTTP routes of access negotiation, the Negotiator v3 hand-over and visa grants."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from oncofed.hub.auth import Caller, current_caller, require
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.negotiation import service
from oncofed.hub.negotiation.forms import (
    AccessForm,
    CommentRequest,
    EventRequest,
    HandoverRequest,
    NegotiationCreate,
    ResourceEventRequest,
    RevokeRequest,
)
from oncofed.hub.negotiation.service import NegotiationError, Who
from oncofed.security.visas import sign_revocation_list

router = APIRouter(tags=["negotiation"])
Ctx = Annotated[HubContext, Depends(hub_context)]
AnyCaller = Annotated[Caller, Depends(current_caller)]
Researcher = Annotated[Caller, Depends(require("researcher"))]


def who(caller: Caller) -> Who:
    return Who(caller.username, caller.roles)


async def call(fn: Any, *args: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args)
    except NegotiationError as exc:
        raise HTTPException(exc.status, exc.message) from exc


@router.post("/api/negotiations", status_code=201)
async def create(req: NegotiationCreate, ctx: Ctx, caller: Researcher) -> dict[str, Any]:
    result: dict[str, Any] = await call(service.create, ctx, who(caller), req)
    return result


@router.get("/api/negotiations")
async def list_negotiations(ctx: Ctx, caller: AnyCaller) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await call(service.list_for, ctx, who(caller))
    return result


@router.get("/api/negotiations/{nid}")
async def get(nid: str, ctx: Ctx, caller: AnyCaller) -> dict[str, Any]:
    result: dict[str, Any] = await call(service.get, ctx, who(caller), nid)
    return result


@router.put("/api/negotiations/{nid}/form")
async def edit_form(nid: str, form: AccessForm, ctx: Ctx, caller: AnyCaller) -> dict[str, Any]:
    result: dict[str, Any] = await call(service.update_form, ctx, who(caller), nid, form)
    return result


@router.post("/api/negotiations/{nid}/events")
async def negotiation_event(
    nid: str, req: EventRequest, ctx: Ctx, caller: AnyCaller
) -> dict[str, Any]:
    result: dict[str, Any] = await call(service.fire, ctx, who(caller), nid, req.event, req.note)
    return result


@router.post("/api/negotiations/{nid}/resources/{row}/events")
async def resource_event(
    nid: str, row: int, req: ResourceEventRequest, ctx: Ctx, caller: AnyCaller
) -> dict[str, Any]:
    result: dict[str, Any] = await call(service.resource_fire, ctx, who(caller), nid, row, req)
    return result


@router.get("/api/negotiations/{nid}/comments")
async def list_comments(nid: str, ctx: Ctx, caller: AnyCaller) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await call(service.comments, ctx, who(caller), nid)
    return result


@router.post("/api/negotiations/{nid}/comments", status_code=201)
async def comment(nid: str, req: CommentRequest, ctx: Ctx, caller: AnyCaller) -> dict[str, Any]:
    result: dict[str, Any] = await call(service.add_comment, ctx, who(caller), nid, req)
    return result


@router.get("/api/negotiations/{nid}/attachments")
async def list_attachments(nid: str, ctx: Ctx, caller: AnyCaller) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await call(service.attachments, ctx, who(caller), nid)
    return result


@router.post(
    "/api/negotiations/{nid}/attachments",
    status_code=201,
    # the file and its multipart envelope; anything larger is refused before it is read
    max_body_size=service.MAX_ATTACHMENT_BYTES + 64 * 1024,
)
async def attach(nid: str, file: UploadFile, ctx: Ctx, caller: AnyCaller) -> dict[str, Any]:
    data = await file.read(service.MAX_ATTACHMENT_BYTES + 1)
    result: dict[str, Any] = await call(
        service.add_attachment,
        ctx,
        who(caller),
        nid,
        file.filename or "attachment",
        file.content_type or "application/octet-stream",
        data,
    )
    return result


@router.get("/api/negotiations/{nid}/attachments/{att_id}")
async def download(nid: str, att_id: int, ctx: Ctx, caller: AnyCaller) -> Response:
    att = await call(service.attachment, ctx, who(caller), nid, att_id)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in att.filename)
    return Response(
        att.data,
        media_type="application/octet-stream",  # never rendered inline by the browser
        headers={
            "content-disposition": f'attachment; filename="{safe}"',
            "x-content-type-options": "nosniff",
        },
    )


# -- Negotiator v3 hand-over ------------------------------------------------------------------


@router.post("/api/v3/requests", status_code=201)
async def handover(req: HandoverRequest, ctx: Ctx, caller: Researcher) -> dict[str, Any]:
    """A discovery service hands a request over (Negotiator v3 shape); it becomes a DRAFT
    owned by the caller, who finishes the form at `redirectUrl`."""
    title = (req.humanReadable or "request from a discovery service").strip()[:300]
    body = NegotiationCreate(title=title or "request", resources=req.resources)
    view: dict[str, Any] = await call(
        service.create,
        ctx,
        who(caller),
        body,
        {"url": req.url, "humanReadable": req.humanReadable},
    )
    return {
        "id": view["id"],
        "negotiationId": view["id"],
        "url": req.url,
        "humanReadable": req.humanReadable,
        "resources": [
            {"id": r["id"], "name": r["name"], "provider": r["provider"]} for r in view["resources"]
        ],
        "redirectUrl": f"{ctx.settings.url}/requests/{view['id']}",
    }


# -- visas -------------------------------------------------------------------------------------


@router.get("/api/visas", tags=["visas"])
async def my_visas(ctx: Ctx, caller: AnyCaller) -> dict[str, Any]:
    """The caller's valid ControlledAccessGrants visas (present them to nodes)."""
    visas: list[dict[str, Any]] = await call(service.my_visas, ctx, who(caller))
    return {"visas": visas}


@router.post("/api/visas/{jti}/revoke", tags=["visas"])
async def revoke(jti: str, req: RevokeRequest, ctx: Ctx, caller: AnyCaller) -> dict[str, Any]:
    result: dict[str, Any] = await call(service.revoke, ctx, who(caller), jti, req.reason)
    return result


@router.get("/api/visas/revoked", tags=["visas"])
async def revoked(ctx: Ctx) -> dict[str, Any]:
    """Hub-signed list of revoked, unexpired visa ids; nodes refresh it every ≤ 30 s."""
    ids: list[str] = await call(service.revoked_ids, ctx)
    return {"token": sign_revocation_list(ids, ctx.key, ctx.settings.url)}
