"""Repeated refusals are audited once a minute with a count, not once each (issue 17:
500 refused anonymous requests wrote 500 hash-chained entries in 4.4 s)."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from oncofed.audit import RefusalLog
from tests.unit.test_beacon_disclosure import _node


def test_a_hammered_rate_limit_costs_one_entry_a_minute(tmp_path: Path) -> None:
    ctx, app = _node(tmp_path, "[disclosure]\ndaily_budget = 1000.0\nrate_limit_per_minute = 5\n")
    try:
        with TestClient(app) as client:
            codes = [client.get("/beacon/v2/individuals").status_code for _ in range(100)]
        assert codes.count(429) == 95
        entries = [e for e in ctx.audit.entries() if e["action"] == "beacon.count"]
        assert [e["decision"] for e in entries] == ["allow"] * 5 + ["deny"]

        now = [0.0]
        log = RefusalLog(ctx.audit, window=60, clock=lambda: now[0])
        for t in (0, 1, 2, 59, 61, 62, 200):
            now[0] = t
            log.deny("beacon@x", "beacon.count", "rate_limited", "q", "too many")
        log.deny("beacon@y", "beacon.count", "rate_limited", "q", "too many")  # another source
        written = [e for e in ctx.audit.entries() if e["actor"] in ("beacon@x", "beacon@y")]
        repeated = [json.loads(e["details"]).get("repeated", 0) for e in written]
        assert [e["actor"] for e in written] == ["beacon@x"] * 3 + ["beacon@y"]
        assert repeated == [0, 3, 1, 0]  # every refusal accounted for: 3 + 3 + 1 + 1 = 8
    finally:
        ctx.close()
