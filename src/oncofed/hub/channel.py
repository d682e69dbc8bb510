"""The task channel (STANDARDS §3), as database operations.

A task is stored once with its hub-signed envelope and one `TaskTarget` row per addressed
node. A node claims its pending targets with a lease; if the lease runs out without a result
(the node died or lost its link) the target can be claimed again, up to `max_attempts`. When
the task's deadline passes, every target without a final status becomes `timed_out`, so a
requester always learns the fate of each node. Results are idempotent: the same signed result
posted twice is recorded once; a different result for a finished target is a conflict.

Everything here is synchronous SQLAlchemy; the routes run it in a thread pool.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from oncofed.audit import AuditLog
from oncofed.hub.models import FINAL_STATUSES, Node, Task, TaskTarget, UsedNonce
from oncofed.security.envelope import SignedEnvelope, canonical_json, iso, utcnow
from oncofed.security.keys import PublicKey, SigningKey

NODE_RESULT_STATUSES = frozenset({"succeeded", "failed", "refused"})


class ChannelError(Exception):
    """A request the channel refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class TargetView:
    node_id: str
    node_name: str
    status: str
    attempts: int
    finished_at: str | None
    result: dict[str, Any] | None
    error: str | None


@dataclass
class TaskView:
    id: str
    kind: str
    body: dict[str, Any]
    created_by: str
    created_at: str
    expires_at: str
    targets: list[TargetView] = field(default_factory=list)

    @property
    def done(self) -> int:
        return sum(1 for t in self.targets if t.status in FINAL_STATUSES)

    @property
    def complete(self) -> bool:
        return self.done == len(self.targets)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "body": self.body,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "complete": self.complete,
            "counts": {
                s: sum(1 for t in self.targets if t.status == s)
                for s in sorted({t.status for t in self.targets})
            },
            "targets": [t.__dict__ for t in self.targets],
        }


def result_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def _record_contact(s: Session, node_id: str, nonce: str | None) -> None:
    """Record a signed request's nonce (refusing a replay) and when the node was last seen."""
    if nonce is None:
        return
    now = utcnow()
    try:
        with s.begin_nested():
            s.add(UsedNonce(node_id=node_id, nonce=nonce, seen_at=now))
    except sa.exc.IntegrityError as exc:
        raise ChannelError(401, "node request refused: this request was seen before "
                           "(replayed)") from exc
    s.execute(sa.update(Node).where(Node.id == node_id).values(last_seen_at=now))


class Channel:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        key: SigningKey,
        audit: AuditLog,
        lease_seconds: int,
        max_attempts: int,
    ) -> None:
        self.sessions = sessions
        self.key = key
        self.audit = audit
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts

    # -- requester side -------------------------------------------------------------------

    def create(
        self,
        kind: str,
        body: dict[str, Any],
        node_names: list[str] | None,
        ttl_seconds: int,
        created_by: str,
    ) -> tuple[str, list[str]]:
        """Store and sign a task; returns its id and the ids of the addressed nodes."""
        now = utcnow()
        with self.sessions.begin() as s:
            query = sa.select(Node).where(Node.status == "enrolled")
            if node_names:
                query = query.where(Node.name.in_(node_names))
            nodes = list(s.scalars(query.order_by(Node.name)))
            if node_names:
                missing = sorted(set(node_names) - {n.name for n in nodes})
                if missing:
                    raise ChannelError(
                        404,
                        f"no enrolled node named {', '.join(missing)}; "
                        "`oncofed nodes` lists the federation's nodes",
                    )
            if not nodes:
                raise ChannelError(409, "no node is enrolled in this federation yet")
            task_id = uuid.uuid4().hex
            expires = now + timedelta(seconds=ttl_seconds)
            payload = {
                "type": "oncofed.task",
                "id": task_id,
                "kind": kind,
                "body": body,
                "from": created_by,
                "to": [n.id for n in nodes],
                "issued_at": iso(now),
                "expires_at": iso(expires),
            }
            envelope = SignedEnvelope.sign(payload, self.key)
            s.add(
                Task(
                    id=task_id,
                    kind=kind,
                    body=body,
                    created_by=created_by,
                    created_at=now,
                    expires_at=expires,
                    envelope=envelope.model_dump(),
                )
            )
            s.flush()
            for n in nodes:
                s.add(TaskTarget(task_id=task_id, node_id=n.id, status="pending", attempts=0))
            s.flush()
            self.audit.append(
                created_by,
                "task.create",
                "allow",
                target=task_id,
                details={"kind": kind, "nodes": [n.name for n in nodes],
                         "ttl_seconds": ttl_seconds},
                con=s.connection(),
            )
        return task_id, [n.id for n in nodes]

    def view(self, task_id: str) -> TaskView:
        with self.sessions() as s:
            task = s.get(Task, task_id)
            if task is None:
                raise ChannelError(404, f"no task {task_id}")
            expired = task.expires_at <= utcnow()
        if expired:
            self.expire_overdue(task_id)
        with self.sessions() as s:
            rows = s.execute(
                sa.select(TaskTarget, Node.name)
                .join(Node, Node.id == TaskTarget.node_id)
                .where(TaskTarget.task_id == task_id)
                .order_by(Node.name)
            ).all()
            return TaskView(
                id=task.id,
                kind=task.kind,
                body=task.body,
                created_by=task.created_by,
                created_at=iso(task.created_at),
                expires_at=iso(task.expires_at),
                targets=[
                    TargetView(
                        node_id=t.node_id,
                        node_name=name,
                        status=t.status,
                        attempts=t.attempts,
                        finished_at=iso(t.finished_at) if t.finished_at else None,
                        result=t.result,
                        error=t.error,
                    )
                    for t, name in rows
                ],
            )

    def owner(self, task_id: str) -> str:
        with self.sessions() as s:
            created_by = s.scalar(sa.select(Task.created_by).where(Task.id == task_id))
        if created_by is None:
            raise ChannelError(404, f"no task {task_id}")
        return created_by

    def list_tasks(self, created_by: str | None, limit: int = 50) -> list[dict[str, Any]]:
        with self.sessions() as s:
            q = sa.select(Task).order_by(Task.created_at.desc()).limit(limit)
            if created_by is not None:
                q = q.where(Task.created_by == created_by)
            return [
                {
                    "id": t.id,
                    "kind": t.kind,
                    "created_by": t.created_by,
                    "created_at": iso(t.created_at),
                    "expires_at": iso(t.expires_at),
                }
                for t in s.scalars(q)
            ]

    # -- node side ------------------------------------------------------------------------

    def claim(
        self, node_id: str, nonce: str | None = None, release: bool = False
    ) -> list[dict[str, Any]]:
        """Lease the node's deliverable targets and return their signed envelopes.

        `release` first returns what the node had claimed to pending: a restarted agent is
        working on nothing, so its tasks need not wait for their leases to run out.
        """
        now = utcnow()
        out: list[dict[str, Any]] = []
        with self.sessions.begin() as s:
            _record_contact(s, node_id, nonce)
            if release:
                s.execute(
                    sa.update(TaskTarget)
                    .where(TaskTarget.node_id == node_id, TaskTarget.status == "claimed")
                    .values(status="pending", lease_until=None)
                )
            rows = s.execute(
                sa.select(TaskTarget, Task)
                .join(Task, Task.id == TaskTarget.task_id)
                .where(
                    TaskTarget.node_id == node_id,
                    Task.expires_at > now,
                    sa.or_(
                        TaskTarget.status == "pending",
                        sa.and_(TaskTarget.status == "claimed", TaskTarget.lease_until < now),
                    ),
                )
                .order_by(Task.created_at)
                .limit(50)
                .with_for_update(skip_locked=True)
            ).all()
            for target, task in rows:
                if target.attempts >= self.max_attempts:
                    target.status = "failed"
                    target.finished_at = now
                    target.error = (
                        f"the node took the task {target.attempts} times without "
                        "answering; it may crash on it (see the node's log)"
                    )
                    self.audit.append(
                        "hub",
                        "task.give_up",
                        "error",
                        target=task.id,
                        reason="lease expired too often",
                        details={"node": node_id},
                        con=s.connection(),
                    )
                    continue
                target.status = "claimed"
                target.attempts += 1
                target.claimed_at = now
                target.lease_until = now + self.lease
                out.append({"task_id": task.id, "envelope": task.envelope})
        return out

    def record_result(
        self, node: Node, task_id: str, envelope: SignedEnvelope, nonce: str | None = None
    ) -> bool:
        """Store a verified result. Returns False when it was a harmless duplicate."""
        if node.public_key is None:
            raise ChannelError(403, "node has no registered key")
        try:
            payload = envelope.verify(PublicKey.from_b64(node.public_key))
        except ValueError as exc:
            self._deny(node, task_id, "result.signature", str(exc))
            raise ChannelError(400, f"result refused: {exc}") from exc
        if payload.get("type") != "oncofed.result":
            self._deny(node, task_id, "result.type", "not a result message")
            raise ChannelError(400, "result refused: the message is not a result")
        if payload.get("task_id") != task_id or payload.get("node_id") != node.id:
            self._deny(
                node,
                task_id,
                "result.address",
                f"answers task {payload.get('task_id')} for node {payload.get('node_id')}",
            )
            raise ChannelError(
                400,
                "result refused: it answers another task or comes from another node (replayed?)",
            )
        status = payload.get("status")
        if status not in NODE_RESULT_STATUSES:
            raise ChannelError(422, f"result status must be one of {sorted(NODE_RESULT_STATUSES)}")
        digest = result_hash(payload)
        now = utcnow()
        with self.sessions.begin() as s:
            _record_contact(s, node.id, nonce)
            target = s.get(TaskTarget, (task_id, node.id), with_for_update=True)
            if target is None:
                raise ChannelError(404, f"task {task_id} was not addressed to this node")
            if target.status in FINAL_STATUSES:
                if target.result_hash == digest:
                    return False
                if target.status == "timed_out":
                    raise ChannelError(410, f"task {task_id} timed out before this result came")
                raise ChannelError(
                    409,
                    f"task {task_id} already has a different result "
                    f"from this node ({target.status})",
                )
            task = s.get(Task, task_id)
            assert task is not None
            if task.expires_at <= now:  # the sweeper marks it timed_out
                raise ChannelError(410, f"task {task_id} timed out before this result came")
            target.status = status
            target.finished_at = now
            target.result = payload.get("body") if status == "succeeded" else None
            target.error = payload.get("error") if status != "succeeded" else None
            target.result_envelope = envelope.model_dump()
            target.result_hash = digest
            s.flush()
            self.audit.append(
                f"node:{node.name}",
                "task.result",
                "allow" if status == "succeeded" else "deny" if status == "refused" else "error",
                target=task_id,
                reason=str(payload.get("error") or ""),
                details={"status": status},
                con=s.connection(),
            )
        return True

    def expire_overdue(self, task_id: str | None = None) -> list[str]:
        """Time out every unfinished target of a task past its deadline; returns those tasks."""
        now = utcnow()
        with self.sessions.begin() as s:
            query = (
                sa.select(TaskTarget.task_id)
                .distinct()
                .join(Task, Task.id == TaskTarget.task_id)
                .where(Task.expires_at <= now, TaskTarget.status.in_(("pending", "claimed")))
            )
            if task_id is not None:
                query = query.where(Task.id == task_id)
            overdue = list(s.scalars(query))
            if overdue:
                s.execute(
                    sa.update(TaskTarget)
                    .where(
                        TaskTarget.task_id.in_(overdue),
                        TaskTarget.status.in_(("pending", "claimed")),
                    )
                    .values(
                        status="timed_out",
                        finished_at=now,
                        error="no result before the task's deadline",
                    )
                    .execution_options(synchronize_session=False)
                )
        return overdue

    def _deny(self, node: Node, task_id: str, what: str, reason: str) -> None:
        self.audit.append(f"node:{node.name}", what, "deny", target=task_id, reason=reason)
