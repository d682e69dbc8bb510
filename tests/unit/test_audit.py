"""The hash-chained audit log detects every edit, insertion and deletion."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from oncofed.audit import AuditLog, audit_entry


def make_log(n: int) -> AuditLog:
    engine = sa.create_engine(
        "sqlite://", poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False}
    )
    log = AuditLog(engine)
    log.ensure_tables()
    for i in range(n):
        log.append(
            f"user{i % 3}",
            "search",
            "allow" if i % 2 else "deny",
            target=f"t{i}",
            reason="r",
            details={"i": i},
        )
    return log


def test_intact_log_verifies_and_exports(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = make_log(10)
    assert log.verify() == []
    out = tmp_path / "audit.jsonl"
    assert log.export(out) == 10
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in lines] == list(range(1, 11))
    assert lines[1]["prev_hash"] == lines[0]["hash"]


def test_bad_decision_is_refused() -> None:
    with pytest.raises(ValueError, match="decision"):
        make_log(0).append("a", "b", "maybe")


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 12), data=st.data())
def test_any_edit_is_detected(n: int, data: st.DataObject) -> None:
    log = make_log(n)
    seq = data.draw(st.integers(1, n))
    column = data.draw(
        st.sampled_from(["actor", "action", "target", "decision", "reason", "details", "at"])
    )
    with log.engine.begin() as con:
        con.execute(
            sa.update(audit_entry).where(audit_entry.c.seq == seq).values({column: "tampered"})
        )
    problems = log.verify()
    assert any(p.seq == seq and "changed" in p.problem for p in problems)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 12), data=st.data())
def test_any_deletion_is_detected(n: int, data: st.DataObject) -> None:
    log = make_log(n)
    seq = data.draw(st.integers(1, n))
    with log.engine.begin() as con:
        con.execute(sa.delete(audit_entry).where(audit_entry.c.seq == seq))
    assert log.verify(), f"deleting entry {seq} of {n} went unnoticed"


def test_insertion_and_rehashed_edit_are_detected() -> None:
    log = make_log(5)
    rows = list(log.entries())
    # Rewrite entry 3 *and* recompute its own hash: the next entry no longer links to it.
    from oncofed.audit import entry_hash

    forged = {**rows[2], "reason": "nothing to see"}
    forged["hash"] = entry_hash(forged)
    with log.engine.begin() as con:
        con.execute(
            sa.update(audit_entry)
            .where(audit_entry.c.seq == 3)
            .values(reason=forged["reason"], hash=forged["hash"])
        )
    assert any(p.seq == 4 and "link" in p.problem for p in log.verify())
    # An inserted entry at the end without updating the head is detected too.
    log2 = make_log(3)
    last = list(log2.entries())[-1]
    extra = {**last, "seq": 4, "prev_hash": last["hash"], "reason": "inserted"}
    extra["hash"] = entry_hash(extra)
    with log2.engine.begin() as con:
        con.execute(sa.insert(audit_entry).values(**extra))
    assert any("tail" in p.problem for p in log2.verify())


def test_batched_appends_chain_like_single_ones_and_roll_back_whole() -> None:
    log = make_log(2)
    batch = [
        {"actor": "node:a", "action": "task.result", "decision": "allow", "target": "t1"},
        {
            "actor": "node:b",
            "action": "task.result",
            "decision": "error",
            "target": "t1",
            "reason": "boom",
            "details": {"status": "failed"},
        },
    ]
    with log.engine.begin() as con:
        log.append_many(batch, con)
    log.append("hub", "after", "info")
    entries = list(log.entries())
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert [e["actor"] for e in entries[2:]] == ["node:a", "node:b", "hub"]
    assert json.loads(entries[3]["details"]) == {"status": "failed"}
    assert log.verify() == []
    # A batch is part of its caller's transaction: a rollback leaves no half chain.
    with pytest.raises(RuntimeError), log.engine.begin() as con:
        log.append_many(batch, con)
        raise RuntimeError("crash before commit")
    assert len(list(log.entries())) == 5 and log.verify() == []
    with pytest.raises(ValueError), log.engine.begin() as con:
        log.append_many([{**batch[0], "decision": "maybe"}], con)


def test_batched_append_starts_a_new_log() -> None:
    log = make_log(0)
    with log.engine.begin() as con:
        log.append_many([{"actor": "a", "action": "x", "decision": "info"} for _ in range(3)], con)
    assert [e["seq"] for e in log.entries()] == [1, 2, 3]
    assert log.verify() == []
