"""API of training and validation runs (`/api/learning/...`)."""

from __future__ import annotations

import io
import zipfile
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from oncofed.hub.auth import Caller, require
from oncofed.hub.blobs import MAX_BLOB_BYTES, blob_store
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.learning import runs
from oncofed.hub.learning.runs import RunRefused, TrainRequest, ValidateRequest

router = APIRouter(tags=["learning"])
Ctx = Annotated[HubContext, Depends(hub_context)]
Researcher = Annotated[Caller, Depends(require("researcher", "admin"))]


def _admin(caller: Caller) -> bool:
    return "admin" in caller.roles


async def _call(fn: Any, *args: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args)
    except RunRefused as exc:
        raise HTTPException(exc.status, exc.message) from exc


@router.post("/api/learning/runs", status_code=201)
async def start_run(req: TrainRequest, ctx: Ctx, caller: Researcher) -> dict[str, Any]:
    """Start a federated training run over the named sites' datasets."""
    run_id = await _call(runs.start_training, ctx, caller.username, req)
    view: dict[str, Any] = await _call(runs.get_run, ctx, run_id, caller.username, True)
    return view


@router.get("/api/learning/runs")
async def list_runs(ctx: Ctx, caller: Researcher) -> dict[str, Any]:
    items = await _call(runs.list_runs, ctx, caller.username, _admin(caller))
    return {"runs": items}


@router.get("/api/learning/runs/{run_id}")
async def get_run(run_id: str, ctx: Ctx, caller: Researcher) -> dict[str, Any]:
    view: dict[str, Any] = await _call(runs.get_run, ctx, run_id, caller.username, _admin(caller))
    return view


@router.get("/api/learning/runs/{run_id}/model")
async def download_model(run_id: str, ctx: Ctx, caller: Researcher) -> FileResponse:
    """The run's model file (torch archive of tensors; load with `weights_only=True`)."""
    path, _ = await _call(runs.model_path, ctx, run_id, caller.username, _admin(caller))
    return FileResponse(path, media_type="application/octet-stream", filename=f"{run_id}.pt")


def model_file_problem(data: bytes) -> str | None:
    """Why `data` is not a model file as `torch.save` writes it (a zip archive holding its
    pickled tensors as `*/data.pkl`), or None. The hub has no torch to load it with; the
    nodes load it with `weights_only=True`; this turns an empty or wrong upload into a clear
    error now instead of a failed validation at every node later."""
    if not data:
        return "the file is empty"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return "expected the torch archive `oncofed learn download` writes (a zip file)"
    if not any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        return "the archive holds no data.pkl: not written by torch.save"
    return None


@router.post("/api/learning/models", status_code=201)
async def upload_model(request: Request, ctx: Ctx, caller: Researcher) -> dict[str, Any]:
    """Upload a model file (as `learn download` gives it) to validate it at the nodes."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BLOB_BYTES:
            raise HTTPException(413, f"a model may be at most {MAX_BLOB_BYTES} bytes")
    problem = model_file_problem(bytes(data))
    if problem:
        raise HTTPException(400, f"not a model file: {problem}")
    digest = await run_in_threadpool(blob_store(ctx).put_bytes, bytes(data))
    await run_in_threadpool(
        ctx.audit.append, caller.username, "learning.model.upload", "allow", digest
    )
    return {"sha256": digest, "size": len(data)}


@router.post("/api/learning/validations", status_code=201)
async def start_validation(req: ValidateRequest, ctx: Ctx, caller: Researcher) -> dict[str, Any]:
    """External validation of a model at each named site."""
    run_id = await _call(runs.start_validation, ctx, caller.username, _admin(caller), req)
    view: dict[str, Any] = await _call(runs.get_run, ctx, run_id, caller.username, True)
    return view
