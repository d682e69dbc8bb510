"""The node's own operational state: task ledger, audit log (SQLite next to the store).

Kept apart from the DuckDB data store because it is written on every task and must be
writable while an ingest holds the data store, and because SQLite's WAL gives the
multi-process, crash-safe small writes this needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from oncofed.audit import AuditLog

metadata = sa.MetaData()

# One row per task id the node has seen: what makes it execute each task at most once
# and re-send a result the hub did not get.
task_ledger = sa.Table(
    "task_ledger",
    metadata,
    sa.Column("task_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(100), nullable=False),
    sa.Column("received_at", sa.String(32), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # running|succeeded|failed|refused
    sa.Column("result_envelope", sa.JSON),
    sa.Column("posted", sa.Boolean, nullable=False, default=False),
    sa.Column("expires_at", sa.String(32), nullable=False),
)


def state_engine(path: Path) -> sa.Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        f"sqlite:///{path}", connect_args={"timeout": 30, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_con: Any, _record: Any) -> None:
        cur = dbapi_con.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    metadata.create_all(engine)
    AuditLog(engine).ensure_tables()
    return engine
