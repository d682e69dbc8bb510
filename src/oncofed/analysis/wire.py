"""The ``analysis.step`` task: one round of one analysis run, as the hub signs it.

The same body goes to every node of a round (one task, many targets): ``datasets`` names
each as ``node:dataset`` and ``sites`` lists the round's nodes, so a node checks from the
signed body itself that it is one of at least ``min_sites`` sites (vantage6#2017: a
minimum checked only centrally was bypassed) and which of its datasets are analysed. A
node dropped with ``allow_partial`` leaves ``sites`` too: the run cannot shrink below any
remaining node's minimum.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from oncofed.protocol import TaskBody, register_kind

STEP_KIND = "analysis.step"


class AnalysisStepBody(TaskBody):
    run_id: str = Field(min_length=8, max_length=64)
    step: int = Field(ge=0, le=500)
    algorithm: str = Field(description="name@version of a shipped analysis, e.g. glm@1")
    spec: dict[str, Any]
    spec_hash: str = Field(min_length=64, max_length=64)
    cohort: dict[str, Any] = Field(description="EUCAIM search AST selecting the patients")
    datasets: list[str] = Field(min_length=1, max_length=200, description="node:dataset")
    sites: list[str] = Field(min_length=1, max_length=200, description="node names")
    state: dict[str, Any] = Field(default_factory=dict)
    passport: str | None = Field(None, max_length=200_000)


register_kind(STEP_KIND, AnalysisStepBody)
