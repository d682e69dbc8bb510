"""The node agent: connects out to the hub, long-polls for tasks, runs them, posts results.

Hospitals accept no inbound connections, so everything here is a client call. The agent
verifies every task itself (hub signature, addressee, expiry, executed-once ledger, policy)
before running it, signs every result, and keeps results it could not deliver in its ledger
to post again once the hub is back. Link failures back off exponentially with jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from pydantic import ValidationError

from oncofed.node.context import NodeContext
from oncofed.node.state import task_ledger
from oncofed.node.tasks import HANDLERS, TaskMeta, TaskRefused
from oncofed.protocol import TaskBodyError, validate_body
from oncofed.security.envelope import SignatureError, SignedEnvelope, iso, parse_iso, utcnow
from oncofed.security.request_auth import sign_request

log = logging.getLogger("oncofed.node.agent")

MAX_BACKOFF = 30.0
CLOCK_SKEW = timedelta(seconds=60)
CONCURRENT_TASKS = 4


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
        self._slots = asyncio.Semaphore(CONCURRENT_TASKS)
        self._running: set[asyncio.Task[None]] = set()
        self.connected = False
        self._released = False

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

        with self.ctx.state.begin() as con:
            seen = con.execute(
                sa.select(task_ledger).where(task_ledger.c.task_id == task_id)
            ).first()
            if seen is not None and seen.status != "running" and seen.result_envelope:
                self.ctx.audit.append(
                    "hub",
                    "task.replay",
                    "deny",
                    target=task_id,
                    reason="already executed; not run again, stored result re-sent",
                )
                return SignedEnvelope.model_validate(seen.result_envelope), False
            if seen is None:
                con.execute(
                    sa.insert(task_ledger).values(
                        task_id=task_id,
                        kind=str(payload.get("kind")),
                        received_at=iso(utcnow()),
                        status="running",
                        posted=False,
                        expires_at=str(payload["expires_at"]),
                    )
                )

        kind = str(payload.get("kind"))
        requester = str(payload.get("from", "?"))
        action, reason = f"task.{kind}", ""
        if not self.ctx.policy.allows_task(kind) or kind not in HANDLERS:
            action, decision = "task.policy", "deny"
            reason = f"this node's policy does not allow {kind} tasks"
            log.warning("refused task %s: %s", task_id, reason)
            result = self._result(task_id, "refused", error=reason)
        else:
            try:
                body = validate_body(kind, payload.get("body"))
                output = HANDLERS[kind](self.ctx, body, TaskMeta(task_id, kind, requester))
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
        # The outcome and its audit entry are written together, or neither is.
        with self.ctx.state.begin() as con:
            con.execute(
                sa.update(task_ledger)
                .where(task_ledger.c.task_id == task_id)
                .values(status=result.payload["status"], result_envelope=result.model_dump())
            )
            self.ctx.audit.append(
                requester, action, decision, target=task_id, reason=reason, con=con
            )
        return result, True

    def _mark_posted(self, task_id: str) -> None:
        with self.ctx.state.begin() as con:
            con.execute(
                sa.update(task_ledger).where(task_ledger.c.task_id == task_id).values(posted=True)
            )

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
        return [(r.task_id, r.result_envelope) for r in rows if r.result_envelope]

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
            try:
                delivered = await self.post_result(task_id, envelope)
            except httpx.TransportError as exc:
                log.warning("could not post result of %s (%s); will retry", task_id, exc)
                return
            if delivered and ledgered:
                await asyncio.to_thread(self._mark_posted, task_id)

    async def flush_outbox(self) -> None:
        for task_id, raw in await asyncio.to_thread(self._outbox):
            if await self.post_result(task_id, SignedEnvelope.model_validate(raw)):
                await asyncio.to_thread(self._mark_posted, task_id)

    async def poll_once(self, wait: float) -> int:
        query = f"wait={wait:g}" + ("" if self._released else "&fresh=true")
        response = await self.request("GET", f"/api/channel/tasks?{query}")
        if response.status_code in (401, 403):
            raise HubRefused(response.status_code, _detail(response))
        response.raise_for_status()
        self._released = True
        tasks = response.json().get("tasks", [])
        for item in tasks:
            job = asyncio.create_task(self.handle(str(item.get("task_id")), item.get("envelope")))
            self._running.add(job)
            job.add_done_callback(self._running.discard)
        return len(tasks)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                await self.flush_outbox()
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
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
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


class HubRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text
