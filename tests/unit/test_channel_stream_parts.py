"""Pieces of the channel's stream transport that need no hub process."""

from __future__ import annotations

import asyncio
import threading

import pytest

from oncofed.hub.channel import ChannelError
from oncofed.hub.routes.channel import Batcher
from oncofed.node.agent import StreamRefused


def test_batcher_groups_what_arrives_while_busy_and_fails_items_alone() -> None:
    batches: list[list[int]] = []
    release = threading.Event()

    def work(items: list[int]) -> list[int | ChannelError]:
        if not batches:
            release.wait(10)  # hold the first batch until the others have queued
        batches.append(items)
        return [ChannelError(409, "odd") if i % 2 else i * 10 for i in items]

    async def run() -> list[int | BaseException]:
        batcher: Batcher[int, int] = Batcher(work)
        first = asyncio.create_task(batcher.submit(0))
        await asyncio.sleep(0)  # the first batch starts with item 0 alone
        rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 5)]
        await asyncio.sleep(0)
        release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    outcomes = asyncio.run(run())
    assert batches == [[0], [1, 2, 3, 4]]
    assert outcomes[0] == 0 and outcomes[2] == 20 and outcomes[4] == 40
    assert all(isinstance(outcomes[i], ChannelError) for i in (1, 3))


def test_batcher_passes_a_whole_batch_failure_to_every_item() -> None:
    def work(items: list[int]) -> list[int | ChannelError]:
        raise RuntimeError("database gone")

    async def run() -> list[int | BaseException]:
        batcher: Batcher[int, int] = Batcher(work)
        return await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)

    assert all(isinstance(o, RuntimeError) for o in asyncio.run(run()))


@pytest.mark.parametrize(
    ("status", "body", "no_stream"),
    [
        (404, b"", True),  # a hub (or proxy) without the stream
        (403, b"", True),  # what a framework answers for a WebSocket path it lacks
        (403, b'{"detail":"node n1 is revoked"}', False),  # refused: the poll says why
        (401, b'{"detail":"node request refused: replayed"}', False),
        (500, b"", False),
    ],
)
def test_stream_refusals_tell_a_missing_stream_from_a_refused_node(
    status: int, body: bytes, no_stream: bool
) -> None:
    assert StreamRefused(status, body).no_stream is no_stream


def test_result_lookup_uses_the_target_key_not_a_table_scan() -> None:
    """The targets a result batch touches are found by key: a scan would grow with every
    task ever run (SQLite scans for a row-value IN, which this statement once was)."""
    import sqlalchemy as sa

    from oncofed.hub.channel import _TARGETS
    from oncofed.hub.models import Base

    engine = sa.create_engine("sqlite://")
    Base.metadata.create_all(engine)
    seen: list[tuple[str, object]] = []
    sa.event.listen(
        engine, "before_cursor_execute", lambda *a: seen.append((a[2], a[3])), named=False
    )
    with engine.connect() as con:
        con.execute(_TARGETS, {"task_ids": ["t1", "t2"], "node_ids": ["n1", "n2", "n3"]})
        statement, params = seen[-1]
        plan = " ".join(
            str(row[3])
            for row in con.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
        )
    assert "SCAN task_target" not in plan, plan
    assert "SEARCH task_target" in plan, plan


def test_hub_migrations_build_the_schema_the_models_describe(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A model change without its migration (an index, say) would exist in tests that
    create tables from the models and be missing from every real hub."""
    import sqlalchemy as sa
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    import oncofed.hub.catalogue.models
    import oncofed.hub.identity.models
    import oncofed.hub.negotiation.models
    import oncofed.hub.portal.models  # noqa: F401  (every table the hub's migrations build)
    from oncofed import audit
    from oncofed.hub.db import make_engine, upgrade
    from oncofed.hub.models import Base

    described = sa.MetaData()
    for table in [*Base.metadata.tables.values(), *audit.metadata.tables.values()]:
        table.to_metadata(described)
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    upgrade(engine)
    with engine.connect() as con:
        drift = compare_metadata(MigrationContext.configure(con), described)
    engine.dispose()
    assert drift == []


def test_search_admission_counts_from_an_index_not_a_scan(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every search counts its requester's searches of the day: a scan of the task table
    would grow with every task the hub ever ran."""
    import sqlalchemy as sa

    from oncofed.hub.db import make_engine, upgrade
    from oncofed.hub.search import SEARCHES_SINCE
    from oncofed.security.envelope import utcnow

    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    upgrade(engine)
    seen: list[tuple[str, object]] = []
    sa.event.listen(
        engine, "before_cursor_execute", lambda *a: seen.append((a[2], a[3])), named=False
    )
    with engine.connect() as con:
        con.execute(SEARCHES_SINCE, {"who": "alice", "since": utcnow(), "minute": utcnow()})
        statement, params = seen[-1]
        plan = " ".join(
            str(row[3])
            for row in con.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
        )
    engine.dispose()
    assert "ix_task_requester" in plan, plan
