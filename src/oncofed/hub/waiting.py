"""Waiting for a task's results: the requester's side of the channel, shared by the task API
and federated search.

A fan-out to N nodes wakes the waiter once per recorded result batch. Reading the task on
every wake-up made a search read its ten results three times or more; instead the waiter
counts what this process recorded since its last read (`Channel.progress`) and reads only
when that can make up what is still missing. The database is still read every
RECHECK_SECONDS (results recorded by another hub process, a missed wake-up) and at the
deadline, so the hint can make the answer faster but never wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi.concurrency import run_in_threadpool

from oncofed.hub.channel import TaskView
from oncofed.hub.context import HubContext

RECHECK_SECONDS = 1.0


async def wait_for_results(
    ctx: HubContext,
    task_id: str,
    seconds: float,
    *,
    wanted: int | None = None,
    targets: int | None = None,
    check: Callable[[TaskView], None] | None = None,
) -> TaskView:
    """The task once `wanted` (default: all) targets have a final status, or at the deadline.

    ``targets``: how many nodes the task went to, when the caller has just created it; the
    first read then waits until results can be complete. ``check`` sees the first view read
    (an ownership or kind check that raises). ChannelError (an unknown task) propagates.
    """
    deadline = time.monotonic() + seconds
    key = f"task:{task_id}"
    channel = ctx.channel
    view: TaskView | None = None
    # Final statuses still missing, and the progress count at the last read.
    missing = targets if targets is not None and wanted is None else 0
    counted = 0
    read_now = targets is None or wanted is not None
    while True:
        ev = ctx.notifier.event(key)
        progress = channel.progress(task_id)  # taken before the read: never ahead of it
        remaining = deadline - time.monotonic()
        if read_now or progress - counted >= missing or remaining <= 0:
            first = view is None
            view = await run_in_threadpool(channel.view, task_id)
            if first and check is not None:
                check(view)
            goal = len(view.targets) if wanted is None else min(wanted, len(view.targets))
            missing, counted = goal - view.done, progress
            if missing <= 0 or remaining <= 0:
                return view
        read_now = not await ctx.notifier.wait(ev, min(remaining, RECHECK_SECONDS))
