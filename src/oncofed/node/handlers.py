"""The node's task-handler registry: what a node can do for each task kind.

A capability (`oncofed.node.tasks` for node.info and search.count, `node.publish` for the
catalogue, `node.beacon.task` for Beacon queries, and Tier 3's analyses and learning)
registers its kinds with `@handler(kind)` in its own module and is named in `CAPABILITIES`.
This module imports none of them at import time, so every capability can import it without
a circle; `registered()` loads them all once, for the agent.

A handler receives the node context, the validated body and the task's `TaskMeta`, and
returns the result body, which must already be safe to leave the node (aggregates that
passed disclosure control), or raises `TaskRefused` with the reason for the requester.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from oncofed.node.context import NodeContext

# The modules whose `@handler`s make up the node's capabilities.
CAPABILITIES = (
    "oncofed.node.tasks",
    "oncofed.node.publish",
    "oncofed.node.beacon.task",
    "oncofed.node.analysis",
    "oncofed.node.learning",  # issue 20: fl.round, fl.validate
)


@dataclass(frozen=True)
class TaskMeta:
    """Who asked (as the hub signed it) and which task this is.

    A handler that has a decision to audit can leave it in `audit_entries` (keyword
    arguments of :meth:`oncofed.audit.AuditLog.append`) instead of appending it itself: the
    agent writes them in the transaction that records the task's outcome, so they cost no
    commit of their own and exist exactly when the outcome does. Entries are written
    whether the handler returns or raises. `writes` work the same way for other rows of
    the node's state database (a search's budget charge): each runs on the connection of
    that transaction.
    """

    task_id: str
    kind: str
    requester: str
    audit_entries: list[dict[str, Any]] = field(default_factory=list)
    writes: list[Callable[[sa.Connection], None]] = field(default_factory=list)


class TaskRefused(Exception):
    """The node declines this task under its policy; the reason goes back to the requester."""


Handler = Callable[["NodeContext", dict[str, Any], TaskMeta], dict[str, Any]]
HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn

    return register


def registered() -> Mapping[str, Handler]:
    """Every capability's handlers by kind (importing the capability modules on first use)."""
    for module in CAPABILITIES:
        importlib.import_module(module)
    return HANDLERS
