"""Beacon ``exists`` under disclosure control: the binary-search attack of issue 17.

Knowing one patient's sex, age and cancer site, an attacker used to read their survival to
the day with about 14 boolean queries, because ``exists`` was the exact truth of
"count >= 1". A boolean now follows the rules of a count (true only when the released,
noisy, rounded, thresholded count is) and is charged and rate-limited like one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from oncofed.node.beacon import create_beacon_router
from oncofed.node.context import NodeContext
from oncofed.node.ingest.clinical_csv import ingest_clinical
from oncofed.node.ingest.common import NodeTarget
from oncofed.node.store import NodeStore
from oncofed.settings import load_node_settings
from tests.clinical_fixtures import make_node, make_synth

ROOT = "/beacon/v2/individuals"
SEX_TERM = {"female": "NCIT:C16576", "male": "NCIT:C20197"}


class SeededLaplace:
    """Discrete Laplace draws from a seeded generator: the same noise on every run, so the
    test cannot pass or fail by luck (production noise comes from OpenDP)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def sample(self, scale: float) -> int:
        p = math.exp(-1.0 / scale)
        geometric = [int(math.log(1 - self.rng.random()) / math.log(p)) for _ in range(2)]
        return geometric[0] - geometric[1]


def _node(base: Path, policy: str) -> tuple[NodeContext, FastAPI]:
    synth = make_synth(base / "synth", patients=40)
    node_dir = make_node(base / "node")
    (node_dir / "policy.toml").write_text(policy)
    target = NodeTarget.open(node_dir)
    ingest_clinical([synth / "clinical"], synth / "clinical" / "mapping.yaml", target,
                    access_level="public")  # fmt: skip
    target.close()
    ctx = NodeContext.open(load_node_settings(node_dir))
    ctx.privacy_ledger.sampler = SeededLaplace(17)  # type: ignore[assignment]
    app = FastAPI()
    app.state.node = ctx
    app.include_router(create_beacon_router())
    return ctx, app


def singled_out(store: NodeStore) -> tuple[list[dict[str, Any]], int]:
    """Filters that select exactly one patient (the attacker's background knowledge), and
    that patient's survival in days (the secret)."""
    with store.reading() as con:
        rows = con.execute(
            "SELECT p.sex, min(d.age_at_diagnosis), any_value(d.site_snomed), "
            "any_value(o.survival_days) FROM patient p JOIN disease d ON d.patient_id = p.id "
            "JOIN outcome o ON o.patient_id = p.id WHERE o.survival_days IS NOT NULL "
            "AND p.sex IN ('female', 'male') AND d.site_snomed IS NOT NULL GROUP BY p.id, p.sex"
        ).fetchall()
    groups: dict[tuple[Any, ...], list[int]] = {}
    for sex, age, site, days in rows:
        groups.setdefault((sex, int(age), site), []).append(int(days))
    (sex, age, site), (days,) = next(
        (k, v) for k, v in sorted(groups.items(), key=str) if len(v) == 1
    )
    filters = [
        {"id": SEX_TERM[sex]},
        {"id": "age", "operator": "=", "value": f"P{age}Y"},
        {"id": f"SNOMEDCT:{site}"},
    ]
    return filters, days


def binary_search(exists: Any, filters: list[dict[str, Any]]) -> tuple[int, list[bool]]:
    """The attack: the smallest d with "survivalDays <= d" true, by bisection."""
    lo, hi, answers = 0, 8192, []
    while lo < hi:
        mid = (lo + hi) // 2
        answer = exists([*filters, {"id": "survivalDays", "operator": "<=", "value": mid}])
        answers.append(answer)
        lo, hi = (lo, mid) if answer else (mid + 1, hi)
    return lo, answers


@pytest.fixture(scope="module")
def open_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeContext, TestClient]]:
    policy = "[disclosure]\ndaily_budget = 1000.0\nrate_limit_per_minute = 1000\n"
    ctx, app = _node(tmp_path_factory.mktemp("attack"), policy)
    with TestClient(app) as client:
        yield ctx, client
    ctx.close()


def test_binary_search_on_exists_learns_nothing(open_node: Any) -> None:
    ctx, client = open_node
    filters, secret = singled_out(ctx.store)

    def exists(f: list[dict[str, Any]]) -> bool:
        q = {"filters": f, "requestedGranularity": "boolean"}
        doc = client.post(ROOT, json={"meta": {"apiVersion": "v2.0"}, "query": q}).json()
        return bool(doc["responseSummary"]["exists"])

    assert exists([]), "the whole node (40 patients) exists"
    found, answers = binary_search(exists, filters)
    # A cohort of one is below the minimum count whatever the bound: every answer is "no",
    # the same as for an empty cohort, so the search runs off its upper end.
    assert not any(answers)
    assert found == 8192 != secret
    # The boolean costs what a count costs, and every decision is in the node's audit log.
    decisions = [e for e in ctx.audit.entries() if e["action"] == "beacon.count"]
    assert len(decisions) == len(answers) + 1
    assert all(e["decision"] == "allow" for e in decisions)


def test_exists_agrees_with_the_released_count(open_node: Any) -> None:
    """Boolean and count of one query share the cached draw: exists is true exactly when
    the count is released."""
    _, client = open_node
    for term in ("NCIT:C16576", "NCIT:C20197", "ICD10:C34", "ICD10:C50", "ICD10:C25"):
        docs = {
            g: client.get(f"{ROOT}?filters={term}&requestedGranularity={g}").json()
            for g in ("count", "boolean")
        }
        count = docs["count"]["responseSummary"].get("numTotalResults")
        assert docs["count"]["responseSummary"]["exists"] is (count is not None)
        assert docs["boolean"]["responseSummary"]["exists"] is (count is not None)
        assert count is None or count >= 10


def test_booleans_are_rate_limited(tmp_path: Path) -> None:
    ctx, app = _node(tmp_path, "[disclosure]\ndaily_budget = 1000.0\nrate_limit_per_minute = 30\n")
    try:
        with TestClient(app) as client:
            codes = [
                client.post(ROOT, json={"query": {"filters": [
                    {"id": "survivalDays", "operator": "<", "value": d}]}}).status_code
                for d in range(40)
            ]  # fmt: skip
        assert codes[:30] == [200] * 30 and set(codes[30:]) == {429}
    finally:
        ctx.close()
