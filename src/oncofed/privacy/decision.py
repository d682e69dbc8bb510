"""The record of one search decision, for the node's audit log (every search, answered or
refused, produces one)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel


class DisclosureDecision(BaseModel):
    """Who asked what, what the node decided, and why."""

    at: dt.datetime
    node_id: str
    requester: str
    query_hash: str | None = None
    query: dict[str, Any] | None = None  # canonical form; raw input when invalid
    decision: Literal["answered", "refused"]
    reason: str  # answered | invalid_query | rate_limited | budget_exhausted | error
    detail: str = ""
    epsilon_charged: float = 0.0
    budget_spent: float | None = None
    budget_remaining: float | None = None
    datasets: int = 0
    counts_released: int = 0
    counts_withheld: int = 0
