"""The hub's round driver: a node that drops out mid-iteration ends the run with its name,
or, with allow_partial, the run goes on without it and says so."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from oncofed.analysis import ANALYSES
from oncofed.analysis.disclosure import no_noise
from oncofed.hub.analysis.runs import AnalysisError, RoundDriver, Run
from oncofed.hub.channel import TargetView, TaskView
from tests.unit.test_analysis_math import EXACT, cohort, federated, frame, split

PARTS = split(cohort(900, seed=21), [450])
SPEC = {"formula": "vital_status ~ age + stage"}


def make_run(allow_partial: bool) -> Run:
    return Run(
        id="r" * 32, algorithm="glm@1", spec=SPEC, cohort={}, datasets=["a:x", "b:y"],
        sites=["a", "b"], created_by="alice", allow_partial=allow_partial, round_timeout=3,
        spec_hash="0" * 64,
    )  # fmt: skip


def sender(down_from: int) -> Any:
    """Node b stops answering from round `down_from` (its target expires)."""
    glm = ANALYSES["glm"]
    spec = glm.Spec.model_validate(SPEC)

    async def send(run: Run, step: int, state: dict[str, Any], nodes: list[str]) -> TaskView:
        targets = []
        for name in nodes:
            part = PARTS[0] if name == "a" else PARTS[1]
            if name == "b" and step >= down_from:
                targets.append(TargetView("id-b", "b", "expired", 1, None, None, None))
                continue
            partial = glm.local(spec, frame(part), state, EXACT, no_noise)
            targets.append(
                TargetView(f"id-{name}", name, "succeeded", 1, None, {"partial": partial}, None)
            )
        return TaskView(f"t{step}", "analysis.step", {}, "alice", "", "", targets)

    return send


def test_a_node_down_mid_iteration_fails_the_run_naming_it() -> None:
    run = make_run(allow_partial=False)
    with pytest.raises(AnalysisError) as err:
        asyncio.run(RoundDriver(ANALYSES["glm"], sender(2)).drive(run, 30))
    assert "node b timed out at round 2" in err.value.message
    assert [r["nodes"]["b"] for r in run.rounds] == ["succeeded", "succeeded", "expired"]


def test_allow_partial_goes_on_without_it_and_says_so() -> None:
    run = make_run(allow_partial=True)
    asyncio.run(RoundDriver(ANALYSES["glm"], sender(2)).drive(run, 30))
    assert run.excluded and run.excluded[0]["node"] == "b" and run.excluded[0]["round"] == 2
    alone = federated("glm", SPEC, [PARTS[0]])  # Newton's fixed point: node a's own fit
    assert run.result is not None
    for got, want in zip(run.result["coefficients"], alone["coefficients"], strict=True):
        assert got["coef"] == pytest.approx(want["coef"], abs=1e-8)
    assert run.view()["partial"] is True
