"""The node's local administration API: ingest through the running service.

Accepted only from this machine (a loopback address) with the node's local admin token
(`keys/admin.token`, readable by the node's owner alone); every request, allowed or not, is
written to the node's audit log. See :mod:`oncofed.node.ingest.jobs`.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from oncofed.node.context import NodeContext
from oncofed.node.ingest.jobs import IngestJob, IngestJobs, admin_token

router = APIRouter(prefix="/api/admin", tags=["admin"])
LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}


async def local_admin(request: Request) -> NodeContext:
    ctx: NodeContext = request.app.state.node
    host = request.client.host if request.client else ""
    sent = request.headers.get("authorization", "").partition(" ")[2].strip()
    expected = admin_token(ctx.settings) or ""
    problem = None
    if host not in LOOPBACK:
        problem = (403, f"the admin API answers only on this machine, not to {host}")
    elif not expected or not sent or not hmac.compare_digest(sent, expected):
        problem = (401, "the local admin token is missing or wrong (keys/admin.token)")
    if problem is not None:
        await run_in_threadpool(
            ctx.audit.append, f"local@{host}", "admin.request", "deny", request.url.path,
            problem[1],
        )  # fmt: skip
        raise HTTPException(*problem)
    return ctx


def jobs(request: Request) -> IngestJobs:
    found: IngestJobs = request.app.state.ingest_jobs
    return found


@router.post("/ingest", status_code=202)
async def submit(
    job: IngestJob,
    ctx: Annotated[NodeContext, Depends(local_admin)],
    queue: Annotated[IngestJobs, Depends(jobs)],
) -> dict[str, Any]:
    """Run an ingest on the service's store; poll `GET /api/admin/ingest/{id}`."""
    return queue.submit(job).as_dict()


@router.get("/ingest/{job_id}")
async def status(
    job_id: str,
    ctx: Annotated[NodeContext, Depends(local_admin)],
    queue: Annotated[IngestJobs, Depends(jobs)],
) -> dict[str, Any]:
    state = queue.jobs.get(job_id)
    if state is None:
        raise HTTPException(404, f"no ingest job {job_id} (the node may have restarted)")
    return state.as_dict()
