"""Wake-ups for long polls and streams: a new task for a node, a new result for a task.

In one process they are asyncio events. Several hub processes (workers, hosts) on one
PostgreSQL database also wake each other: the transaction that creates a task or stores a
result sends ``NOTIFY oncofed_wake`` with the keys (:func:`notify_sql`, delivered at
commit), and every process listens (:func:`listen`) and sets its local events, skipping
its own. Waiters still re-check the database at a short interval, so a missed wake-up
costs latency, never a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable

import sqlalchemy as sa

log = logging.getLogger("oncofed.hub.notify")
CHANNEL = "oncofed_wake"
# This process's mark on its own notifications (it wakes its own waiters directly).
ORIGIN = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
_NOTIFY = sa.text(
    f"SELECT pg_notify('{CHANNEL}', :origin || ' ' || k) FROM unnest(CAST(:keys AS text[])) AS k"
)


def notify_sql(con: sa.Connection, keys: Iterable[str]) -> None:
    """Tell the other hub processes (PostgreSQL only) to wake ``keys``, at commit."""
    keys = list(keys)
    if keys and con.dialect.name == "postgresql":
        con.execute(_NOTIFY, {"origin": ORIGIN, "keys": keys})


async def listen(
    notifier: Notifier,
    url: str,
    ready: asyncio.Event | None = None,
    before_wake: Callable[[str], None] | None = None,
) -> None:
    """Relay the other processes' wake-ups to this one's waiters; reconnects on failure.

    ``before_wake`` sees each key first (the channel marks a task's results as worth
    reading: they were recorded elsewhere, where this process's progress count misses them).
    """
    import psycopg

    conninfo = sa.engine.make_url(url).set(drivername="postgresql")
    dsn = conninfo.render_as_string(hide_password=False)
    backoff = 0.5
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                backoff = 0.5
                if ready is not None:
                    ready.set()
                async for note in conn.notifies():
                    origin, _, key = note.payload.partition(" ")
                    if origin != ORIGIN:
                        if before_wake is not None:
                            before_wake(key)
                        notifier.wake(key)
        except asyncio.CancelledError:
            raise
        except Exception:  # the database restarted, say: reconnect, waiters re-check meanwhile
            log.warning("wake-up listener lost its connection; reconnecting", exc_info=True)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


class Notifier:
    def __init__(self) -> None:
        self._events: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    def event(self, key: str) -> asyncio.Event:
        """Take the event *before* checking the database, then wait on it."""
        ev = self._events[key]
        ev.clear()
        return ev

    def wake(self, key: str) -> None:
        ev = self._events.get(key)
        if ev is not None:
            ev.set()

    @staticmethod
    async def wait(ev: asyncio.Event, timeout: float) -> bool:
        """Wait until `ev` is set or `timeout` s pass; True when it was set (a wake-up)."""
        if ev.is_set():
            return True
        # asyncio.timeout, not wait_for: no extra task per wait (a stream waits after every
        # message it sends).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(timeout, 0.0)):
                await ev.wait()
        return ev.is_set()
