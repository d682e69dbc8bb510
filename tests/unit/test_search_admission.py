"""The hub's own per-researcher search limits, in front of each node's (issue 5)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from oncofed.hub.admin import init_hub
from oncofed.hub.admission import admit_task
from oncofed.hub.app import build_context
from oncofed.hub.context import HubContext
from oncofed.hub.models import Task
from oncofed.hub.search import SEARCH_KIND, SearchAdmission, SearchRefused
from oncofed.security.envelope import utcnow
from oncofed.settings import load_hub_settings


@pytest.fixture
def ctx(tmp_path: Path) -> HubContext:
    init_hub(tmp_path / "hub", "admission hub", "127.0.0.1", 8000)
    return build_context(load_hub_settings(tmp_path / "hub"))


def add_searches(ctx: HubContext, who: str, n: int, hours_ago: float = 1) -> None:
    at = utcnow() - timedelta(hours=hours_ago)
    with ctx.sessions.begin() as s:
        for _ in range(n):
            s.add(
                Task(
                    id=uuid.uuid4().hex,
                    kind=SEARCH_KIND,
                    body={},
                    created_by=who,
                    created_at=at,
                    expires_at=at + timedelta(seconds=10),
                    envelope={},
                )
            )


def test_rate_limit_refuses_the_search_over_the_minute_and_says_when_to_retry(
    ctx: HubContext,
) -> None:
    admission = SearchAdmission(per_minute=2, per_day=100)
    admission.admit(ctx.sessions, "alice")
    admission.admit(ctx.sessions, "alice")
    with pytest.raises(SearchRefused) as refused:
        admission.admit(ctx.sessions, "alice")
    assert refused.value.status == 429
    assert "2 searches in the last minute" in refused.value.message
    assert "try again in" in refused.value.message
    admission.admit(ctx.sessions, "bob")  # another researcher has a limit of their own


def test_daily_limit_counts_the_last_24_hours_from_the_database(ctx: HubContext) -> None:
    add_searches(ctx, "alice", 3)
    add_searches(ctx, "alice", 5, hours_ago=30)  # yesterday's do not count
    add_searches(ctx, "bob", 5)
    # A fresh admission object (a restarted hub) still sees today's searches.
    admission = SearchAdmission(per_minute=100, per_day=4)
    admission.admit(ctx.sessions, "alice")  # the 4th today
    add_searches(ctx, "alice", 1)
    with pytest.raises(SearchRefused) as refused:
        admission.admit(ctx.sessions, "alice")
    assert refused.value.status == 429
    assert "search_daily_limit" in refused.value.message


def test_a_refused_search_creates_no_task_and_is_audited(ctx: HubContext) -> None:
    ctx.search_admission = SearchAdmission(per_minute=100, per_day=1)
    add_searches(ctx, "alice", 1)
    ast = {
        "operand": "AND",
        "children": [{"key": "RID10311", "type": "EQUALS", "value": "RID10321"}],
    }
    with ctx.sessions() as s:
        before = s.query(Task).count()
    with pytest.raises(SearchRefused):
        admit_task(ctx, "alice", SEARCH_KIND, {"ast": ast}, None, 10)
    with ctx.sessions() as s:
        assert s.query(Task).count() == before
    last = list(ctx.audit.entries())[-1]
    assert (last["actor"], last["action"], last["decision"]) == ("alice", "search", "deny")
    assert "search_daily_limit" in last["reason"]
