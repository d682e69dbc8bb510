"""Node-side disclosure rules of Tier 3, applied before any partial result leaves a node.

The rules (the README lists them per analysis) come from the peers' code and their holes:
DataSHIELD's nfilter.tab / nfilter.glm / nfilter.levels, vantage6's parameter-to-row
ratio, dsBase#250 (a mean dominated by one value), and vantage6#2017 (a minimum number of
sites checked only centrally was bypassed, so each node checks it itself). Every threshold
is a field of the ``[analysis]`` table of the node's ``policy.toml``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class AnalysisRules(BaseModel):
    """The ``[analysis]`` table of ``policy.toml``; every default is conservative.

    Example::

        allowed_tasks = ["node.info", "search.count", "analysis.step"]
        allowed_algorithms = ["km", "glm", "cox", "crosstab", "summary"]

        [analysis]
        min_cohort = 20        # smallest cohort any analysis runs on
        min_cell = 10          # smallest cell, level, bin or event count released or used
        km_min_bin_days = 30   # narrowest Kaplan-Meier time bin a researcher may ask for
        max_param_ratio = 0.1  # GLM / Cox parameters per row
        max_steps = 50         # rounds of one iterative run
        runs_per_day = 20      # analysis runs per researcher per UTC day
        min_sites = 2          # sites a run must address (this node counts them itself)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_cohort: int = Field(20, ge=1, description="smallest cohort (rows) analysed")
    min_cell: int = Field(10, ge=1, description="smallest released cell / level / bin count")
    km_min_bin_days: int = Field(30, ge=1, description="narrowest KM bin (1: tests only)")
    max_param_ratio: float = Field(0.1, gt=0, le=0.5, description="parameters per row")
    max_levels: int = Field(40, ge=2, description="levels of a tabulated variable")
    max_level_ratio: float = Field(0.33, gt=0, le=1, description="levels per row")
    max_steps: int = Field(50, ge=1, le=500, description="rounds per iterative run")
    runs_per_day: int = Field(20, ge=1, description="runs per researcher per UTC day")
    min_sites: int = Field(2, ge=1, description="sites a run must address")
    dominance: float = Field(0.9, gt=0, le=1, description="largest share of a sum one value has")
    max_abs_coefficient: float = Field(1e4, gt=0, description="|beta| beyond this is refused")
    noise: bool = Field(True, description="Laplace noise on noisy releases (off: tests only)")


class AnalysisRefused(ValueError):
    """A node refuses to release a partial result; ``reason`` is a short machine word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# (statistic, scale) -> integer Laplace draws, cached by the node per canonical run spec.
Noise = Callable[[Sequence[tuple[str, float]]], dict[str, int]]


def no_noise(wanted: Sequence[tuple[str, float]]) -> dict[str, int]:
    return {name: 0 for name, _ in wanted}


def check_cohort(n: int, rules: AnalysisRules, min_count: int) -> None:
    k = max(rules.min_cohort, min_count)
    if n < k:
        raise AnalysisRefused(
            "small_cohort", f"the cohort at this node has fewer than {k} patients with the data"
        )


def check_parameters(p: int, n: int, rules: AnalysisRules) -> None:
    """Saturated or near-saturated models reveal rows (DataSHIELD nfilter.glm)."""
    if p > rules.max_param_ratio * n:
        raise AnalysisRefused(
            "saturated",
            f"a model with {p} parameters on {n} rows at this node exceeds the allowed "
            f"{rules.max_param_ratio:g} parameters per row; use fewer terms or a larger cohort",
        )


def check_levels(counts: dict[str, list[int]], rules: AnalysisRules, what: str = "rows") -> None:
    """Each used level of a categorical or binary term holds at least ``min_cell`` rows."""
    for name, per_level in counts.items():
        small = [i for i, c in enumerate(per_level) if 0 < c < rules.min_cell]
        if small:
            raise AnalysisRefused(
                "small_level",
                f"variable {name!r} has a level with fewer than {rules.min_cell} {what} at "
                "this node; merge levels or choose another cohort",
            )


def check_tabulated_levels(name: str, levels: int, n: int, rules: AnalysisRules) -> None:
    if levels > rules.max_levels or levels > rules.max_level_ratio * n:
        raise AnalysisRefused(
            "too_many_levels",
            f"variable {name!r} has {levels} levels for {n} rows at this node; the limits are "
            f"{rules.max_levels} levels and {rules.max_level_ratio:g} levels per row",
        )


def check_coefficients(beta: Sequence[float] | np.ndarray, rules: AnalysisRules) -> None:
    """Coefficients the hub sends back: finite and bounded (a probe of one row's value
    through an extreme coefficient, or a diverging fit, is refused)."""
    b = np.asarray(beta, dtype=np.float64)
    if not np.all(np.isfinite(b)) or np.any(np.abs(b) > rules.max_abs_coefficient):
        raise AnalysisRefused(
            "bad_coefficients",
            f"coefficients must be finite and within ±{rules.max_abs_coefficient:g}",
        )


def check_dominance(values: np.ndarray, rules: AnalysisRules) -> None:
    """dsBase#250: a sum in which one value dominates reveals that value."""
    total = float(np.abs(values).sum())
    if total > 0 and float(np.abs(values).max()) > rules.dominance * total:
        raise AnalysisRefused(
            "dominance",
            f"one value is more than {rules.dominance:.0%} of the sum at this node",
        )


def noisy(count: int, draw: int, threshold: int) -> int | None:
    """A released count: exact plus cached noise, floored at 0; None (withheld) below the
    threshold. Thresholding the noisy value keeps the threshold itself from leaking."""
    value = max(0, count + draw)
    return value if value >= threshold else None
