"""The hash-chained audit log kept by the hub and by every node.

Each entry stores the SHA-256 of its own content together with the hash of the entry before
it, so editing, inserting or deleting any entry breaks the chain from that point on. The
newest hash is also kept in a separate one-row table, which makes truncating the tail of the
log detectable too. `verify` walks the chain and names every entry that does not fit.

The log lives in an SQL database through SQLAlchemy Core: the hub's own database (SQLite or
PostgreSQL) or the node's state file. Appends are serialised by a transaction on the head
row, so two writers can never fork the chain.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from oncofed.security.envelope import canonical_json, iso, utcnow

metadata = sa.MetaData()

audit_entry = sa.Table(
    "audit_entry",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("target", sa.String(400), nullable=False, server_default=""),
    sa.Column("decision", sa.String(20), nullable=False),  # allow | deny | info | error
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("details", sa.Text, nullable=False, server_default="{}"),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

GENESIS = "0" * 64
DECISIONS = {"allow", "deny", "info", "error"}

# An append runs on hot paths (every task and result); its statements are built once so that
# each call only binds parameters (SQLAlchemy then reuses the compiled form).
_BUMP_HEAD_BY = (
    sa.update(audit_head)
    .where(audit_head.c.id == 1)
    .values(seq=audit_head.c.seq + sa.bindparam("n", type_=sa.Integer()))
    .returning(audit_head.c.seq, audit_head.c.hash)
)
_FIRST_HEAD_AT = sa.insert(audit_head).values(id=1, seq=sa.bindparam("n"), hash=GENESIS)
_INSERT_ENTRY = sa.insert(audit_entry)
_SET_HEAD_HASH = (
    sa.update(audit_head).where(audit_head.c.id == 1).values(hash=sa.bindparam("new_hash"))
)


def entry_hash(row: dict[str, Any]) -> str:
    content = {
        k: row[k]
        for k in (
            "seq",
            "at",
            "actor",
            "action",
            "target",
            "decision",
            "reason",
            "details",
            "prev_hash",
        )
    }
    return hashlib.sha256(canonical_json(content)).hexdigest()


@dataclass(frozen=True)
class AuditProblem:
    seq: int
    problem: str


class AuditLog:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def ensure_tables(self) -> None:
        metadata.create_all(self.engine, tables=[audit_entry, audit_head])

    def append(
        self,
        actor: str,
        action: str,
        decision: str,
        target: str = "",
        reason: str = "",
        details: dict[str, Any] | None = None,
        con: sa.Connection | None = None,
    ) -> int:
        """Append one entry; pass `con` to make it part of the caller's transaction.

        Writing the entry in the same transaction as the decision it records means neither
        can exist without the other, and saves a commit on the hot path.
        """
        entry = {
            "actor": actor,
            "action": action,
            "decision": decision,
            "target": target,
            "reason": reason,
            "details": details,
        }
        if con is None:
            with self.engine.begin() as own:
                return self.append_many([entry], own)
        return self.append_many([entry], con)

    def append_many(self, entries: list[dict[str, Any]], con: sa.Connection) -> int:
        """Append several entries (keyword arguments of `append`) in the caller's transaction.

        The chain is the same as from one `append` per entry, but the head moves once and
        the entries go in one executemany: a batch of channel results costs three
        statements instead of three per result. Inside the caller's transaction, so a crash
        leaves either all of them with their decisions or none. Moving the head first takes
        its row lock (PostgreSQL) or the database write lock (SQLite), so concurrent appends
        queue there instead of forking the chain. Returns the last entry's sequence number.
        """
        if not entries:
            return 0
        for entry in entries:
            if entry["decision"] not in DECISIONS:
                raise ValueError(
                    f"audit decision must be one of {sorted(DECISIONS)}, not {entry['decision']}"
                )
        n = len(entries)
        head = con.execute(_BUMP_HEAD_BY, {"n": n}).first()
        if head is None:
            con.execute(_FIRST_HEAD_AT, {"n": n})
            last, prev_hash = n, GENESIS
        else:
            last, prev_hash = int(head.seq), str(head.hash)
        at = iso(utcnow())
        rows = []
        for seq, entry in enumerate(entries, start=last - n + 1):
            row: dict[str, Any] = {
                "seq": seq,
                "at": at,
                "actor": entry["actor"][:200],
                "action": entry["action"][:100],
                "target": entry.get("target", "")[:400],
                "decision": entry["decision"],
                "reason": entry.get("reason", ""),
                "details": json.dumps(entry.get("details") or {}, sort_keys=True, default=str),
                "prev_hash": prev_hash,
            }
            row["hash"] = prev_hash = entry_hash(row)
            rows.append(row)
        con.execute(_INSERT_ENTRY, rows)
        con.execute(_SET_HEAD_HASH, {"new_hash": prev_hash})
        return last

    def entries(self, since: int = 0, limit: int | None = None) -> Iterator[dict[str, Any]]:
        query = sa.select(audit_entry).where(audit_entry.c.seq > since).order_by(audit_entry.c.seq)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as con:
            for r in con.execute(query):
                yield dict(r._mapping)

    def verify(self) -> list[AuditProblem]:
        """Every entry that was edited, inserted, deleted or reordered, by sequence number."""
        problems: list[AuditProblem] = []
        prev_hash, expected_seq = GENESIS, 1
        for row in self.entries():
            if row["seq"] != expected_seq:
                problems.append(
                    AuditProblem(
                        expected_seq,
                        f"entries {expected_seq}..{row['seq'] - 1} are missing (deleted)",
                    )
                )
            if row["prev_hash"] != prev_hash:
                problems.append(AuditProblem(row["seq"], "does not link to the entry before it"))
            if entry_hash(row) != row["hash"]:
                problems.append(
                    AuditProblem(row["seq"], "content was changed after it was written")
                )
            prev_hash, expected_seq = row["hash"], row["seq"] + 1
        with self.engine.connect() as con:
            head = con.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).first()
        last_seq = expected_seq - 1
        if head is not None and (head.seq != last_seq or head.hash != prev_hash):
            problems.append(
                AuditProblem(
                    head.seq,
                    f"the log ends at entry {last_seq} but "
                    f"entry {head.seq} was written (tail deleted or replaced)",
                )
            )
        return problems

    def export(self, path: Path) -> int:
        """Write the log as JSON Lines for an auditor (each line verifiable on its own)."""
        count = 0
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for row in self.entries():
                fh.write(json.dumps(row, sort_keys=True) + "\n")
                count += 1
        tmp.replace(path)
        return count


class RefusalLog:
    """Refusals of one kind from one source, written once a minute instead of each time.

    An anonymous client hammering a rate limit used to cost one audit entry (a hash-chained
    write) per refused request: 500 in 4.4 s. The first refusal of each (source, action,
    reason) in a window is written as usual; the ones after it in that window are counted
    and the count goes into the next entry written for that key (``details.repeated``:
    refusals not written one by one since the entry before). Nothing is lost but the
    repetition; an allowed request is always written on its own.
    """

    def __init__(
        self,
        audit: AuditLog,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        keys: int = 10_000,
    ) -> None:
        self.audit, self.window, self.clock, self.keys = audit, window, clock, keys
        self._windows: OrderedDict[tuple[str, str, str], tuple[float, int]] = OrderedDict()
        self._lock = threading.Lock()

    def deny(
        self,
        actor: str,
        action: str,
        kind: str,
        target: str = "",
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> bool:
        """Record a refusal of ``kind`` (a machine-readable reason); True when written now."""
        key = (actor, action, kind)
        now = self.clock()
        with self._lock:
            start, repeated = self._windows.pop(key, (None, 0))
            if start is not None and now - start < self.window:
                self._windows[key] = (start, repeated + 1)
                return False
            self._windows[key] = (now, 0)
            while len(self._windows) > self.keys:
                self._windows.popitem(last=False)
        extra = {"repeated": repeated} if repeated else {}
        self.audit.append(actor, action, "deny", target, reason, {**(details or {}), **extra})
        return True
