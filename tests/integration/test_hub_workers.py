"""Two hub worker processes on one PostgreSQL database (issue 17, medium 5).

With several workers a node's stream, held by one process, used to miss tasks created in
another (18 of 400 targets never claimed under load), and the search limit was counted per
process (41 searches a minute instead of 30, 20 failed log-ins instead of 10).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from oncofed.audit import AuditLog
from oncofed.hub.db import make_engine
from oncofed.hub.models import TaskTarget
from oncofed.local import LocalFederation
from oncofed.settings import load_hub_settings, save_settings

pytestmark = pytest.mark.integration

AST = {"operand": "AND", "children": [
    {"key": "SNOMEDCT263495000", "type": "EQUALS", "value": "SNOMEDCT248152002"}]}  # fmt: skip


def test_two_workers_claim_every_target_and_share_the_limits(
    tmp_path: Path, pg_database: str
) -> None:
    fed = LocalFederation(tmp_path / "fed", database_url=pg_database, hub_workers=2)
    fed.init_hub("workers hub")
    settings = load_hub_settings(fed.hub.directory)
    settings.search_rate_per_minute = 16
    save_settings(settings)
    fed.start_hub()
    try:
        for i in (1, 2):
            fed.add_node(f"node-{i}", f"p{i}")
        headers = {"authorization": f"Bearer {fed.admin_token}"}

        def search(_: int) -> dict[str, Any]:
            # A connection of its own each time: the requests spread over both workers,
            # while each node's stream is held by one of them.
            r = httpx.post(f"{fed.hub.url}/api/search", json={"ast": AST, "timeout_seconds": 20},
                           headers=headers, timeout=60)  # fmt: skip
            assert r.status_code == 200, r.text
            return dict(r.json())

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(search, range(12)))
        assert all(a["nodes"]["answered"] == 2 and not a["partial"] for a in answers)
        engine = make_engine(pg_database)
        with engine.connect() as con:
            statuses = con.execute(sa.select(TaskTarget.status)).scalars().all()
        assert len(statuses) == 24 and set(statuses) == {"succeeded"}
        # Both workers ran (each writes hub.start), and the limit of 16 a minute is one.
        starts = [e for e in AuditLog(engine).entries() if e["action"] == "hub.start"]
        assert len(starts) == 2
        codes = [
            httpx.post(f"{fed.hub.url}/api/search?wait=false", json={"ast": AST},
                       headers=headers, timeout=30).status_code
            for _ in range(6)
        ]  # fmt: skip
        assert codes == [202] * 4 + [429] * 2
        # Log-in delays are counted in the database too: five free failures in all.
        wrong = {"username": "admin", "password": "wrong"}
        codes = [httpx.post(f"{fed.hub.url}/api/auth/token", data=wrong, timeout=30).status_code
                 for _ in range(8)]  # fmt: skip
        assert codes[:5] == [401] * 5 and 429 in codes[5:]  # delays 1, 2, 4 s
        engine.dispose()
    finally:
        fed.stop()
