"""Log-in limiting by exponential delay per (account, address), never a lock-out (issue 17).

Ten wrong passwords used to lock the account (the right password then got 429) and the
client address; behind a proxy one attacker locked everyone out.
"""

from __future__ import annotations

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from oncofed.hub.login_delay import LoginDelay


def _engine() -> sa.Engine:
    """An in-memory database (the hub's is SQLite or PostgreSQL; the table is the same)."""
    return sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_delay_doubles_and_the_right_password_gets_in_after_it() -> None:
    clock = Clock()
    limiter = LoginDelay(_engine(), free=5, base=1.0, longest=60.0, clock=clock)
    waits = []
    for _ in range(10):
        assert limiter.wait("alice", "10.0.0.9") == 0  # the attacker waits out each delay
        limiter.fail("alice", "10.0.0.9")
        waits.append(limiter.wait("alice", "10.0.0.9"))
        clock.now += waits[-1]
    assert waits == [0, 0, 0, 0, 1, 2, 4, 8, 16, 32]
    # alice from her own address, and bob from the attacker's, are not slowed at all
    assert limiter.wait("alice", "10.0.0.1") == 0 and limiter.wait("bob", "10.0.0.9") == 0
    limiter.fail("alice", "10.0.0.9")
    assert limiter.wait("alice", "10.0.0.9") == 60  # capped
    clock.now += 60
    limiter.succeed("alice", "10.0.0.9")  # the right password after the delay
    assert limiter.wait("alice", "10.0.0.9") == 0
    # a day later the pair starts afresh
    for _ in range(6):
        limiter.fail("bob", "10.0.0.9")
    clock.now += 86_401
    limiter.fail("bob", "10.0.0.9")
    assert limiter.wait("bob", "10.0.0.9") == 0


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["alice", "bob"]),
            st.sampled_from(["10.0.0.1", "10.0.0.2"]),
            st.sampled_from(["fail", "succeed", "tick"]),
        ),
        max_size=60,
    )
)
def test_never_a_lock_out(events: list[tuple[str, str, str]]) -> None:
    """Whatever happened, every pair can try again within the longest delay, and a pair
    is only ever slowed by its own failures."""
    clock = Clock()
    limiter = LoginDelay(_engine(), free=3, base=1.0, longest=30.0, clock=clock)
    failures: dict[tuple[str, str], int] = {}
    for user, address, what in events:
        if what == "fail":
            limiter.fail(user, address)
            failures[(user, address)] = failures.get((user, address), 0) + 1
        elif what == "succeed":
            limiter.succeed(user, address)
            failures.pop((user, address), None)
        else:
            clock.now += 7
        for pair in (("alice", "10.0.0.1"), ("alice", "10.0.0.2"), ("bob", "10.0.0.1")):
            wait = limiter.wait(*pair)
            assert 0 <= wait <= 30
            if failures.get(pair, 0) < 3:
                assert wait == 0
