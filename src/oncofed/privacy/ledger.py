"""Persistent disclosure state of a node: cached noise, privacy budgets, rate limits.

Kept in the node's ``state.db`` (SQLite) through SQLAlchemy Core; the caller hands in the
engine. Three tables of our own (:data:`metadata`):

- ``disclosure_noise``: one Laplace draw per (node, dataset, canonical query, statistic),
  drawn once with OpenDP and reused forever, so that repeating or reordering a query gives
  the same answer and averaging repeated answers learns nothing.
- ``disclosure_charge``: the epsilon a researcher spent, once per distinct query per UTC day.
- ``disclosure_request``: request times, for the per-minute rate limit.

Check-and-charge decides on the ledger's account of each researcher, read from these
tables once and then kept in memory under a lock: the node service is the one process
that admits requests (one long-lived ledger, ``NodeContext.privacy_ledger``), and a search
then costs no reads here, only the rows it adds. Those can ride on the caller's
transaction (``admit(defer=...)``): the task agent stores them with the task's outcome.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from oncofed.privacy.errors import BudgetExhausted, RateLimited
from oncofed.privacy.noise import LaplaceSampler
from oncofed.privacy.policy import DisclosurePolicy

metadata = MetaData()

noise_table = Table(
    "disclosure_noise",
    metadata,
    Column("node_id", String(200), primary_key=True),
    Column("dataset_id", String(200), primary_key=True),
    Column("query_hash", String(64), primary_key=True),
    Column("statistic", String(200), primary_key=True),
    Column("scale", Float, nullable=False),
    Column("noise", Integer, nullable=False),
    Column("drawn_at", Float, nullable=False),
    # The lookup of a query's draws: the primary key leads with the dataset, so without this
    # index every search read all the node's draws.
    Index("disclosure_noise_by_query", "node_id", "query_hash"),
)

charge_table = Table(
    "disclosure_charge",
    metadata,
    Column("requester", String(300), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("query_hash", String(64), primary_key=True),
    Column("epsilon", Float, nullable=False),
    Column("at", Float, nullable=False),
)

request_table = Table(
    "disclosure_request",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("requester", String(300), nullable=False),
    Column("at", Float, nullable=False),
    Index("disclosure_request_who_when", "requester", "at"),
)

RATE_WINDOW_S = 60.0
NOISE_CACHE_QUERIES = 4096  # queries whose draws a ledger keeps in memory

# Statements of the per-request path, built once: executing the same statement object with
# new parameters skips SQLAlchemy's expression building and cache-key walk (most of the
# Python cost of a search's admission and noise lookup).
_bp = bindparam
_INSERT_REQUEST = insert(request_table)
_PRUNE_REQUESTS = delete(request_table).where(
    request_table.c.requester == _bp("who"), request_table.c.at < _bp("before")
)
_SPENT = select(func.coalesce(func.sum(charge_table.c.epsilon), 0.0)).where(
    charge_table.c.requester == _bp("who"), charge_table.c.day == _bp("today")
)
_REQUEST_TIMES = select(request_table.c.at).where(
    request_table.c.requester == _bp("who"), request_table.c.at > _bp("since")
)
_CHARGES = select(charge_table.c.query_hash, charge_table.c.epsilon).where(
    charge_table.c.requester == _bp("who"), charge_table.c.day == _bp("today")
)
_INSERT_CHARGE = insert(charge_table)
_CACHED_NOISE = select(
    noise_table.c.dataset_id, noise_table.c.statistic, noise_table.c.noise
).where(and_(noise_table.c.node_id == _bp("node"), noise_table.c.query_hash == _bp("qhash")))


Write = Callable[[Connection], None]


@dataclass
class _Account:
    """One researcher as a ledger knows them: request times of the last minute (sorted)
    and the day's charges."""

    recent: list[float]
    day: str = ""
    spent: float = 0.0
    charged: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Admission:
    """A request let through: what it cost and what is left of the day's budget."""

    epsilon_charged: float
    spent: float
    remaining: float
    resets_at: dt.datetime


def _next_midnight(now: float) -> dt.datetime:
    day = dt.datetime.fromtimestamp(now, dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(), dt.UTC)


class PrivacyLedger:
    """Budgets, rate limits and cached noise over a caller-provided SQLAlchemy engine."""

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], float] = time.time,
        sampler: LaplaceSampler | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.sampler = sampler or LaplaceSampler()
        metadata.create_all(engine)
        # create_all makes indexes only with their table: add any a newer version defines.
        for index in noise_table.indexes:
            index.create(engine, checkfirst=True)
        # Draws already read, per (node, query): a draw is never changed or deleted once
        # stored, so a copy in memory stays true; bounded, the oldest forgotten first.
        self._noise: OrderedDict[tuple[str, str], dict[tuple[str, str], int]] = OrderedDict()
        self._noise_lock = threading.Lock()
        self._pruned: dict[str, float] = {}  # requester -> when its old requests were dropped
        # Researchers' rate windows and budgets (see admit); the database is read once each.
        self._accounts: dict[str, _Account] = {}
        self._accounts_lock = threading.Lock()

    # -- rate limit and budget -------------------------------------------------------------

    def admit(
        self,
        requester: str,
        query_hash: str,
        policy: DisclosurePolicy,
        defer: list[Write] | None = None,
    ) -> Admission:
        """Record a request and charge its epsilon, or raise RateLimited / BudgetExhausted.

        A query the researcher already asked today is free: its answer is cached noise and
        reveals nothing new. A refused request is not recorded and costs nothing.

        The decision is taken on this ledger's account of the researcher (read from the
        database once, then kept: the node service is the one process that admits), under
        a lock, so concurrent requests are counted exactly. Its rows are written at once,
        or, with ``defer``, appended there as a write for the caller's transaction (the
        task's outcome and audit entries): stored exactly when the answer is. A write that
        never commits leaves the account charged here and not in the database: it errs
        towards refusing.
        """
        now = self.clock()
        day = dt.datetime.fromtimestamp(now, dt.UTC).date().isoformat()
        resets_at = _next_midnight(now)
        with self._accounts_lock:
            account = self._account(requester, day, now)
            recent = account.recent
            del recent[: bisect.bisect_right(recent, now - RATE_WINDOW_S)]
            if len(recent) + 1 > policy.rate_limit_per_minute:
                raise RateLimited(
                    requester,
                    policy.rate_limit_per_minute,
                    max(1.0, RATE_WINDOW_S - (now - (recent[0] if recent else now))),
                )
            charge: dict[str, object] | None = None
            if query_hash in account.charged:
                epsilon = 0.0
            elif account.spent + policy.epsilon > policy.daily_budget + 1e-9:
                raise BudgetExhausted(requester, account.spent, policy.daily_budget, resets_at)
            else:
                epsilon = policy.epsilon
                account.spent += epsilon
                account.charged.add(query_hash)
                charge = {
                    "requester": requester,
                    "day": day,
                    "query_hash": query_hash,
                    "epsilon": epsilon,
                    "at": now,
                }
            bisect.insort(recent, now)
            spent = account.spent
            # Old request times only take space: dropped once a minute per requester.
            prune = now - self._pruned.get(requester, 0.0) > RATE_WINDOW_S
            if prune:
                self._pruned[requester] = now

        def write(conn: Connection) -> None:
            conn.execute(_INSERT_REQUEST, {"requester": requester, "at": now})
            if charge is not None:
                conn.execute(_INSERT_CHARGE, charge)
            if prune:
                conn.execute(
                    _PRUNE_REQUESTS, {"who": requester, "before": now - 10 * RATE_WINDOW_S}
                )

        if defer is None:
            with self.engine.begin() as conn:
                write(conn)
        else:
            defer.append(write)
        return Admission(epsilon, spent, max(0.0, policy.daily_budget - spent), resets_at)

    def _account(self, requester: str, day: str, now: float) -> _Account:
        """The researcher's account for ``day``, read from the database when new here."""
        account = self._accounts.get(requester)
        if account is None:
            with self.engine.connect() as conn:
                times = conn.execute(
                    _REQUEST_TIMES, {"who": requester, "since": now - RATE_WINDOW_S}
                ).scalars()
                account = _Account(recent=sorted(float(t) for t in times))
            self._accounts[requester] = account
        if account.day != day:
            with self.engine.connect() as conn:
                rows = conn.execute(_CHARGES, {"who": requester, "today": day}).all()
            account.day = day
            account.spent = float(sum(r[1] for r in rows))
            account.charged = {str(r[0]) for r in rows}
        return account

    def spent_today(self, requester: str) -> float:
        day = dt.datetime.fromtimestamp(self.clock(), dt.UTC).date().isoformat()
        with self.engine.connect() as conn:
            return float(conn.execute(_SPENT, {"who": requester, "today": day}).scalar_one())

    # -- cached noise ----------------------------------------------------------------------

    def noise(
        self, node_id: str, query_hash: str, wanted: Iterable[tuple[str, str, float]]
    ) -> dict[tuple[str, str], int]:
        """Noise for each (dataset, statistic, scale): the cached draw, or a new one.

        A cached draw is kept even if the policy's scale changed later (the scale it was
        drawn at is stored): re-drawing would hand out a fresh sample of the same count.
        """
        wanted = list(wanted)
        keys = {(d, s) for d, s, _ in wanted}
        cached = self._noise.get((node_id, query_hash))
        if cached is None or not keys <= cached.keys():
            cached = self._cached(node_id, query_hash)
        missing = [(d, s, scale) for d, s, scale in wanted if (d, s) not in cached]
        if missing:
            rows = [
                {
                    "node_id": node_id,
                    "dataset_id": d,
                    "query_hash": query_hash,
                    "statistic": s,
                    "scale": scale,
                    "noise": self.sampler.sample(scale),
                    "drawn_at": self.clock(),
                }
                for d, s, scale in missing
            ]
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(noise_table), rows)
            except IntegrityError:
                # Another request drew some of them first; theirs stand, insert the rest.
                for row in rows:
                    try:
                        with self.engine.begin() as conn:
                            conn.execute(insert(noise_table).values(**row))
                    except IntegrityError:
                        pass
            cached = self._cached(node_id, query_hash)
        return {k: v for k, v in cached.items() if k in keys}

    def _cached(self, node_id: str, query_hash: str) -> dict[tuple[str, str], int]:
        """The stored draws of a query, read from the database and remembered."""
        with self.engine.connect() as conn:
            rows = conn.execute(_CACHED_NOISE, {"node": node_id, "qhash": query_hash}).all()
        draws = {(r[0], r[1]): int(r[2]) for r in rows}
        with self._noise_lock:
            self._noise[(node_id, query_hash)] = draws
            self._noise.move_to_end((node_id, query_hash))
            while len(self._noise) > NOISE_CACHE_QUERIES:
                self._noise.popitem(last=False)
        return draws
