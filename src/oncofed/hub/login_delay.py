"""Log-in limiting by exponential delay per (account, address) pair: never a lock-out.

The first ``free`` wrong passwords of a pair cost nothing; after that each attempt has to
wait ``base * 2**k`` seconds (k = failures beyond the free ones, at most ``longest``) from
the last failure. An attempt during the wait is refused unchecked (429 with the seconds
left); after it, the right password logs in and clears the pair. One attacker therefore
slows down only the pairs they try: the account from other addresses and other accounts
from theirs are untouched, so nobody can lock anybody out (the old limit locked an
account, and everyone behind one proxy address, after ten failures a minute).

The failures are kept in the hub's database (table ``login_failure``, made here like the
node's privacy ledger makes its own), so every hub process and host counts the same
attempts: counted per process, N workers allowed N times as many. A pair is forgotten a
day after its last failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

metadata = sa.MetaData()
failures = sa.Table(
    "login_failure",
    metadata,
    sa.Column("username", sa.String(200), primary_key=True),
    sa.Column("address", sa.String(100), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_at", sa.Float, nullable=False),
)
FORGET_SECONDS = 86_400.0
_PAIR = (failures.c.username == sa.bindparam("who")) & (failures.c.address == sa.bindparam("addr"))
_READ = sa.select(failures.c.failures, failures.c.last_at).where(_PAIR)
_NOW = sa.bindparam("now", type_=sa.Float)
# One more failure, or the first again when the pair's last one is a day old.
_BUMP = (
    sa.update(failures)
    .where(_PAIR)
    .values(
        failures=sa.case(
            (failures.c.last_at < _NOW - FORGET_SECONDS, 1), else_=failures.c.failures + 1
        ),
        last_at=_NOW,
    )
)
_CLEAR = sa.delete(failures).where(_PAIR)
_FORGET = sa.delete(failures).where(failures.c.last_at < sa.bindparam("before"))


class LoginDelay:
    """The delays of one hub (see the module's docstring). Blocking: call from a thread."""

    def __init__(
        self,
        engine: sa.Engine,
        free: int = 5,
        base: float = 1.0,
        longest: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.free, self.base, self.longest, self.clock = free, base, longest, clock
        metadata.create_all(engine)
        self._forgotten = 0.0

    def wait(self, username: str, address: str) -> float:
        """Seconds before this pair may try again (0: now)."""
        with self.engine.connect() as con:
            row = con.execute(_READ, {"who": username, "addr": address[:100]}).first()
        if row is None:
            return 0.0
        count, last = int(row[0]), float(row[1])
        elapsed = self.clock() - last
        if count < self.free or elapsed > FORGET_SECONDS:
            return 0.0
        delay = min(self.longest, self.base * 2 ** (count - self.free))
        return max(0.0, delay - elapsed)

    def fail(self, username: str, address: str) -> None:
        now = self.clock()
        key = {"who": username, "addr": address[:100]}
        with self.engine.begin() as con:
            if now - self._forgotten > 3600:  # old pairs go hourly
                self._forgotten = now
                con.execute(_FORGET, {"before": now - FORGET_SECONDS})
            if con.execute(_BUMP, {**key, "now": now}).rowcount:
                return
            try:
                with con.begin_nested():
                    con.execute(
                        sa.insert(failures).values(
                            username=username, address=address[:100], failures=1, last_at=now
                        )
                    )
            except IntegrityError:  # another process inserted the pair first
                con.execute(_BUMP, {**key, "now": now})

    def succeed(self, username: str, address: str) -> None:
        with self.engine.begin() as con:
            con.execute(_CLEAR, {"who": username, "addr": address[:100]})
