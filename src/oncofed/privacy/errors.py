"""Why a node refuses to answer a search."""

from __future__ import annotations

import datetime as dt


class DisclosureRefused(Exception):
    """The node's disclosure policy refuses this request; ``reason`` is machine-readable."""

    reason = "refused"


class RateLimited(DisclosureRefused):
    """Too many searches by one researcher within a minute."""

    reason = "rate_limited"

    def __init__(self, requester: str, limit: int, retry_after_s: float) -> None:
        self.requester = requester
        self.limit = limit
        self.retry_after_s = retry_after_s
        super().__init__(
            f"{requester} has made {limit} searches in the last minute, the most this node "
            f"allows; try again in {retry_after_s:.0f} s"
        )


class BudgetExhausted(DisclosureRefused):
    """The researcher's privacy budget for the day is spent; it resets at ``resets_at``."""

    reason = "budget_exhausted"

    def __init__(self, requester: str, spent: float, budget: float, resets_at: dt.datetime) -> None:
        self.requester = requester
        self.spent = spent
        self.budget = budget
        self.resets_at = resets_at
        super().__init__(
            f"{requester} has spent {spent:g} of the daily privacy budget of {budget:g} at "
            f"this node; new searches are answered again after {resets_at.isoformat()} "
            "(repeating a search already answered today costs nothing)"
        )
