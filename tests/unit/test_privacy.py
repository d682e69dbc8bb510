"""Disclosure control: thresholds, rounding, cached noise, budgets, differencing attacks."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine

from oncofed.node.search import answer_search
from oncofed.node.store import NodeStore
from oncofed.privacy import (
    BudgetExhausted,
    DisclosureDecision,
    DisclosurePolicy,
    LaplaceSampler,
    PrivacyLedger,
    RateLimited,
    load_policy,
    release_count,
)
from oncofed.query import QueryValidationError, parse_query

GENEROUS = DisclosurePolicy(rate_limit_per_minute=10_000, daily_budget=1_000)
MALE = {"key": "SNOMEDCT263495000", "type": "EQUALS", "value": "SNOMEDCT248153007"}
FEMALE = {"key": "SNOMEDCT263495000", "type": "EQUALS", "value": "SNOMEDCT248152002"}
NOT_2003 = {"key": "SNOMEDCT432213005", "type": "NOT_EQUALS", "value": 2003}
MR = {"key": "RID10311", "type": "EQUALS", "value": "RID10312"}


def AND(*children: Any) -> dict[str, Any]:
    return {"operand": "AND", "children": list(children)}


def make_store(path: Path, with_x: bool = True) -> NodeStore:
    """'big': 40 men, 20 women, ages 40-79, MR and CT; x is the only man diagnosed in 2003.
    'small': 3 patients."""
    store = NodeStore(path)
    with store.transaction() as cur:
        cur.execute("INSERT INTO dataset (id, name) VALUES ('big', 'Big'), ('small', 'Small')")
        patients = [(f"m{i}", "big", "male", 2010 + i % 10, 40 + i) for i in range(40)]
        patients += [(f"f{i}", "big", "female", 2012, 50 + i) for i in range(20)]
        patients += [(f"s{i}", "small", "male", 2015, 60) for i in range(3)]
        if with_x:
            patients.append(("x", "big", "male", 2003, 61))
        cur.execute(
            "CREATE TEMP TABLE seed (pid VARCHAR, ds VARCHAR, sex VARCHAR, "
            "year INTEGER, age INTEGER)"
        )
        cur.execute(
            "INSERT INTO seed VALUES " + ", ".join("(?, ?, ?, ?, ?)" for _ in patients),
            [x for row in patients for x in row],
        )
        cur.execute("INSERT INTO patient (id, dataset_id, sex) SELECT pid, ds, sex FROM seed")
        cur.execute(
            "INSERT INTO disease (id, patient_id, diagnosis_year, age_at_diagnosis) "
            "SELECT 'd' || pid, pid, year, age FROM seed"
        )
        cur.execute(
            "INSERT INTO imaging_series (uid, study_uid, patient_id, modality, "
            "body_part) SELECT 'se' || pid, 'st' || pid, pid, "
            "CASE WHEN age % 2 = 1 THEN 'MR' ELSE 'CT' END, 'PROSTATE' FROM seed"
        )
        cur.execute("DROP TABLE seed")
    return store


@pytest.fixture()
def store(tmp_path: Path) -> NodeStore:
    return make_store(tmp_path / "node.duckdb")


@pytest.fixture()
def engine(tmp_path: Path) -> Engine:
    return create_engine(f"sqlite:///{tmp_path / 'state.db'}")


def ask(
    store: NodeStore,
    engine: Engine,
    query: dict[str, Any],
    policy: DisclosurePolicy = GENEROUS,
    node: str = "node-a",
    who: str = "alice",
    **kw: Any,
) -> dict[str, Any]:
    return answer_search(store, query, who, policy, engine, node, **kw).model_dump()


@settings(max_examples=300, deadline=None)
@given(
    true=st.integers(0, 200),
    noise=st.integers(-50, 50),
    k=st.integers(1, 20),
    base=st.sampled_from([1, 5, 10]),
)
def test_released_counts_are_never_below_the_minimum(
    true: int, noise: int, k: int, base: int
) -> None:
    policy = DisclosurePolicy(min_count=k, rounding=base)
    value = release_count(true, noise, policy)
    assert value is None or (value >= k and value % base == 0)


def test_no_answer_shows_a_count_below_the_minimum(store: NodeStore, engine: Engine) -> None:
    queries = [
        AND(),
        AND(MALE),
        AND(FEMALE),
        AND(MR),
        AND(MALE, MR),
        AND(FEMALE, MR),
        AND(NOT_2003),
        AND({"key": "SNOMEDCT432213005", "type": "EQUALS", "value": 2003}),
    ]
    for node in ("n1", "n2", "n3"):
        for q in queries:
            for coll in ask(store, engine, q, node=node)["collections"]:
                for field in ("subjects_count", "studies_count"):
                    value = coll[field]
                    if value is None:
                        assert coll[f"{field}_below"] == 10
                    else:
                        assert value >= 10 and value % 5 == 0
                if coll["subjects_count"] is None:
                    assert coll["studies_count"] is None and coll["age_range"] is None
                    assert coll["gender"] == coll["modalities"] == coll["body_parts"] == []
                if coll["age_range"] is not None:
                    assert coll["age_range"]["min"] % 5 == 0 == coll["age_range"]["max"] % 5


def test_small_dataset_and_single_patient_are_withheld(store: NodeStore, engine: Engine) -> None:
    one = AND({"key": "SNOMEDCT432213005", "type": "EQUALS", "value": 2003})
    answer = {c["id"]: c for c in ask(store, engine, one)["collections"]}
    assert answer["big"]["subjects_count"] is None
    assert answer["big"]["subjects_count_below"] == 10
    assert answer["small"]["subjects_count"] is None


def test_repeating_a_query_100_times_gives_one_answer(store: NodeStore, engine: Engine) -> None:
    ledger = PrivacyLedger(engine)
    answers = {str(ask(store, engine, AND(MALE, MR), ledger=ledger)) for _ in range(100)}
    assert len(answers) == 1
    assert ledger.spent_today("alice") == GENEROUS.epsilon  # repeats are free


def test_reordered_query_gives_the_same_answer(store: NodeStore, engine: Engine) -> None:
    a = ask(
        store,
        engine,
        {
            "operand": "OR",
            "children": [
                {
                    "operand": "AND",
                    "children": [
                        {"operand": "OR", "children": [MALE]},
                        {"operand": "OR", "children": [MR, {**MR, "system": "urn:x"}]},
                    ],
                }
            ],
        },
    )
    b = ask(store, engine, AND(MR, MALE), who="bob")
    assert a == b
    # and on another node the noise differs (each node draws its own)
    others = {str(ask(store, engine, AND(MR, MALE), node=f"n{i}")) for i in range(8)}
    assert len(others) > 1


def test_noise_is_cached_in_the_state_database(store: NodeStore, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'persist.db'}"
    first = ask(store, create_engine(url), AND(MALE))
    assert ask(store, create_engine(url), AND(MALE)) == first  # a fresh engine, same file


def test_noise_cache_in_memory_agrees_with_the_database(tmp_path: Path) -> None:
    """Draws read once are served from memory; new statistics still draw and store."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    ledger = PrivacyLedger(create_engine(url))
    first = ledger.noise("n", "q", [("ds", "subjects", 2.0), ("ds", "studies", 2.0)])
    again = ledger.noise("n", "q", [("ds", "subjects", 2.0)])
    assert again == {("ds", "subjects"): first[("ds", "subjects")]}
    more = ledger.noise("n", "q", [("ds", "subjects", 2.0), ("ds", "age:40", 2.0)])
    assert more[("ds", "subjects")] == first[("ds", "subjects")]
    # Another ledger (another process) sees exactly what this one handed out.
    other = PrivacyLedger(create_engine(url))
    assert other.noise("n", "q", [("ds", "age:40", 2.0), ("ds", "studies", 2.0)]) == {
        ("ds", "age:40"): more[("ds", "age:40")],
        ("ds", "studies"): first[("ds", "studies")],
    }


def test_noise_lookup_index_is_added_to_an_older_state_database(tmp_path: Path) -> None:
    from sqlalchemy import inspect, text

    engine = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    PrivacyLedger(engine)
    with engine.begin() as con:  # a state.db from before the index
        con.execute(text("DROP INDEX disclosure_noise_by_query"))
    PrivacyLedger(engine)
    names = {i["name"] for i in inspect(engine).get_indexes("disclosure_noise")}
    assert "disclosure_noise_by_query" in names
    with engine.connect() as con:
        plan = con.execute(
            text(
                "EXPLAIN QUERY PLAN SELECT noise FROM disclosure_noise"
                " WHERE node_id = 'n' AND query_hash = 'q'"
            )
        ).all()
    assert "disclosure_noise_by_query" in str(plan)


def test_budget_exhaustion_is_a_clear_error_and_resets(store: NodeStore, engine: Engine) -> None:
    now = [dt.datetime(2025, 3, 14, 15, 0, tzinfo=dt.UTC).timestamp()]
    policy = DisclosurePolicy(epsilon=1.0, daily_budget=3.0)
    decisions: list[DisclosureDecision] = []
    kw: dict[str, Any] = {"clock": lambda: now[0], "audit": decisions.append}
    queries = [AND(MALE), AND(FEMALE), AND(MR), AND(MALE, MR)]
    for q in queries[:3]:
        ask(store, engine, q, policy, **kw)
    with pytest.raises(BudgetExhausted) as err:
        ask(store, engine, queries[3], policy, **kw)
    assert err.value.resets_at == dt.datetime(2025, 3, 15, tzinfo=dt.UTC)
    assert "2025-03-15" in str(err.value) and "budget" in str(err.value)
    assert decisions[-1].decision == "refused"
    assert decisions[-1].reason == "budget_exhausted"
    assert decisions[0].decision == "answered" and decisions[0].epsilon_charged == 1.0
    ask(store, engine, queries[0], policy, **kw)  # already answered today: free
    ask(store, engine, queries[3], policy, who="bob", **kw)  # budgets are per researcher
    now[0] += 24 * 3600
    ask(store, engine, queries[3], policy, **kw)  # a new day


def test_rate_limit(store: NodeStore, engine: Engine) -> None:
    now = [1_000_000.0]
    policy = DisclosurePolicy(rate_limit_per_minute=3)
    for _ in range(3):
        ask(store, engine, AND(MALE), policy, clock=lambda: now[0])
    with pytest.raises(RateLimited) as err:
        ask(store, engine, AND(MALE), policy, clock=lambda: now[0])
    assert 0 < err.value.retry_after_s <= 60
    now[0] += 61
    ask(store, engine, AND(MALE), policy, clock=lambda: now[0])


def test_invalid_query_is_refused_and_logged(store: NodeStore, engine: Engine) -> None:
    decisions: list[DisclosureDecision] = []
    with pytest.raises(QueryValidationError, match="RID0.*RID10311"):
        ask(
            store,
            engine,
            AND({"key": "RID10311", "type": "EQUALS", "value": "RID0"}),
            audit=decisions.append,
        )
    assert decisions[0].reason == "invalid_query"
    assert decisions[0].requester == "alice"


def test_differencing_attack_cannot_tell_whether_x_exists(tmp_path: Path) -> None:
    """A vs. A AND NOT x, where x is the one man diagnosed in 2003.

    Without noise the difference of the two subject counts is exactly 1 when x exists and 0
    when not. With rounding and noise cached per query, the difference looks alike in both
    worlds: the attacker's best guess is barely better than a coin, and asking again (or
    reordering) returns the same cached answers, so repetition cannot average the noise.
    """
    engine = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    worlds = {
        True: make_store(tmp_path / "w1.duckdb", with_x=True),
        False: make_store(tmp_path / "w0.duckdb", with_x=False),
    }
    a, a_not_x = AND(MALE), AND(MALE, NOT_2003)
    exact = {}
    for has_x, store in worlds.items():
        with store.reading() as con:
            from oncofed.query import count_matches

            exact[has_x] = [count_matches(con, parse_query(q))[0].subjects for q in (a, a_not_x)]
    assert exact[True][0] - exact[True][1] == 1 and exact[False][0] == exact[False][1]

    def big(store: NodeStore, q: dict[str, Any], node: str) -> int | None:
        coll = ask(store, engine, q, node=node)["collections"]
        return next(c for c in coll if c["id"] == "big")["subjects_count"]

    # Through the real path: each node draws its own noise; answers are stable.
    diffs: dict[bool, list[int]] = {True: [], False: []}
    for has_x, store in worlds.items():
        for i in range(5):
            node = f"{has_x}-{i}"
            x, y = big(store, a, node), big(store, a_not_x, node)
            assert x is not None and y is not None
            assert (big(store, a, node), big(store, a_not_x, node)) == (x, y)
            diffs[has_x].append(x - y)
    assert all(d % 5 == 0 for ds in diffs.values() for d in ds)

    # The same mechanism, sampled many times: the two worlds' differences are alike.
    sampler, policy, n = LaplaceSampler(), DisclosurePolicy(), exact[True][0]
    trials = 2000
    dist: dict[bool, Counter[int]] = {True: Counter(), False: Counter()}
    for has_x in (True, False):
        for _ in range(trials):
            first = release_count(n, sampler.sample(1 / policy.epsilon), policy)
            second = release_count(n - has_x, sampler.sample(1 / policy.epsilon), policy)
            assert first is not None and second is not None
            dist[has_x][first - second] += 1
    tv = sum(abs(dist[True][d] - dist[False][d]) for d in dist[True] | dist[False])
    best_accuracy = 0.5 + tv / (4 * trials)
    assert best_accuracy < 0.62  # exact counts would give 1.0
    assert dist[True][0] / trials > 0.5 and dist[False][0] / trials > 0.5


def test_policy_file(tmp_path: Path) -> None:
    assert load_policy(tmp_path / "missing.toml") == DisclosurePolicy()
    path = tmp_path / "policy.toml"
    path.write_text("[disclosure]\nmin_count = 20\nrounding = 10\nepsilon = 0.5\n")
    policy = load_policy(path)
    assert (policy.min_count, policy.rounding, policy.epsilon) == (20, 10, 0.5)
    assert policy.daily_budget == DisclosurePolicy().daily_budget
    path.write_text("min_count = 0\n")
    with pytest.raises(ValueError, match="min_count"):
        load_policy(path)


def test_concurrent_admissions_are_counted_exactly(tmp_path: Path) -> None:
    """Threads admitting at once never overspend the day's budget or the rate limit."""
    from concurrent.futures import ThreadPoolExecutor

    ledger = PrivacyLedger(create_engine(f"sqlite:///{tmp_path / 'state.db'}"))

    def admitted(who: str, policy: DisclosurePolicy, asks: int) -> int:
        def one(i: int) -> bool:
            try:
                ledger.admit(who, f"q{i}", policy)
            except (BudgetExhausted, RateLimited):
                return False
            return True

        with ThreadPoolExecutor(8) as pool:
            return sum(pool.map(one, range(asks)))

    budget = DisclosurePolicy(epsilon=1.0, daily_budget=5.0, rate_limit_per_minute=1000)
    assert admitted("alice", budget, 40) == 5
    assert ledger.spent_today("alice") == 5.0
    rate = DisclosurePolicy(epsilon=0.01, daily_budget=5.0, rate_limit_per_minute=7)
    assert admitted("bob", rate, 30) == 7


def test_deferred_charge_is_stored_with_the_callers_transaction(tmp_path: Path) -> None:
    """With ``defer`` nothing is written until the caller runs the write; a ledger that
    starts later (a restarted node) reads what was stored, requests and charges."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = create_engine(url)
    ledger = PrivacyLedger(engine)
    policy = DisclosurePolicy(epsilon=1.0, daily_budget=2.0, rate_limit_per_minute=3)
    writes: list[Any] = []
    first = ledger.admit("alice", "q1", policy, defer=writes)
    assert first.epsilon_charged == 1.0 and len(writes) == 1
    assert ledger.spent_today("alice") == 0.0  # not stored yet
    with pytest.raises(BudgetExhausted):  # but counted: q2 fits, q3 does not
        ledger.admit("alice", "q2", policy)
        ledger.admit("alice", "q3", policy)
    with engine.begin() as con:
        writes[0](con)
    assert ledger.spent_today("alice") == 2.0
    restarted = PrivacyLedger(create_engine(url))
    assert restarted.admit("alice", "q1", policy).epsilon_charged == 0.0  # asked today
    with pytest.raises(RateLimited):  # three requests stored this minute, this is the 4th
        restarted.admit("alice", "q2", policy)
