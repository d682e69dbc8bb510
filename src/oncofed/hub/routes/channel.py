"""The node side of the task channel: a persistent stream, or long-polls and result PUTs.

Two transports carry the same signed messages (STANDARDS §3):

- **stream** (`/api/channel/stream`, a WebSocket the node opens): the handshake is a signed
  node request like any other (key, clock, fresh nonce); the hub then pushes each task the
  moment it is created and the node sends back node-signed results, each acknowledged. One
  connection per node instead of two HTTP exchanges per task: on a small hub most of a
  task's cost was HTTP parsing, routing and request authentication, not the task.
- **long-poll** (`GET /api/channel/tasks`, `PUT .../result`): for agents or proxies that
  cannot keep a WebSocket open; also how a node learns why the hub refuses it.

Either way a task is a hub-signed envelope the node verifies, and a result a node-signed
envelope the hub verifies (`Channel.record_result`) before anything is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from oncofed.hub.auth import NodeRequest, authenticated_node, check_node_request, request_target
from oncofed.hub.channel import Channel, ChannelError
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.models import Node
from oncofed.security.envelope import SignedEnvelope
from oncofed.security.http import RESULT_BODY_BYTES, ThreadedJSONRoute

# Results can be large: their JSON is parsed off the event loop.
router = APIRouter(route_class=ThreadedJSONRoute)

# How often a waiting poll or stream looks at the database even without a wake-up.
RECHECK_SECONDS = 1.0
# How often an open stream refreshes the node's last-seen time.
TOUCH_SECONDS = 15.0
STREAM_PATH = "/api/channel/stream"
# How long a stream that asked for batched acknowledgements (`acks=batch`) may hold one back
# for the next task message to carry it. An acknowledgement only lets the node stop keeping
# a result for re-sending, so holding it is safe: a result whose acknowledgement is lost with
# the connection is sent again and recorded once (results are idempotent).
ACK_DELAY_SECONDS = 0.25


@router.get("/api/channel/tasks", tags=["channel"])
async def poll(
    request: Request,
    ctx: Annotated[HubContext, Depends(hub_context)],
    caller: Annotated[NodeRequest, Depends(authenticated_node)],
    wait: Annotated[float, Query(ge=0, le=120)] = 0,
    fresh: Annotated[bool, Query(description="the agent has just started")] = False,
) -> dict[str, Any]:
    node = caller.node
    deadline = time.monotonic() + min(wait, ctx.settings.long_poll_seconds)
    nonce: str | None = caller.nonce  # recorded with the first claim only
    while True:
        ev = ctx.notifier.event(f"node:{node.id}")
        if nonce is None and await request.is_disconnected():
            # Claiming for a node that hung up would hold the task until its lease ends.
            return {"tasks": []}
        try:
            tasks = await run_in_threadpool(ctx.channel.claim, node.id, nonce, fresh)
        except ChannelError as exc:
            await run_in_threadpool(
                ctx.audit.append, f"node:{node.name}", "node.request", "deny", "poll", exc.message
            )
            raise HTTPException(exc.status, exc.message) from exc
        nonce, fresh = None, False
        remaining = deadline - time.monotonic()
        if tasks or remaining <= 0:
            return {"tasks": tasks}
        await ctx.notifier.wait(ev, min(remaining, RECHECK_SECONDS))


@router.put(
    "/api/channel/tasks/{task_id}/result", tags=["channel"], max_body_size=RESULT_BODY_BYTES
)
async def post_result(
    task_id: str,
    envelope: SignedEnvelope,
    ctx: Annotated[HubContext, Depends(hub_context)],
    caller: Annotated[NodeRequest, Depends(authenticated_node)],
) -> dict[str, Any]:
    try:
        recorded = await run_in_threadpool(
            ctx.channel.record_result, caller.node, task_id, envelope, caller.nonce
        )
    except ChannelError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    if recorded:
        ctx.notifier.wake(f"task:{task_id}")
    return {"recorded": recorded, "duplicate": not recorded}


# -- the stream -------------------------------------------------------------------------------

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class Batcher(Generic[Item, Outcome]):
    """Runs `work` in a worker thread over every item submitted while the last batch ran.

    Group commit for the streams: when a task fans out, all the woken streams' claims go in
    one transaction, and results that arrive while one is being recorded are recorded
    together. An idle batcher starts at once, so a lone item waits for nothing. `work`
    returns one outcome per item, an exception standing for that item's failure.
    """

    def __init__(self, work: Callable[[list[Item]], list[Outcome | ChannelError]]) -> None:
        self.work = work
        self._queue: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Outcome:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    outcomes: list[Any] = await run_in_threadpool(
                        self.work, [item for item, _ in batch]
                    )
                except Exception as exc:  # the whole batch failed (database down, say)
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # its stream went away
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._drainer = None


class StreamBatches:
    """The hub's batchers for streamed claims and results (one set per app)."""

    def __init__(self, channel: Channel) -> None:
        self.claims: Batcher[str, list[dict[str, Any]]] = Batcher(channel.claim_many)
        self.results: Batcher[tuple[Node, str, SignedEnvelope], bool] = Batcher(
            channel.record_results
        )

    @staticmethod
    def of(app: FastAPI, channel: Channel) -> StreamBatches:
        batches: StreamBatches | None = getattr(app.state, "stream_batches", None)
        if batches is None:
            batches = app.state.stream_batches = StreamBatches(channel)
        return batches


async def _refuse_handshake(websocket: WebSocket, status: int, detail: str) -> None:
    """Answer the handshake with an HTTP error the agent can show (or a bare close)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse({"detail": detail}, status_code=status))
    else:
        await websocket.close(code=4000 + status)


@router.websocket(STREAM_PATH)
async def stream(websocket: WebSocket) -> None:
    """A node's persistent channel: tasks pushed as they come, results acknowledged.

    Messages are JSON text frames. Hub to node: ``{"type": "tasks", "tasks": [{task_id,
    envelope}]}`` (the first one, possibly empty, confirms the handshake) and ``{"type":
    "ack", "task_id", "status", "recorded" | "detail"}`` with the HTTP status the same result
    would have got from `PUT .../result`. Node to hub: ``{"type": "result", "task_id",
    "envelope"}``. Query ``fresh=true``: the agent has just started (see `Channel.claim`).
    Query ``acks=batch``: the node takes acknowledgements in a list, ``"acks": [...]`` on the
    next tasks message or, after ACK_DELAY_SECONDS without one, ``{"type": "acks", "acks":
    [...]}``; one frame (one socket write at each end) less per result.
    """
    ctx: HubContext = websocket.app.state.hub
    headers = {k.lower(): v for k, v in websocket.headers.items()}
    try:
        caller = await check_node_request(ctx, "GET", request_target(websocket.url), b"", headers)
    except HTTPException as exc:
        await _refuse_handshake(websocket, exc.status_code, str(exc.detail))
        return
    node = caller.node
    fresh = websocket.query_params.get("fresh") == "true"
    try:
        # The handshake's nonce is recorded with this first claim: a replayed handshake is
        # refused before the stream opens.
        first = await run_in_threadpool(ctx.channel.claim, node.id, caller.nonce, fresh, True)
    except ChannelError as exc:
        await run_in_threadpool(
            ctx.audit.append, f"node:{node.name}", "node.request", "deny", "stream", exc.message
        )
        await _refuse_handshake(websocket, exc.status, exc.message)
        return
    await websocket.accept()
    session = _Stream(ctx, websocket, node, StreamBatches.of(websocket.app, ctx.channel))
    session.batch_acks = websocket.query_params.get("acks") == "batch"
    ctx.channel.stream_opened(node.id)
    try:
        # Tasks created between the first claim and `stream_opened` are pending, not
        # leased to this stream: one more claim (in the pusher) picks them up.
        await session.send_tasks(first)
        pusher = asyncio.create_task(session.push())
        receiver = asyncio.create_task(session.receive())
        try:
            done, _ = await asyncio.wait({pusher, receiver}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for job in (pusher, receiver):
                if not job.done():
                    job.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await job
    finally:
        session.stop_acks()
        unsent = ctx.channel.stream_closed(node.id)
        if unsent:
            await run_in_threadpool(ctx.channel.release, node.id, unsent)
    for job in done:
        error = job.exception()
        if isinstance(error, ChannelError):  # revoked meanwhile
            with contextlib.suppress(RuntimeError):
                await websocket.close(code=4000 + error.status, reason=error.message[:120])
        elif error is not None and not isinstance(error, WebSocketDisconnect):
            raise error


class _Stream:
    """One open stream: a pusher (claims and sends tasks) and a receiver (results)."""

    def __init__(
        self, ctx: HubContext, websocket: WebSocket, node: Node, batches: StreamBatches
    ) -> None:
        self.ctx = ctx
        self.websocket = websocket
        self.node = node
        self.batches = batches
        self._send_lock = asyncio.Lock()
        self.batch_acks = False
        self._acks: list[dict[str, Any]] = []
        self._ack_flusher: asyncio.Task[None] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.websocket.send_text(json.dumps(message))

    async def send_tasks(self, tasks: list[dict[str, Any]], encoded: Sequence[str] = ()) -> None:
        """Send tasks, with the acknowledgements held back so far.

        `encoded` are task items already JSON (`Channel.take_delivered`): a task sent to
        ten nodes is serialised once, not ten times.
        """
        items = [*encoded, *(json.dumps(t) for t in tasks)]
        async with self._send_lock:
            acks = ""
            if self._acks:
                acks = ',"acks":' + json.dumps(self._acks)
                self._acks = []
            await self.websocket.send_text(
                '{"type":"tasks","tasks":[' + ",".join(items) + "]" + acks + "}"
            )

    async def acknowledge(self, ack: dict[str, Any]) -> None:
        """Acknowledge a result now, or hold it for the next message (`acks=batch`)."""
        if not self.batch_acks:
            await self.send({"type": "ack", **ack})
            return
        self._acks.append(ack)
        if self._ack_flusher is None or self._ack_flusher.done():
            self._ack_flusher = asyncio.create_task(self._flush_acks_later())

    async def _flush_acks_later(self) -> None:
        await asyncio.sleep(ACK_DELAY_SECONDS)
        async with self._send_lock:
            if self._acks:  # not taken by a tasks message meanwhile
                acks, self._acks = self._acks, []
                await self.websocket.send_text(json.dumps({"type": "acks", "acks": acks}))

    def stop_acks(self) -> None:
        if self._ack_flusher is not None:
            self._ack_flusher.cancel()

    async def push(self) -> None:
        """Send the node's tasks whenever woken; claim from the database when needed.

        A wake-up usually means `Channel.create` leased a task to this stream already
        (`take_delivered`, no database). The database is asked at the start, when a wake-up
        brought nothing queued (a lease ran out, say), and every RECHECK_SECONDS (tasks
        created by another hub process, missed wake-ups, revocation).
        """
        touched = time.monotonic()
        node_id = self.node.id
        claim = True
        while True:
            ev = self.ctx.notifier.event(f"node:{node_id}")
            queued = self.ctx.channel.take_delivered(node_id)
            tasks: list[dict[str, Any]] = []
            if claim or not queued:
                tasks = await run_in_threadpool(self.ctx.channel.claim, node_id, None, False, True)
            if tasks or queued:
                try:
                    await self.send_tasks(tasks, [item for _, item in queued])
                except BaseException:
                    # Leased but not sent: give them back instead of waiting for the lease.
                    task_ids = [t["task_id"] for t in tasks] + [t for t, _ in queued]
                    await run_in_threadpool(self.ctx.channel.release, node_id, task_ids)
                    raise
            if time.monotonic() - touched > TOUCH_SECONDS:
                await run_in_threadpool(self.ctx.channel.touch, node_id)
                touched = time.monotonic()
            claim = not await self.ctx.notifier.wait(ev, RECHECK_SECONDS)

    async def receive(self) -> None:
        while True:
            try:
                message = json.loads(await self.websocket.receive_text())
            except json.JSONDecodeError:
                await self.send({"type": "error", "status": 400, "detail": "not JSON"})
                continue
            if not isinstance(message, dict) or message.get("type") != "result":
                await self.send(
                    {"type": "error", "status": 400, "detail": "expected a result message"}
                )
                continue
            task_id = str(message.get("task_id", ""))
            ack = await self._record(task_id, message.get("envelope"))
            if ack.get("recorded"):
                self.ctx.notifier.wake(f"task:{task_id}")
            await self.acknowledge({"task_id": task_id, **ack})

    async def _record(self, task_id: str, raw_envelope: Any) -> dict[str, Any]:
        try:
            envelope = SignedEnvelope.model_validate(raw_envelope)
        except ValidationError as exc:
            return {"status": 422, "detail": f"malformed result envelope: {exc}"}
        try:
            recorded = await self.batches.results.submit((self.node, task_id, envelope))
        except ChannelError as exc:
            return {"status": exc.status, "detail": exc.message}
        return {"status": 200, "recorded": recorded}
