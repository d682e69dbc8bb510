"""In-process wake-ups for long polls: a new task for a node, a new result for a task.

Waiters still re-check the database at a short interval, so a task written by another hub
process (or a missed wake-up) is picked up late rather than never.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict


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
