"""The node agent: connects out to the hub, receives tasks, runs them, sends back results.

Hospitals accept no inbound connections, so everything here is a client call. The agent
keeps one outbound WebSocket to the hub (`/api/channel/stream`, opened with a signed
request): tasks are pushed as soon as they exist and results go back on the same
connection, which costs far less per task than an HTTP long-poll plus a result PUT. Where
the hub (or a proxy between) does not offer the stream, the agent long-polls instead.

Either way the agent verifies every task itself (hub signature, addressee, expiry,
executed-once ledger, policy) before running it, signs every result, and keeps results the
hub has not acknowledged in its ledger to send again once the hub is back. Link failures
back off exponentially with jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from oncofed.node.context import NodeContext
from oncofed.node.handlers import TaskMeta, TaskRefused, registered
from oncofed.node.state import task_ledger
from oncofed.protocol import TaskBodyError, validate_body
from oncofed.security.envelope import SignatureError, SignedEnvelope, iso, parse_iso, utcnow
from oncofed.security.request_auth import sign_request

log = logging.getLogger("oncofed.node.agent")

MAX_BACKOFF = 30.0
CLOCK_SKEW = timedelta(seconds=60)
CONCURRENT_TASKS = 4
STREAM_PATH = "/api/channel/stream"
# A hub that answers the stream handshake with one of these has no stream: long-poll, and
# try the stream again after STREAM_RETRY_SECONDS.
NO_STREAM_STATUSES = frozenset({400, 404, 405, 426, 501})
STREAM_RETRY_SECONDS = 300.0
# Larger results go by HTTP PUT (the hub's WebSocket frame limit is 16 MiB).
MAX_STREAM_MESSAGE = 8 * 1024 * 1024
# Acknowledged with these, a result is done with: 200 taken (or a duplicate); 404/409/410
# the hub will never take it (not addressed here, another result, too late).
DELIVERED = frozenset({200, 404, 409, 410})
POSTED_FLUSH_SECONDS = 1.0


# Ledger statements, built once (each call then only binds parameters).
_LEDGER_ENTRY = sa.select(task_ledger.c.status, task_ledger.c.result_envelope).where(
    task_ledger.c.task_id == sa.bindparam("k_task")
)
_ledger_insert = sqlite_insert(task_ledger)
# A row left by an earlier run of the task (an agent before this one wrote "running" rows
# first) is overwritten with the outcome.
_LEDGER_RECORD = _ledger_insert.on_conflict_do_update(
    index_elements=[task_ledger.c.task_id],
    set_={
        "status": _ledger_insert.excluded.status,
        "result_envelope": _ledger_insert.excluded.result_envelope,
    },
)
_LEDGER_POSTED = (
    sa.update(task_ledger)
    .where(task_ledger.c.task_id == sa.bindparam("k_task"))
    .values(posted=True)
)


class Agent:
    def __init__(self, ctx: NodeContext, transport: httpx.AsyncBaseTransport | None = None):
        self.ctx = ctx
        settings = ctx.settings
        self.base_path = urlsplit(settings.hub_url).path.rstrip("/")
        self.client = httpx.AsyncClient(
            base_url=settings.hub_url,
            timeout=httpx.Timeout(settings.request_timeout_seconds + settings.poll_seconds),
            transport=transport,
        )
        split = urlsplit(settings.hub_url)
        self.stream_url = urlunsplit(
            ("wss" if split.scheme == "https" else "ws", split.netloc, self.base_path, "", "")
        )
        self._slots = asyncio.Semaphore(CONCURRENT_TASKS)
        self._running: set[asyncio.Task[None]] = set()
        self.connected = False
        self._released = False
        # The open stream, if any; results go on it while it is up.
        self._stream: ClientConnection | None = None
        self._send_lock = asyncio.Lock()
        # Results sent on the stream and ledgered, awaiting the hub's acknowledgement.
        self._unacked: set[str] = set()
        self._stream_retry_at = 0.0
        # Whether the ledger may hold results the hub has not acknowledged (at start: a
        # previous run may have left some).
        self._outbox_due = True
        # Acknowledged results not yet marked posted in the ledger: the mark rides on the
        # next task's ledger transaction (or a flush POSTED_FLUSH_SECONDS later), one
        # commit less per task. Losing it in a crash only makes the result go again, and
        # the hub takes a repeated result once.
        self._to_mark: list[str] = []
        self._mark_lock = threading.Lock()  # process() takes the list in a worker thread
        self._mark_flush: asyncio.TimerHandle | None = None

    # -- HTTP -------------------------------------------------------------------------------

    async def request(self, method: str, path: str, body: bytes = b"") -> httpx.Response:
        headers = sign_request(
            self.ctx.settings.node_id, self.ctx.key, method, self.base_path + path, body
        )
        if body:
            headers["content-type"] = "application/json"
        return await self.client.request(method, path, content=body, headers=headers)

    # -- verification and execution (synchronous, run in a thread) ------------------------

    def _result(
        self,
        task_id: str,
        status: str,
        body: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> SignedEnvelope:
        payload = {
            "type": "oncofed.result",
            "task_id": task_id,
            "node_id": self.ctx.settings.node_id,
            "status": status,
            "body": body if body is not None else {},
            "error": error,
            "issued_at": iso(utcnow()),
        }
        return SignedEnvelope.sign(payload, self.ctx.key)

    def _refuse(self, task_id: str, what: str, reason: str) -> SignedEnvelope:
        self.ctx.audit.append("hub", what, "deny", target=task_id, reason=reason)
        log.warning("refused task %s: %s", task_id, reason)
        return self._result(task_id, "refused", error=reason)

    def process(self, task_id: str, raw_envelope: Any) -> tuple[SignedEnvelope, bool]:
        """Verify and run one delivered task. Returns the result and whether to ledger it."""
        try:
            envelope = SignedEnvelope.model_validate(raw_envelope)
            payload = envelope.verify(self.ctx.hub_key)
        except (ValidationError, SignatureError, ValueError) as exc:
            return self._refuse(task_id, "task.verify", f"task signature invalid: {exc}"), False
        if payload.get("type") != "oncofed.task" or payload.get("id") != task_id:
            return self._refuse(
                task_id, "task.verify", "the signed message is not this task"
            ), False
        if self.ctx.settings.node_id not in payload.get("to", []):
            return self._refuse(
                task_id, "task.address", "the task is not addressed to this node"
            ), False
        try:
            expires = parse_iso(str(payload["expires_at"]))
        except (KeyError, ValueError):
            return self._refuse(task_id, "task.verify", "the task has no valid expiry"), False
        if expires + CLOCK_SKEW < utcnow():
            return self._refuse(
                task_id, "task.expired", f"the task expired at {payload['expires_at']}"
            ), False

        received_at = iso(utcnow())
        with self.ctx.state.connect() as con:
            seen = con.execute(_LEDGER_ENTRY, {"k_task": task_id}).first()
        if seen is not None and seen.status != "running" and seen.result_envelope:
            self.ctx.audit.append(
                "hub",
                "task.replay",
                "deny",
                target=task_id,
                reason="already executed; not run again, stored result re-sent",
            )
            return SignedEnvelope.model_validate(seen.result_envelope), False

        kind = str(payload.get("kind"))
        requester = str(payload.get("from", "?"))
        action, reason = f"task.{kind}", ""
        meta = TaskMeta(task_id, kind, requester)
        handlers = registered()
        if not self.ctx.policy.allows_task(kind) or kind not in handlers:
            action, decision = "task.policy", "deny"
            reason = f"this node's policy does not allow {kind} tasks"
            log.warning("refused task %s: %s", task_id, reason)
            result = self._result(task_id, "refused", error=reason)
        else:
            try:
                body = validate_body(kind, payload.get("body"))
                output = handlers[kind](self.ctx, body, meta)
            except TaskBodyError as exc:
                decision, reason = "deny", str(exc)
                result = self._result(task_id, "failed", error=reason)
            except TaskRefused as exc:
                decision, reason = "deny", str(exc)
                result = self._result(task_id, "refused", error=reason)
            except Exception as exc:  # the handler's failure is the task's, not the agent's
                log.exception("task %s (%s) failed", task_id, kind)
                decision, reason = "error", f"{type(exc).__name__}: {exc}"
                result = self._result(task_id, "failed", error=reason)
            else:
                decision = "allow"
                result = self._result(task_id, "succeeded", body=output)
        # The ledger entry (what makes the task run once) and the audit entry are written
        # together, or neither is: a crash before this commit leaves no trace of the run, and
        # the task runs again when the hub delivers it again.
        posted = self._take_marks()
        with self.ctx.state.begin() as con:
            if posted:
                con.execute(_LEDGER_POSTED, [{"k_task": t} for t in posted])
            con.execute(
                _LEDGER_RECORD,
                {
                    "task_id": task_id,
                    "kind": kind,
                    "received_at": received_at,
                    "status": result.payload["status"],
                    "result_envelope": result.model_dump(),
                    "posted": False,
                    "expires_at": str(payload["expires_at"]),
                },
            )
            for write in meta.writes:
                write(con)
            # The handler's own decisions first, then the task's; one chained write.
            self.ctx.audit.append_many(
                [
                    *meta.audit_entries,
                    {
                        "actor": requester,
                        "action": action,
                        "decision": decision,
                        "target": task_id,
                        "reason": reason,
                    },
                ],
                con,
            )
        return result, True

    def _take_marks(self) -> list[str]:
        with self._mark_lock:
            posted, self._to_mark = self._to_mark, []
        return posted

    def _mark_posted(self, *task_ids: str) -> None:
        with self.ctx.state.begin() as con:
            con.execute(_LEDGER_POSTED, [{"k_task": task_id} for task_id in task_ids])

    def _outbox(self) -> list[tuple[str, dict[str, Any]]]:
        now = iso(utcnow())
        with self.ctx.state.connect() as con:
            rows = con.execute(
                sa.select(task_ledger.c.task_id, task_ledger.c.result_envelope).where(
                    task_ledger.c.posted.is_(False),
                    task_ledger.c.status != "running",
                    task_ledger.c.expires_at > now,
                )
            ).all()
        with self._mark_lock:
            acknowledged = set(self._to_mark)  # delivered, only not marked yet
        return [
            (r.task_id, r.result_envelope)
            for r in rows
            if r.result_envelope and r.task_id not in acknowledged
        ]

    # -- async flow -------------------------------------------------------------------------

    async def post_result(self, task_id: str, envelope: SignedEnvelope) -> bool:
        body = envelope.model_dump_json().encode()
        response = await self.request("PUT", f"/api/channel/tasks/{task_id}/result", body)
        if response.status_code in (200, 404, 409, 410):
            # 404/409/410: the hub will never take this result; keep it, stop retrying.
            if response.status_code != 200:
                log.warning("hub did not take result of %s: %s", task_id, response.text)
            return True
        log.warning(
            "hub refused result of %s (%s): %s", task_id, response.status_code, response.text
        )
        return False

    async def handle(self, task_id: str, raw_envelope: Any) -> None:
        async with self._slots:
            envelope, ledgered = await asyncio.to_thread(self.process, task_id, raw_envelope)
            if await self._send_on_stream(task_id, envelope, ledgered):
                return
            try:
                delivered = await self.post_result(task_id, envelope)
            except httpx.TransportError as exc:
                log.warning("could not post result of %s (%s); will retry", task_id, exc)
                self._outbox_due = True
                return
            if not delivered:
                self._outbox_due = True
            elif ledgered:
                await asyncio.to_thread(self._mark_posted, task_id)

    async def _send_on_stream(self, task_id: str, envelope: SignedEnvelope, ledgered: bool) -> bool:
        """Send a result on the open stream; False when there is none (or it is too big)."""
        stream = self._stream
        if stream is None:
            return False
        message = json.dumps(
            {"type": "result", "task_id": task_id, "envelope": envelope.model_dump(mode="json")}
        )
        if len(message) > MAX_STREAM_MESSAGE:
            return False
        if ledgered:
            self._unacked.add(task_id)
        try:
            async with self._send_lock:
                await stream.send(message)
        except ConnectionClosed:
            # Not acknowledged: it stays in the ledger's outbox and goes again on reconnect.
            log.warning("stream closed before the result of %s was sent; will retry", task_id)
            self._outbox_due = True
        return True

    async def flush_outbox(self) -> None:
        for task_id, raw in await asyncio.to_thread(self._outbox):
            if await self.post_result(task_id, SignedEnvelope.model_validate(raw)):
                await asyncio.to_thread(self._mark_posted, task_id)
        self._outbox_due = False

    # -- the stream -------------------------------------------------------------------------

    async def stream(self, stop: asyncio.Event) -> None:
        """Hold the stream open until `stop` is set; raises when it cannot open or breaks.

        Raises StreamRefused when the hub answers the handshake with an HTTP status (no
        stream there, or the node is refused: the long-poll then says why).
        """
        # acks=batch: the hub may hold acknowledgements back for the next task message.
        path = STREAM_PATH + "?acks=batch" + ("" if self._released else "&fresh=true")
        headers = sign_request(
            self.ctx.settings.node_id, self.ctx.key, "GET", self.base_path + path
        )
        try:
            websocket = await connect(
                self.stream_url + path,
                additional_headers=headers,
                compression=None,  # small JSON messages: deflate costs more than it saves
                open_timeout=self.ctx.settings.request_timeout_seconds,
                max_size=4 * MAX_STREAM_MESSAGE,
            )
        except InvalidStatus as exc:
            raise StreamRefused(exc.response.status_code, bytes(exc.response.body or b"")) from exc
        self._released = True  # the hub released our old claims with the handshake
        receiver = asyncio.ensure_future(self._receive(websocket))
        stopper = asyncio.ensure_future(stop.wait())
        self._stream = websocket
        try:
            await asyncio.wait({receiver, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._stream = None
            if self._unacked:
                self._unacked.clear()
                self._outbox_due = True  # sent, never acknowledged: send again
            stopper.cancel()
            if not receiver.done():
                receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiver
            await websocket.close()
        if receiver.done() and not receiver.cancelled():
            receiver.result()  # the reason the stream ended

    async def _receive(self, websocket: ClientConnection) -> None:
        async for raw in websocket:
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "tasks":
                if not self.connected:
                    log.info("connected to hub %s (stream)", self.ctx.settings.hub_url)
                self.connected = True
                self._acknowledged(message.get("acks", []))
                for item in message.get("tasks", []):
                    self._start(str(item.get("task_id")), item.get("envelope"))
            elif kind == "acks":
                self._acknowledged(message.get("acks", []))
            elif kind == "ack":
                self._acknowledged([message])
            else:
                log.warning("hub says: %s", message.get("detail", message))
        raise ConnectionError("the hub closed the stream")

    def _acknowledged(self, acks: list[dict[str, Any]]) -> None:
        """Take the hub's acknowledgements; the ledgered ones are marked in one transaction."""
        posted = []
        for ack in acks:
            task_id, status = str(ack.get("task_id")), ack.get("status")
            ledgered = task_id in self._unacked
            self._unacked.discard(task_id)
            if status not in DELIVERED:
                log.warning("hub refused result of %s (%s): %s", task_id, status, ack.get("detail"))
                self._outbox_due = True
                continue
            if status != 200:
                log.warning("hub did not take result of %s: %s", task_id, ack.get("detail"))
            if ledgered:
                posted.append(task_id)
        if posted:
            with self._mark_lock:
                self._to_mark.extend(posted)
            if self._mark_flush is None:
                self._mark_flush = asyncio.get_running_loop().call_later(
                    POSTED_FLUSH_SECONDS, self._flush_marks
                )

    def _flush_marks(self) -> None:
        """Mark what no task transaction took along (the node is idle)."""
        self._mark_flush = None
        posted = self._take_marks()
        if posted:
            job = asyncio.create_task(asyncio.to_thread(self._mark_posted, *posted))
            self._running.add(job)
            job.add_done_callback(self._running.discard)

    def _start(self, task_id: str, raw_envelope: Any) -> None:
        job = asyncio.create_task(self.handle(task_id, raw_envelope))
        self._running.add(job)
        job.add_done_callback(self._running.discard)

    async def poll_once(self, wait: float) -> int:
        query = f"wait={wait:g}" + ("" if self._released else "&fresh=true")
        response = await self.request("GET", f"/api/channel/tasks?{query}")
        if response.status_code in (401, 403):
            raise HubRefused(response.status_code, _detail(response))
        response.raise_for_status()
        self._released = True
        tasks = response.json().get("tasks", [])
        for item in tasks:
            self._start(str(item.get("task_id")), item.get("envelope"))
        return len(tasks)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                if self._outbox_due:
                    await self.flush_outbox()
                if time.monotonic() >= self._stream_retry_at:
                    try:
                        await self.stream(stop)
                        break  # stopped
                    except StreamRefused as exc:
                        if exc.no_stream:
                            log.info("hub offers no stream (%s); long-polling", exc.status)
                            self._stream_retry_at = time.monotonic() + STREAM_RETRY_SECONDS
                        # Otherwise refused: the long-poll below gets the hub's reason.
                # The first poll returns at once so that `connected` means something quickly.
                wait = self.ctx.settings.poll_seconds if self.connected else 0
                poll = asyncio.ensure_future(self.poll_once(wait))
                stopper = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({poll, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if poll not in done:
                    poll.cancel()
                    break
                poll.result()
                if not self.connected:
                    log.info("connected to hub %s", self.ctx.settings.hub_url)
                self.connected = True
                backoff = 0.5
                continue
            except HubRefused as exc:
                log.error("the hub refuses this node (%s): %s", exc.status, exc.detail)
                delay = 60.0
            except (
                httpx.TransportError,
                httpx.HTTPStatusError,
                ConnectionClosed,
                InvalidHandshake,
                OSError,
                TimeoutError,
            ) as exc:
                if self.connected and isinstance(exc, (ConnectionClosed, ConnectionError)):
                    backoff = 0.5  # a stream that worked broke: reconnect soon
                delay = backoff * (0.5 + random.random())
                log.warning(
                    "hub %s unreachable (%s); retrying in %.1f s",
                    self.ctx.settings.hub_url,
                    type(exc).__name__,
                    delay,
                )
                backoff = min(backoff * 2, MAX_BACKOFF)
            self.connected = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        for job in list(self._running):
            job.cancel()
        await self.client.aclose()


class StreamRefused(Exception):
    """The hub answered the stream handshake with an HTTP status instead of upgrading."""

    def __init__(self, status: int, body: bytes = b"") -> None:
        super().__init__(f"stream handshake refused with HTTP {status}")
        self.status = status
        # A hub refusing this node says why in a JSON `detail`; a bare 403 is what a web
        # framework answers for a WebSocket path it does not have (an older hub).
        self.no_stream = status in NO_STREAM_STATUSES or (status == 403 and b"detail" not in body)


class HubRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text
