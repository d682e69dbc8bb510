"""The search event stream ends with an `error` event, not a broken connection, when the
id turns out not to be a search after the stream started."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_negotiation import Hub, start_hub

pytestmark = pytest.mark.integration


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from start_hub(tmp_path / "hub")


def test_events_of_a_task_that_is_not_a_search(hub: Hub) -> None:
    tid = hub.call("POST", "/api/tasks", "alice", json={"kind": "node.info"}).json()["id"]
    r = hub.call("GET", f"/api/search/{tid}/events", "alice")
    assert r.status_code == 200
    assert r.text.startswith("event: error\n") and f"no search {tid}" in r.text
    # Someone else's id is not theirs to follow at all.
    assert hub.call("GET", f"/api/search/{tid}/events", "bob").status_code == 404
