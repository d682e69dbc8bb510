"""Federated cohort search at the hub: admission, and combining the nodes' answers.

The hub adds nothing to what the nodes disclosed: a node's withheld count ("fewer than k")
stays withheld, so the federation-wide total is given as a range whose lower end counts only
disclosed numbers and whose upper end assumes every withheld count was just under its
threshold. A node that timed out, refused or failed is listed with its status instead of
silently shrinking the total.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from oncofed.hub.channel import TaskView
from oncofed.hub.models import FINAL_STATUSES, Task
from oncofed.security.envelope import utcnow

SEARCH_KIND = "search.count"

_task: sa.Table = Task.__table__  # type: ignore[assignment]
SEARCH_TIER = (SEARCH_KIND, "beacon.query")
"""Kinds every node answers from its data: counted against a researcher's search limits."""
_MINUTE = sa.bindparam("minute", type_=_task.c.created_at.type)
# A requester's searches of the last day and of the last minute (with the oldest of those),
# answered from the index ix_task_requester. Counted in the database, not in a process:
# several hub workers or hosts share one limit.
SEARCHES_SINCE = sa.select(
    sa.func.count(),
    sa.func.coalesce(sa.func.sum(sa.case((_task.c.created_at > _MINUTE, 1), else_=0)), 0),
    sa.func.min(sa.case((_task.c.created_at > _MINUTE, _task.c.created_at))),
).where(
    _task.c.created_by == sa.bindparam("who"),
    _task.c.kind.in_(SEARCH_TIER),
    _task.c.created_at > sa.bindparam("since", type_=_task.c.created_at.type),
)


class SearchRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class SearchAdmission:
    """The hub's own per-researcher limits, in front of each node's: searches (and Beacon
    queries) per minute and per day, counted from the task table, so that they hold across
    restarts and across every hub process on one database."""

    def __init__(self, per_minute: int, per_day: int) -> None:
        self.per_minute = per_minute
        self.per_day = per_day

    def admit(self, sessions: sessionmaker[Session], username: str) -> None:
        now = utcnow()
        engine: sa.Engine = sessions.kw["bind"]
        with engine.connect() as con:
            today, minute, oldest = con.execute(
                SEARCHES_SINCE,
                {"who": username, "since": now - timedelta(days=1),
                 "minute": now - timedelta(seconds=60)},
            ).one()  # fmt: skip
        if int(minute) >= self.per_minute:
            wait = 60.0
            if oldest is not None:
                wait = 60 - (now - oldest).total_seconds()
            raise SearchRefused(
                429,
                f"{username} has made {self.per_minute} searches in the last minute, the "
                f"most this hub allows; try again in {max(1.0, wait):.0f} s",
            )
        if int(today) >= self.per_day:
            raise SearchRefused(
                429,
                f"{username} has made {today} searches in the last 24 hours, the most this "
                "hub allows; ask the hub admin to raise search_daily_limit if you need more",
            )


def combine(view: TaskView) -> dict[str, Any]:
    """Per-provider answers, each node's status, and the federation-wide totals."""
    providers: list[dict[str, Any]] = []
    collections: list[dict[str, Any]] = []
    low = high = studies_low = studies_high = 0
    for target in view.targets:
        entry: dict[str, Any] = {"provider": target.node_name, "status": target.status}
        if target.status == "succeeded" and target.result is not None:
            node_collections = []
            for c in target.result.get("collections", []):
                c = {**c, "provider": target.node_name}
                node_collections.append(c)
                subjects, below = c.get("subjects_count"), c.get("subjects_count_below")
                if subjects is not None:
                    low += int(subjects)
                    high += int(subjects)
                elif below:
                    high += int(below) - 1
                studies, sbelow = c.get("studies_count"), c.get("studies_count_below")
                if studies is not None:
                    studies_low += int(studies)
                    studies_high += int(studies)
                elif sbelow:
                    studies_high += int(sbelow) - 1
            entry["collections"] = node_collections
            collections.extend(node_collections)
        elif target.error:
            entry["error"] = target.error
        providers.append(entry)
    answered = sum(1 for t in view.targets if t.status == "succeeded")
    return {
        "id": view.id,
        "ast": view.body.get("ast"),
        "created_at": view.created_at,
        "deadline": view.expires_at,
        "complete": view.complete,
        # Some node did not answer (timed out, refused, failed): the totals are partial.
        "partial": answered < len(view.targets),
        "nodes": {
            "total": len(view.targets),
            "answered": answered,
            "pending": sum(1 for t in view.targets if t.status not in FINAL_STATUSES),
            "statuses": {t.node_name: t.status for t in view.targets},
        },
        "total": {
            "subjects": {"min": low, "max": high, "exact": low == high},
            "studies": {
                "min": studies_low,
                "max": studies_high,
                "exact": studies_low == studies_high,
            },
        },
        "providers": providers,
        "collections": collections,
    }
