"""The hub's content-addressed blob store: model weights between the hub and the nodes.

Weights do not fit in task messages (a node's stream takes at most 8 MiB per message and a
ResNet-18 is 45 MB), so a task names a blob by its SHA-256 and each side moves it with a
signed `GET`/`PUT /api/blobs/{sha256}`. A PUT is streamed to a temporary file while it is
hashed, and kept only when the content matches its name: the hub never stores a blob under
a wrong name, and the node checks the hash again on download. This route is the hub's one
large-upload exception (up to MAX_BLOB_BYTES), streamed rather than read into memory.

Layout: `<hub>/blobs/<sha[:2]>/<sha>` (the learning worker at the hub uses the same).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from oncofed.hub.auth import NodeRequest, check_node_request, request_target
from oncofed.hub.channel import ChannelError
from oncofed.hub.channel import _record_contact as record_contact  # the nonce ledger
from oncofed.hub.context import HubContext, hub_context

router = APIRouter()
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_BLOB_BYTES = 512 * 1024 * 1024


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        if not SHA256.match(digest):
            raise ValueError(f"not a SHA-256: {digest!r}")
        return self.root / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{digest}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return digest


def blob_store(ctx: HubContext) -> BlobStore:
    return BlobStore(ctx.settings.resolve("blobs"))


def _headers(request: Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


async def _seen(ctx: HubContext, caller: NodeRequest) -> None:
    """Record the request's nonce: a captured blob request cannot be replayed."""

    def record() -> None:
        with ctx.sessions.begin() as s:
            record_contact(s, caller.node.id, caller.nonce)

    try:
        await run_in_threadpool(record)
    except ChannelError as exc:
        raise HTTPException(exc.status, exc.message) from exc


@router.get("/api/blobs/{sha256}", tags=["learning"])
async def get_blob(
    sha256: str, request: Request, ctx: Annotated[HubContext, Depends(hub_context)]
) -> FileResponse:
    """A blob, for a node whose signed request verifies."""
    caller = await check_node_request(
        ctx, "GET", request_target(request.url), b"", _headers(request)
    )
    await _seen(ctx, caller)
    store = blob_store(ctx)
    try:
        path = store.path(sha256)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    if not path.is_file():
        raise HTTPException(404, f"no blob {sha256}")
    return FileResponse(path, media_type="application/octet-stream")


@router.put("/api/blobs/{sha256}", tags=["learning"], status_code=201)
async def put_blob(
    sha256: str, request: Request, ctx: Annotated[HubContext, Depends(hub_context)]
) -> dict[str, object]:
    """Store a blob a node uploads; its signature covers the content's SHA-256, its name."""
    store = blob_store(ctx)
    try:
        path = store.path(sha256)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    # The signature is over the body's hash, which is the blob's name: verify it first (no
    # upload from an unknown party is stored), then check the streamed body matches.
    caller = await check_node_request(
        ctx, "PUT", request_target(request.url), b"", _headers(request), body_sha256=sha256
    )
    await _seen(ctx, caller)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{sha256}.{os.getpid()}.{id(request)}.tmp")
    hasher, size = hashlib.sha256(), 0
    try:
        with tmp.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BLOB_BYTES:
                    raise HTTPException(413, f"a blob may be at most {MAX_BLOB_BYTES} bytes")
                hasher.update(chunk)
                await run_in_threadpool(out.write, chunk)
        if hasher.hexdigest() != sha256:
            raise HTTPException(422, "the uploaded content does not match its SHA-256 name")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return {"sha256": sha256, "size": size}
