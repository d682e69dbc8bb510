"""The node's `analysis.step` handler on a real store: policy, sites, grants, run rules,
differencing, budget, and what reaches the audit log."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from oncofed.analysis import ANALYSES
from oncofed.analysis.base import spec_hash
from oncofed.analysis.disclosure import AnalysisRules
from oncofed.node.admin import init_node
from oncofed.node.analysis import analysis_step
from oncofed.node.context import NodeContext
from oncofed.node.grants import RevocationState
from oncofed.node.handlers import TaskMeta, TaskRefused
from oncofed.node.policy import NodePolicy
from oncofed.privacy.policy import DisclosurePolicy
from oncofed.security.keys import SigningKey
from oncofed.security.visas import sign_visa, verify_visa, visa_claims
from oncofed.settings import load_node_settings
from oncofed.synth.load import fill_node

HUB = "https://hub.example.org"
ALL = {"operand": "AND", "children": []}
SITES = ["n1", "n2"]


@pytest.fixture(scope="module")
def hub_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, hub_key: SigningKey) -> Iterator[NodeContext]:
    directory = tmp_path_factory.mktemp("analysis-node")
    init_node(directory, "n1", "p1")
    fill_node(directory, 0, 600)
    settings = load_node_settings(directory).model_copy(
        update={"node_id": "node-n1", "hub_public_key": hub_key.public.b64, "hub_url": HUB}
    )
    ctx = NodeContext.open(settings)
    ctx.policy = NodePolicy(
        allowed_algorithms=["km", "glm", "cox", "crosstab", "summary"],
        disclosure=DisclosurePolicy(daily_budget=4.0, rate_limit_per_minute=1000),
        analysis=AnalysisRules(runs_per_day=1000),
    )
    RevocationState(ctx.state).store(frozenset(), datetime.now(UTC))
    yield ctx
    ctx.close()


def visa(key: SigningKey, who: str = "alice", dataset: str = "p1-cohort", **kw: Any) -> str:
    claims = visa_claims(
        issuer=HUB, subject=who, audience="node-n1", dataset=dataset,
        source=f"{HUB}/dac", lifetime=kw.pop("lifetime", timedelta(days=1)), **kw,
    )  # fmt: skip
    return sign_visa(claims, key)


def step(
    ctx: NodeContext,
    algorithm: str,
    spec: dict[str, Any],
    passport: str | None,
    *,
    who: str = "alice",
    cohort: dict[str, Any] = ALL,
    sites: list[str] = SITES,
    run_id: str | None = None,
    state: dict[str, Any] | None = None,
    number: int = 0,
) -> tuple[dict[str, Any], TaskMeta]:
    a = ANALYSES[algorithm]
    canonical = a.Spec.model_validate(spec).model_dump(mode="json")
    datasets = ["n1:p1-cohort"]
    body = {
        "run_id": run_id or uuid.uuid4().hex,
        "step": number,
        "algorithm": a.key,
        "spec": canonical,
        "spec_hash": spec_hash(a.key, canonical, cohort, datasets),
        "cohort": cohort,
        "datasets": datasets,
        "sites": sites,
        "state": state if state is not None else a.start(a.Spec.model_validate(spec)),
        "passport": passport,
    }
    meta = TaskMeta(uuid.uuid4().hex, "analysis.step", who)
    try:
        return analysis_step(ctx, body, meta), meta
    finally:
        with ctx.state.begin() as con:  # what the agent does with the task's outcome
            for write in meta.writes:
                write(con)
            ctx.audit.append_many(meta.audit_entries, con)


def refused(ctx: NodeContext, *args: Any, **kw: Any) -> str:
    with pytest.raises(TaskRefused) as err:
        step(ctx, *args, **kw)
    return str(err.value)


GLM = {"formula": "vital_status ~ age + sex"}


def test_glm_step_runs_with_a_visa_and_is_audited(node: NodeContext, hub_key: SigningKey) -> None:
    result, meta = step(node, "glm", GLM, visa(hub_key))
    partial = result["partial"]
    assert partial["n"] > 500 and len(partial["score"]) == 3
    entry = meta.audit_entries[-1]
    assert entry["action"] == "analysis.step" and entry["decision"] == "allow"
    assert "score" in entry["details"]["released"]["keys"]


def test_grants_refused_at_the_node(node: NodeContext, hub_key: SigningKey) -> None:
    assert "no valid visa" in refused(node, "glm", GLM, None)
    expired = visa(hub_key, now=datetime.now(UTC) - timedelta(days=3))
    assert "no valid visa" in refused(node, "glm", GLM, expired)
    assert "no valid visa" in refused(node, "glm", GLM, visa(hub_key, dataset="other"))
    assert "no valid visa" in refused(node, "glm", GLM, visa(hub_key, who="mallory"))
    revoked = visa(hub_key)
    jti = verify_visa(revoked, hub_key.public).jti
    RevocationState(node.state).store(frozenset({jti}), datetime.now(UTC))
    try:
        assert "no valid visa" in refused(node, "glm", GLM, revoked)
    finally:
        RevocationState(node.state).store(frozenset(), datetime.now(UTC))
    reasons = [
        json.loads(e["details"]).get("reason")
        for e in node.audit.entries()
        if e["action"] == "visa.verify" and e["decision"] == "deny"
    ]
    assert {"expired", "dataset", "revoked", "subject"} <= set(reasons)


def test_policy_and_sites_checked_by_the_node(node: NodeContext, hub_key: SigningKey) -> None:
    assert "at least 2 sites" in refused(node, "glm", GLM, visa(hub_key), sites=["n1"])
    assert "not one of the run's signed sites" in refused(
        node, "glm", GLM, visa(hub_key), sites=["n2", "n3"]
    )
    saved = node.policy
    node.policy = saved.model_copy(update={"allowed_algorithms": ["km"]})
    try:
        assert "does not allow the glm@1" in refused(node, "glm", GLM, visa(hub_key))
    finally:
        node.policy = saved


def test_a_run_cannot_change_its_spec_or_exceed_its_steps(
    node: NodeContext, hub_key: SigningKey
) -> None:
    run = uuid.uuid4().hex
    token = visa(hub_key)
    step(node, "glm", GLM, token, run_id=run)
    message = refused(node, "glm", {"formula": "vital_status ~ age"}, token, run_id=run)
    assert "analyse what its first step did" in message
    saved = node.policy
    node.policy = saved.model_copy(update={"analysis": AnalysisRules(max_steps=2)})
    try:
        step(node, "glm", GLM, token, run_id=run, number=1)
        assert "at most 2 steps" in refused(node, "glm", GLM, token, run_id=run, number=2)
    finally:
        node.policy = saved


def test_differencing_two_cohorts_one_patient_apart(node: NodeContext, hub_key: SigningKey) -> None:
    """All patients, then all but the few of the oldest age: the second exact fit would
    reveal those few, so the node refuses it."""
    token = visa(hub_key, who="eve")
    spec = {"formula": "vital_status ~ age + surgery"}
    first, _ = step(node, "glm", spec, token, who="eve")
    oldest = int(max(node.store.search_index().age_value))
    minus = {"operand": "AND", "children": [
        {"key": "SNOMEDCT423493009", "type": "LOWER_THAN", "value": oldest}]}  # fmt: skip
    assert 0 < first["partial"]["n"] - step_rows(node, minus) < 10, "fixture: a rare oldest age"
    message = refused(node, "glm", spec, token, who="eve", cohort=minus)
    assert "differs from one you analysed before" in message
    step(node, "glm", spec, token, who="eve")  # the same cohort again is no difference


def step_rows(node: NodeContext, cohort: dict[str, Any]) -> int:
    from oncofed.node.analysis import cohort_frame

    return cohort_frame(node, cohort, {"p1-cohort"}).rows


def test_noisy_release_charges_the_budget_until_refused(
    node: NodeContext, hub_key: SigningKey
) -> None:
    token = visa(hub_key, who="bob")
    km1, meta = step(node, "km", {"bin_days": 30}, token, who="bob")
    assert meta.audit_entries[-1]["details"]["released"]["epsilon"] == 1.0
    again, meta = step(node, "km", {"bin_days": 30}, token, who="bob")
    assert again["partial"] == km1["partial"]  # cached noise: a repeat reveals nothing new
    assert meta.audit_entries[-1]["details"]["released"]["epsilon"] == 0.0
    step(node, "crosstab", {"row": "stage", "column": "sex"}, token, who="bob")
    message = refused(node, "summary", {"variable": "age"}, token, who="bob")  # 3 units > 2 left
    assert "budget" in message
