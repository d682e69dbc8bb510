"""A hub that accepts the connection and then says nothing: a search gives up by its own
deadline (plus a few seconds), with a message that says so (issue 15: `search --timeout 5`
took 37 s to fail)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from oncofed.client.hub import ANSWER_GRACE_SECONDS, HubClient, HubError


@pytest.fixture
def frozen_hub() -> Iterator[str]:
    """A listening socket nobody serves: connections complete (the kernel's backlog), no
    answer ever comes."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def test_search_gives_up_by_its_deadline(frozen_hub: str) -> None:
    client = HubClient(frozen_hub, "ofa_token", timeout=60)
    started = time.monotonic()
    with pytest.raises(HubError) as caught:
        client.search(where="modality=CT", timeout_seconds=1)  # the vocabulary first
    took = time.monotonic() - started
    assert took < 1 + ANSWER_GRACE_SECONDS + 2, took
    assert "could not get an answer from the hub" in caught.value.message
    assert "within 4 s" in caught.value.message


def test_beacon_gives_up_by_its_deadline(frozen_hub: str) -> None:
    client = HubClient(frozen_hub, "ofa_token", timeout=60)
    started = time.monotonic()
    with pytest.raises(HubError):
        client.beacon("g_variants", timeout_seconds=1, geneId="KRAS")
    assert time.monotonic() - started < 1 + ANSWER_GRACE_SECONDS + 2
