"""Noise keyed on what a query selects, not on how it is written (issue 17, medium 3).

Canonicalisation is syntactic; an always-true condition, a subsumed alternative, or a bound
written as 59.5 instead of 60 on an integer key used to draw new noise and cost budget, so
one account could collect many independent noisy values of one count and average them.
Every figure of a dataset's size (empty search, ``node.info``, catalogue, Beacon
``/datasets``) also had draws of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from oncofed.node.beacon import create_beacon_router
from oncofed.node.context import NodeContext
from oncofed.node.ingest.clinical_csv import ingest_clinical
from oncofed.node.ingest.common import NodeTarget
from oncofed.node.publish import describe
from oncofed.node.search import answer_search
from oncofed.node.tasks import node_summary
from oncofed.query.ast import EVERYONE
from oncofed.query.counts import DatasetCounts
from oncofed.query.validate import parse_query
from oncofed.settings import load_node_settings
from tests.clinical_fixtures import make_node, make_synth
from tests.unit.test_beacon_disclosure import SeededLaplace

AGE = "SNOMEDCT423493009"
SEX = "SNOMEDCT263495000"
FEMALE, MALE = "SNOMEDCT248152002", "SNOMEDCT248153007"
# Wide noise, no rounding, no threshold: two different draws almost never agree, so a test
# that passes shows one draw, not luck.
POLICY = "[disclosure]\nepsilon = 0.1\nrounding = 1\nmin_count = 1\ndaily_budget = 1000.0\n"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeContext]:
    base = tmp_path_factory.mktemp("semantic")
    synth = make_synth(base / "synth", patients=40)
    node_dir = make_node(base / "node")
    (node_dir / "policy.toml").write_text(POLICY)
    target = NodeTarget.open(node_dir)
    ingest_clinical([synth / "clinical"], synth / "clinical" / "mapping.yaml", target,
                    access_level="public")  # fmt: skip
    target.close()
    context = NodeContext.open(load_node_settings(node_dir))
    context.privacy_ledger.sampler = SeededLaplace(3)  # type: ignore[assignment]
    yield context
    context.close()


def _search(ctx: NodeContext, ast: dict[str, Any], who: str = "alice") -> dict[str, Any]:
    response = answer_search(ctx.store, ast, who, ctx.policy.disclosure, ctx.state,
                             ctx.settings.node_id or ctx.settings.name,
                             ledger=ctx.privacy_ledger)  # fmt: skip
    return {c.id: (c.subjects_count, c.studies_count, c.gender, c.age_range)
            for c in response.collections}  # fmt: skip


def _counts(ctx: NodeContext, ast: dict[str, Any]) -> list[DatasetCounts]:
    return ctx.store.search_counts(parse_query(ast))


def _and(*children: dict[str, Any]) -> dict[str, Any]:
    return {"operand": "AND", "children": list(children)}


def _age(value: Any, kind: str = "BETWEEN") -> dict[str, Any]:
    return {"key": AGE, "type": kind, "value": value}


def test_rewritings_that_select_the_same_patients_share_one_draw(ctx: NodeContext) -> None:
    first = _and(_age({"min": 60}))
    rewritings = [
        _and(_age({"min": 59.5})),  # a fractional bound on an integer key
        _and(_age(59, "GREATER_THAN")),  # the same bound as a comparison
        _and(_age({"min": 60}), _age({"min": 0})),  # an always-true condition added
        {"operand": "OR", "children": [_age({"min": 60}), _age({"min": 70})]},  # subsumed
        _and(
            _age({"min": 60}),
            {
                "operand": "OR",
                "children": [
                    {"key": SEX, "type": "EQUALS", "value": FEMALE},
                    {"key": SEX, "type": "NOT_EQUALS", "value": FEMALE},
                ],
            },
        ),
    ]
    answer = _search(ctx, first)
    spent = ctx.privacy_ledger.spent_today("alice")
    assert spent == pytest.approx(0.1)
    for ast in rewritings:
        exact = {c.dataset_id: c.subjects for c in _counts(ctx, ast)}
        assert exact == {c.dataset_id: c.subjects for c in _counts(ctx, first)}
        assert _search(ctx, ast) == answer, ast
    # ... at no further charge, while a query that selects others costs again.
    assert ctx.privacy_ledger.spent_today("alice") == pytest.approx(spent)
    _search(ctx, _and(_age({"min": 60}), {"key": SEX, "type": "EQUALS", "value": MALE}))
    assert ctx.privacy_ledger.spent_today("alice") == pytest.approx(spent + 0.1)


def test_one_draw_per_figure_of_a_dataset(ctx: NodeContext) -> None:
    searched = {k: v[0] for k, v in _search(ctx, _and(), "bob").items()}
    info = {d["id"]: d["patients"] for d in node_summary(ctx)["datasets"]}
    catalogue = {d["id"]: d["figures"]["individuals"] for d in describe(ctx)["datasets"]}
    app = FastAPI()
    app.state.node = ctx
    app.include_router(create_beacon_router())
    with TestClient(app) as client:
        doc = client.get("/beacon/v2/datasets").json()
    beacon = {c["id"]: c["info"]["individuals"] for c in doc["response"]["collections"]}
    exact = {c.dataset_id: c.subjects for c in ctx.store.search_counts(EVERYONE)}
    assert searched == info == catalogue == beacon
    assert searched != exact  # noise was added (epsilon 0.1: a draw of 0 is unlikely)
