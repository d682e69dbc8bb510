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
import json
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from oncofed.audit import AuditLog
from oncofed.hub.models import FINAL_STATUSES, Node, Task, TaskTarget, UsedNonce
from oncofed.hub.notify import notify_sql
from oncofed.protocol import TaskBodyError, result_datasets, validate_result
from oncofed.security.envelope import SignedEnvelope, canonical_json, iso, utcnow
from oncofed.security.keys import PublicKey, SigningKey

NODE_RESULT_STATUSES = frozenset({"succeeded", "failed", "refused"})

# The hot paths (claim, record) use SQLAlchemy Core on the mapped tables: no identity map,
# no unit of work, a fraction of the ORM's cost per statement.
_node: sa.Table = Node.__table__  # type: ignore[assignment]
_task: sa.Table = Task.__table__  # type: ignore[assignment]
_target: sa.Table = TaskTarget.__table__  # type: ignore[assignment]

# Built once: a statement object caches its compiled form, so executing the same object with
# new parameters skips the expression building and cache-key walks that dominated these
# paths' cost when the statements were rebuilt per call.
MAX_CLAIM = 50
MAX_PROGRESS = 10_000  # tasks whose completion counts are kept (see Channel.progress)
_NODE_STATUSES = sa.select(_node.c.id, _node.c.status).where(
    _node.c.id.in_(sa.bindparam("node_ids", expanding=True))
)
_CLAIMABLE = (
    sa.select(_target.c.task_id, _target.c.node_id, _target.c.attempts, _task.c.envelope)
    .join(_task, _task.c.id == _target.c.task_id)
    .where(
        _target.c.node_id.in_(sa.bindparam("node_ids", expanding=True)),
        _task.c.expires_at > sa.bindparam("now", type_=_task.c.expires_at.type),
        sa.or_(
            _target.c.status == "pending",
            sa.and_(
                _target.c.status == "claimed",
                _target.c.lease_until < sa.bindparam("now", type_=_task.c.expires_at.type),
            ),
        ),
    )
    .order_by(_task.c.created_at)
    .limit(sa.bindparam("limit", type_=sa.Integer()))
    .with_for_update(skip_locked=True)
)
_LEASE = (
    sa.update(_target)
    .where(
        _target.c.node_id == sa.bindparam("k_node"),
        _target.c.task_id.in_(sa.bindparam("task_ids", expanding=True)),
    )
    .values(
        status="claimed",
        attempts=_target.c.attempts + 1,
        claimed_at=sa.bindparam("now", type_=_target.c.claimed_at.type),
        lease_until=sa.bindparam("lease_until", type_=_target.c.lease_until.type),
    )
)
_TARGETS = (
    sa.select(
        _target.c.task_id,
        _target.c.node_id,
        _target.c.status,
        _target.c.result_hash,
        _task.c.expires_at,
        _task.c.kind,
    )
    .join(_task, _task.c.id == _target.c.task_id)
    # Two plain INs rather than a row-value IN: SQLite answers `(a, b) IN (...)` with a scan
    # of the whole table, which grew with every task ever run (most of the hub's CPU per
    # result batch after a few thousand tasks). The pairs outside the batch that this
    # superset may return are ignored by the caller.
    .where(
        _target.c.task_id.in_(sa.bindparam("task_ids", expanding=True)),
        _target.c.node_id.in_(sa.bindparam("node_ids", expanding=True)),
    )
    .with_for_update()
)
_TASK_VIEW = sa.select(
    _task.c.id,
    _task.c.kind,
    _task.c.body,
    _task.c.created_by,
    _task.c.created_at,
    _task.c.expires_at,
).where(_task.c.id == sa.bindparam("k_task"))
_TARGETS_VIEW = (
    sa.select(
        _target.c.node_id,
        _node.c.name,
        _target.c.status,
        _target.c.attempts,
        _target.c.finished_at,
        _target.c.result,
        _target.c.error,
    )
    .join(_node, _node.c.id == _target.c.node_id)
    .where(_target.c.task_id == sa.bindparam("k_task"))
    .order_by(_node.c.name)
)
_INSERT_TASK = sa.insert(_task)
_INSERT_TARGET = sa.insert(_target)
_RELEASE = (
    sa.update(_target)
    .where(
        _target.c.node_id == sa.bindparam("k_node"),
        _target.c.task_id.in_(sa.bindparam("task_ids", expanding=True)),
        _target.c.status == "claimed",
    )
    .values(status="pending", lease_until=None)
)
_FINISH = (
    sa.update(_target)
    .where(_target.c.task_id == sa.bindparam("k_task"), _target.c.node_id == sa.bindparam("k_node"))
    .values(
        status=sa.bindparam("status", type_=_target.c.status.type),
        finished_at=sa.bindparam("finished_at", type_=_target.c.finished_at.type),
        result=sa.bindparam("result", type_=_target.c.result.type),
        error=sa.bindparam("error", type_=_target.c.error.type),
        result_envelope=sa.bindparam("result_envelope", type_=_target.c.result_envelope.type),
        result_hash=sa.bindparam("result_hash", type_=_target.c.result_hash.type),
    )
)


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
        raise ChannelError(
            401, "node request refused: this request was seen before (replayed)"
        ) from exc
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
        # The hot paths (results, views) use Core connections: an ORM session per batch of
        # results cost more than the batch's own statements.
        self.engine: sa.Engine = sessions.kw["bind"]
        self.key = key
        self.audit = audit
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        # Streams open in this process (node id -> how many) and the tasks leased to them
        # at creation, waiting for their stream to send them. Guarded by `_lock`: `create`
        # runs in worker threads, the streams in the event loop.
        self._lock = threading.Lock()
        self._streams: Counter[str] = Counter()
        # Queued tasks are (task id, the task item as JSON text): encoded once, sent to many.
        self._delivery: dict[str, list[tuple[str, str]]] = {}
        # Per task, how many of its targets this process has seen reach a final status
        # (`progress`): lets a waiting requester skip re-reading a task that cannot be
        # done yet. Bounded; a task that fell out reads 0 and its waiter re-reads the
        # database on its periodic check instead.
        self._progress: dict[str, int] = {}

    # -- requester side -------------------------------------------------------------------

    def create(
        self,
        kind: str,
        body: dict[str, Any],
        node_names: list[str] | None,
        ttl_seconds: int,
        created_by: str,
    ) -> tuple[str, list[str]]:
        """Store and sign a task; returns its id and the ids of the addressed nodes.

        Targets whose node has an open stream in this process are leased to it in the same
        transaction and queued for its stream (`take_delivered`): the stream sends them when
        woken without a claim transaction of its own, one commit per task instead of one per
        node. The others stay pending for the node's next claim.
        """
        now = utcnow()
        with self._lock:
            streaming = set(self._streams)
        with self.sessions.begin() as s:
            query = sa.select(Node.id, Node.name).where(Node.status == "enrolled")
            if node_names:
                query = query.where(Node.name.in_(node_names))
            nodes = list(s.execute(query.order_by(Node.name)))
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
            envelope = SignedEnvelope.sign(payload, self.key).model_dump()
            con = s.connection()
            con.execute(
                _INSERT_TASK,
                {
                    "id": task_id,
                    "kind": kind,
                    "body": body,
                    "created_by": created_by,
                    "created_at": now,
                    "expires_at": expires,
                    "envelope": envelope,
                },
            )
            lease_until = now + self.lease
            leased = [n.id for n in nodes if n.id in streaming]
            con.execute(
                _INSERT_TARGET,
                [
                    {
                        "task_id": task_id,
                        "node_id": n.id,
                        "status": "claimed" if n.id in streaming else "pending",
                        "attempts": 1 if n.id in streaming else 0,
                        "claimed_at": now if n.id in streaming else None,
                        "lease_until": lease_until if n.id in streaming else None,
                    }
                    for n in nodes
                ],
            )
            notify_sql(con, [f"node:{n.id}" for n in nodes])
            self.audit.append(
                created_by,
                "task.create",
                "allow",
                target=task_id,
                details={
                    "kind": kind,
                    "nodes": [n.name for n in nodes],
                    "ttl_seconds": ttl_seconds,
                },
                con=con,
            )
        if leased:
            self._queue_delivery(task_id, envelope, leased)
        return task_id, [n.id for n in nodes]

    # -- streams open in this process -------------------------------------------------------

    def stream_opened(self, node_id: str) -> None:
        """Count an open stream of `node_id`: from now on new tasks are leased to it."""
        with self._lock:
            self._streams[node_id] += 1

    def stream_closed(self, node_id: str) -> list[str]:
        """Uncount a stream; returns the tasks queued for the node and never sent.

        Synchronous and without database work, so that it runs even while the stream's
        handler is being cancelled; the caller gives the returned tasks back (`release`).
        """
        with self._lock:
            self._streams[node_id] -= 1
            if self._streams[node_id] > 0:
                return []
            del self._streams[node_id]
            return [task_id for task_id, _ in self._delivery.pop(node_id, [])]

    def take_delivered(self, node_id: str) -> list[tuple[str, str]]:
        """The tasks `create` leased to this node's stream since the last call (no database).

        Each is (task id, ``{"task_id", "envelope"}`` as JSON text), encoded once per task
        for all its nodes.
        """
        with self._lock:
            return self._delivery.pop(node_id, [])

    def _queue_delivery(self, task_id: str, envelope: dict[str, Any], node_ids: list[str]) -> None:
        orphaned = []
        item = (task_id, json.dumps({"task_id": task_id, "envelope": envelope}))
        with self._lock:
            for node_id in node_ids:
                if node_id in self._streams:
                    self._delivery.setdefault(node_id, []).append(item)
                else:  # its stream closed since the task was leased
                    orphaned.append(node_id)
        for node_id in orphaned:
            self.release(node_id, [task_id])

    def release(self, node_id: str, task_ids: list[str]) -> None:
        """Return leased but undelivered targets to pending (their stream went away)."""
        with self.sessions.begin() as s:
            s.connection().execute(_RELEASE, {"k_node": node_id, "task_ids": task_ids})

    def view(self, task_id: str) -> TaskView:
        """The task and every target's status and result (called on each result's wake-up)."""
        with self.engine.connect() as con:
            task = con.execute(_TASK_VIEW, {"k_task": task_id}).first()
            if task is None:
                raise ChannelError(404, f"no task {task_id}")
            expired = task.expires_at <= utcnow()
            if not expired:
                rows = con.execute(_TARGETS_VIEW, {"k_task": task_id}).all()
        if expired:  # outside the read: SQLite's pool holds one connection
            self.expire_overdue(task_id)
            with self.engine.connect() as con:
                rows = con.execute(_TARGETS_VIEW, {"k_task": task_id}).all()
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
                    node_name=t.name,
                    status=t.status,
                    attempts=t.attempts,
                    finished_at=iso(t.finished_at) if t.finished_at else None,
                    result=t.result,
                    error=t.error,
                )
                for t in rows
            ],
        )

    def progress(self, task_id: str) -> int:
        """How many final statuses this process has recorded for the task (a hint only).

        Never less than what was committed before it was read, but it may run ahead of a
        view read a moment earlier: use it to decide when to read the view, not as the
        answer. Results recorded by another hub process do not count here.
        """
        return self._progress.get(task_id, 0)

    def recorded_elsewhere(self, key: str) -> None:
        """Another hub process recorded results of ``task:<id>``: make its waiters here
        read the task on their next wake-up (their progress count cannot see those)."""
        if key.startswith("task:"):
            self._advance([key[5:]], by=1_000_000)

    def _advance(self, task_ids: list[str], by: int = 1) -> None:
        """Count final statuses after their commit (see `progress`)."""
        with self._lock:
            for task_id in task_ids:
                self._progress[task_id] = self._progress.pop(task_id, 0) + by
            while len(self._progress) > MAX_PROGRESS:
                del self._progress[next(iter(self._progress))]

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
        self,
        node_id: str,
        nonce: str | None = None,
        release: bool = False,
        require_enrolled: bool = False,
    ) -> list[dict[str, Any]]:
        """Lease the node's deliverable targets and return their signed envelopes.

        `release` first returns what the node had claimed to pending: a restarted agent is
        working on nothing, so its tasks need not wait for their leases to run out.
        `require_enrolled` re-checks the node's status (a stream authenticated once, at its
        handshake, must stop receiving tasks when the node is revoked meanwhile).
        """
        with self.sessions.begin() as s:
            _record_contact(s, node_id, nonce)
            if release:
                s.execute(
                    sa.update(TaskTarget)
                    .where(TaskTarget.node_id == node_id, TaskTarget.status == "claimed")
                    .values(status="pending", lease_until=None)
                )
            out = self._claim(s.connection(), [node_id], require_enrolled)[node_id]
            if isinstance(out, ChannelError):
                raise out
        return out

    def claim_many(self, node_ids: list[str]) -> list[list[dict[str, Any]] | ChannelError]:
        """`claim` for several streaming nodes in one transaction (one commit for a fan-out).

        Each node's status is re-checked; a node no longer enrolled gets a ChannelError in
        its place and claims nothing.
        """
        with self.sessions.begin() as s:
            claimed = self._claim(s.connection(), list(dict.fromkeys(node_ids)), True)
        return [claimed[n] for n in node_ids]

    def _claim(
        self, con: sa.Connection, node_ids: list[str], require_enrolled: bool
    ) -> dict[str, list[dict[str, Any]] | ChannelError]:
        """Lease the deliverable targets of `node_ids` on `con` (inside its transaction)."""
        now = utcnow()
        out: dict[str, list[dict[str, Any]] | ChannelError] = {n: [] for n in node_ids}
        eligible = list(node_ids)
        if require_enrolled:
            statuses = dict(con.execute(_NODE_STATUSES, {"node_ids": node_ids}).all())
            eligible = []
            for n in node_ids:
                if statuses.get(n) == "enrolled":
                    eligible.append(n)
                else:
                    out[n] = ChannelError(
                        403, f"node {n} is {statuses.get(n, 'unknown')}; the hub refuses it"
                    )
            if not eligible:
                return out
        rows = con.execute(
            _CLAIMABLE, {"node_ids": eligible, "now": now, "limit": MAX_CLAIM * len(eligible)}
        ).all()
        taken: dict[str, list[str]] = {}
        for row in rows:
            tasks = out[row.node_id]
            assert isinstance(tasks, list)
            if len(tasks) >= MAX_CLAIM:
                continue
            if row.attempts >= self.max_attempts:
                con.execute(
                    sa.update(_target)
                    .where(_target.c.task_id == row.task_id, _target.c.node_id == row.node_id)
                    .values(
                        status="failed",
                        finished_at=now,
                        error=(
                            f"the node took the task {row.attempts} times without "
                            "answering; it may crash on it (see the node's log)"
                        ),
                    )
                )
                self.audit.append(
                    "hub",
                    "task.give_up",
                    "error",
                    target=row.task_id,
                    reason="lease expired too often",
                    details={"node": row.node_id},
                    con=con,
                )
                continue
            taken.setdefault(row.node_id, []).append(row.task_id)
            tasks.append({"task_id": row.task_id, "envelope": row.envelope})
        for node_id, task_ids in taken.items():
            con.execute(
                _LEASE,
                {
                    "k_node": node_id,
                    "task_ids": task_ids,
                    "now": now,
                    "lease_until": now + self.lease,
                },
            )
        return out

    def record_result(
        self, node: Node, task_id: str, envelope: SignedEnvelope, nonce: str | None = None
    ) -> bool:
        """Store a verified result. Returns False when it was a harmless duplicate."""
        payload, digest = self._verify_result(node, task_id, envelope)
        with self.sessions.begin() as s:
            _record_contact(s, node.id, nonce)
            outcome = self._record(s.connection(), [(node, task_id, envelope, payload, digest)])[0]
            if isinstance(outcome, ChannelError):
                raise outcome  # and roll back the request's nonce with it
        if outcome:
            self._advance([task_id])
        return outcome

    def record_results(
        self, results: list[tuple[Node, str, SignedEnvelope]]
    ) -> list[bool | ChannelError]:
        """`record_result` for several results in one transaction (streamed results).

        Each result is verified and checked on its own; one refused result (a ChannelError
        in its place) does not keep the others from being stored.
        """
        outcomes: list[bool | ChannelError] = []
        valid: list[tuple[Node, str, SignedEnvelope, dict[str, Any], str]] = []
        for node, task_id, envelope in results:
            try:
                valid.append(
                    (node, task_id, envelope, *self._verify_result(node, task_id, envelope))
                )
            except ChannelError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(True)  # placeholder, replaced below
        if valid:
            with self.engine.begin() as con:
                stored = self._record(con, valid)
            self._advance([v[1] for v, o in zip(valid, stored, strict=True) if o is True])
            recorded = iter(stored)
            outcomes = [o if isinstance(o, ChannelError) else next(recorded) for o in outcomes]
        return outcomes

    def _verify_result(
        self, node: Node, task_id: str, envelope: SignedEnvelope
    ) -> tuple[dict[str, Any], str]:
        """The payload of a result signed by `node` for `task_id`, and its digest.

        Refusals are audited. The digest (what makes results idempotent) is taken over the
        canonical bytes the signature was checked on, so the payload is serialised once.
        """
        if node.public_key is None:
            raise ChannelError(403, "node has no registered key")
        try:
            payload, canonical = envelope.verify_canonical(PublicKey.from_b64(node.public_key))
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
        if payload.get("status") not in NODE_RESULT_STATUSES:
            raise ChannelError(422, f"result status must be one of {sorted(NODE_RESULT_STATUSES)}")
        return payload, hashlib.sha256(canonical).hexdigest()

    def _record(
        self,
        con: sa.Connection,
        results: list[tuple[Node, str, SignedEnvelope, dict[str, Any], str]],
    ) -> list[bool | ChannelError]:
        """Store verified results on `con`, each with its audit entry, in its transaction.

        All checks of a result come before any write, so a refused result leaves nothing
        behind and the batch goes on with the next. The writes of the whole batch go at the
        end, as one executemany for the targets and one chained append for the audit
        entries: the same rows as one result at a time, a fraction of the statements.
        """
        now = utcnow()
        keys = [(task_id, node.id) for node, task_id, _, _, _ in results]
        wanted = set(keys)
        rows = con.execute(
            _TARGETS,
            {
                "task_ids": sorted({k[0] for k in keys}),
                "node_ids": sorted({k[1] for k in keys}),
            },
        ).all()
        kinds: dict[str, str] = {r.task_id: r.kind for r in rows}
        # (task, node) -> (status, result hash, deadline), updated as the batch goes on.
        targets = {
            (r.task_id, r.node_id): (r.status, r.result_hash, r.expires_at)
            for r in rows
            if (r.task_id, r.node_id) in wanted
        }
        owners = _dataset_owners(con, results, kinds)
        out: list[bool | ChannelError] = []
        finished: list[dict[str, Any]] = []
        entries: list[dict[str, Any]] = []
        for node, task_id, envelope, payload, digest in results:
            row = targets.get((task_id, node.id))
            if row is None:
                out.append(ChannelError(404, f"task {task_id} was not addressed to this node"))
                continue
            current, current_hash, expires_at = row
            if current in FINAL_STATUSES:
                if current_hash == digest:
                    out.append(False)
                elif current == "timed_out":
                    out.append(
                        ChannelError(410, f"task {task_id} timed out before this result came")
                    )
                else:
                    out.append(
                        ChannelError(
                            409,
                            f"task {task_id} already has a different result "
                            f"from this node ({current})",
                        )
                    )
                continue
            if expires_at <= now:  # the sweeper marks it timed_out
                out.append(ChannelError(410, f"task {task_id} timed out before this result came"))
                continue
            status = payload["status"]
            body, error = payload.get("body"), payload.get("error")
            problem: str | None = None
            if status == "succeeded":
                try:
                    body = validate_result(kinds[task_id], body)
                except TaskBodyError as exc:
                    problem = str(exc)
                else:
                    foreign = [
                        d
                        for d in result_datasets(kinds[task_id], body)
                        if owners.get(d) and node.id not in owners[d]
                    ]
                    if foreign:
                        problem = f"it names other nodes' datasets: {', '.join(foreign[:5])}"
                if problem is not None:
                    status, body = "failed", None
                    error = f"the hub refused this node's result: {problem}"[:2000]
            finished.append(
                {
                    "k_task": task_id,
                    "k_node": node.id,
                    "status": status,
                    "finished_at": now,
                    "result": body if status == "succeeded" else None,
                    "error": error if status != "succeeded" else None,
                    "result_envelope": envelope.model_dump(),
                    "result_hash": digest,
                }
            )
            entries.append(
                {
                    "actor": f"node:{node.name}",
                    "action": "task.result",
                    "decision": "allow"
                    if status == "succeeded"
                    else "deny"
                    if status == "refused" or problem is not None
                    else "error",
                    "target": task_id,
                    "reason": str(error or ""),
                    "details": {"status": status},
                }
            )
            targets[(task_id, node.id)] = (status, digest, expires_at)  # a repeat in this batch
            out.append(True)
        if finished:
            con.execute(_FINISH, finished)
            self.audit.append_many(entries, con)
            notify_sql(con, sorted({f"task:{f['k_task']}" for f in finished}))
        return out

    def touch(self, node_id: str) -> None:
        """Record that a node is connected (a stream has no per-request nonce to do it)."""
        with self.sessions.begin() as s:
            s.execute(sa.update(Node).where(Node.id == node_id).values(last_seen_at=utcnow()))

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
        # Any number of targets may have timed out: enough for a waiter to read the view.
        self._advance(overdue, by=1_000_000)
        return overdue

    def _deny(self, node: Node, task_id: str, what: str, reason: str) -> None:
        self.audit.append(f"node:{node.name}", what, "deny", target=task_id, reason=reason)


def _dataset_owners(
    con: sa.Connection,
    results: list[tuple[Node, str, SignedEnvelope, dict[str, Any], str]],
    kinds: dict[str, str],
) -> dict[str, set[str]]:
    """dataset id -> the nodes the catalogue lists it under, for the datasets these results
    speak for (one query per batch): a node may not answer for another node's dataset."""
    named: set[str] = set()
    for _node, task_id, _env, payload, _digest in results:
        body = payload.get("body")
        if payload.get("status") == "succeeded" and isinstance(body, dict):
            try:
                named.update(result_datasets(kinds.get(task_id, ""), body))
            except (KeyError, TypeError, AttributeError):
                continue  # malformed: validate_result names the problem
    if not named:
        return {}
    from oncofed.hub.catalogue.models import CatalogueDataset

    table = CatalogueDataset.__table__
    owners: dict[str, set[str]] = {}
    for dataset_id, node_id in con.execute(
        sa.select(table.c.dataset_id, table.c.node_id).where(
            table.c.dataset_id.in_(sorted(named)), table.c.node_id.is_not(None)
        )
    ):
        owners.setdefault(str(dataset_id), set()).add(str(node_id))
    return owners
