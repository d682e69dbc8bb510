"""What every federated analysis is: a node-side ``local`` step and a hub-side ``combine``.

An analysis module (``km``, ``glm``, ``cox``, ``crosstab``, ``summary``) defines a pydantic
``Spec``, a pure ``local(spec, frame, state, rules, noise)`` that runs at a node on its own
cohort rows and returns a JSON-safe partial that already passed the node's disclosure rules,
and a pure ``combine(spec, partials, state)`` that the hub applies to the partials of one
round. ``combine`` answers with the next round's state or with the pooled result; one-shot
analyses finish after the first round, iterative ones (GLM, Cox) after convergence.
The hub's loop over rounds (:mod:`oncofed.hub.analysis.runs`) knows nothing else about an
analysis, so federated learning can drive its rounds the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from oncofed.analysis.disclosure import AnalysisRefused, AnalysisRules, Noise
from oncofed.analysis.variables import Frame


class Spec(BaseModel):
    """An analysis's parameters, as the researcher sent them (validated at hub and node)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class Outcome:
    """The hub's view after one round: either the next ``state`` or the ``result``."""

    done: bool
    state: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)


class Analysis(Protocol):
    name: str
    version: int
    iterative: bool
    epsilon_units: int  # privacy budget units one release charges at a node (0: exact, not DP)
    Spec: type[Spec]

    def start(self, spec: Any) -> dict[str, Any]: ...

    def local(
        self,
        spec: Any,
        frame: Frame,
        state: dict[str, Any],
        rules: AnalysisRules,
        noise: Noise,
    ) -> dict[str, Any]: ...

    def combine(
        self, spec: Any, partials: list[dict[str, Any]], state: dict[str, Any]
    ) -> Outcome: ...


@dataclass(frozen=True)
class Registered:
    """A module-level analysis packaged as the :class:`Analysis` protocol."""

    name: str
    version: int
    iterative: bool
    epsilon_units: int
    Spec: type[Spec]
    start: Callable[[Any], dict[str, Any]]
    local: Callable[..., dict[str, Any]]
    combine: Callable[[Any, list[dict[str, Any]], dict[str, Any]], Outcome]

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"


def spec_hash(
    algorithm: str, spec: dict[str, Any], cohort: dict[str, Any], datasets: list[str]
) -> str:
    """The canonical hash of what a run computes: a node refuses a later step of the same run
    whose hash changed, and caches noise under it (repeats reveal nothing new)."""
    canonical = json.dumps(
        {"algorithm": algorithm, "spec": spec, "cohort": cohort, "datasets": sorted(datasets)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def newton_step(partials: list[dict[str, Any]], why_singular: str) -> tuple[np.ndarray, np.ndarray]:
    """The pooled information matrix and the Newton-Raphson step from the nodes' score and
    information sums (GLM and Cox alike: the sums are what makes the federated fit equal the
    pooled one). A singular pooled matrix is refused with `why_singular`."""
    info = np.sum([np.asarray(p["information"], dtype=np.float64) for p in partials], axis=0)
    score = np.sum([np.asarray(p["score"], dtype=np.float64) for p in partials], axis=0)
    try:
        return info, np.linalg.solve(info, score)
    except np.linalg.LinAlgError as exc:
        raise AnalysisRefused("singular", why_singular) from exc
