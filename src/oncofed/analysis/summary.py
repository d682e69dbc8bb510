"""Count, mean, standard deviation and quantiles of one variable, pooled over nodes.

A node clamps values to the catalogue's bounds, refuses when one value dominates the sum
(dsBase#250), and releases a noisy count, a noisy sum and sum of squares (Laplace, scaled by
the bounds' range) and a histogram over the catalogue's bin edges with small bins withheld.
Quantiles are read off the pooled histogram (linear within a bin): a node never releases a
local quantile, which would be a patient's value (DataSHIELD's ``quantileMeanDS`` does).
Three releases: three budget units. Peers: DataSHIELD ``ds.mean``/``ds.var``/
``ds.quantileMean``/``ds.histogram``, vantage6 ``v6-summary-py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, field_validator

from oncofed.analysis.base import Outcome, Registered, Spec
from oncofed.analysis.disclosure import (
    AnalysisRules,
    Noise,
    check_cohort,
    check_dominance,
    noisy,
)
from oncofed.analysis.variables import Frame, variable

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


class SummarySpec(Spec):
    variable: str = Field(description="a numeric or binary catalogue variable")

    @field_validator("variable")
    @classmethod
    def _known(cls, value: str) -> str:
        variable(value, "summary")
        return value


def edges(name: str) -> np.ndarray:
    v = variable(name)
    return np.asarray(v.edges if v.edges else (0.0, 0.5, 1.0), dtype=np.float64)


def bounds(name: str) -> tuple[float, float]:
    v = variable(name)
    return v.bounds if v.bounds is not None else (0.0, 1.0)


def start(spec: SummarySpec) -> dict[str, Any]:
    return {}


def local(
    spec: SummarySpec, frame: Frame, state: dict[str, Any], rules: AnalysisRules, noise: Noise
) -> dict[str, Any]:
    col = frame.columns[spec.variable].astype(np.float64)
    lo, hi = bounds(spec.variable)
    values = np.clip(col[~np.isnan(col)], lo, hi)
    check_cohort(len(values), rules, 0)
    check_dominance(values, rules)
    hist = np.histogram(values, bins=edges(spec.variable))[0]
    span = hi - lo
    wanted = [(f"bin:{i}", 1.0) for i in range(len(hist))]
    wanted += [("sum", span), ("sumsq", span * span)]
    draws = noise(wanted) if rules.noise else {k: 0 for k, _ in wanted}
    return {
        "histogram": [noisy(int(h), draws[f"bin:{i}"], rules.min_cell) for i, h in enumerate(hist)],
        "n": len(values) if not rules.noise else None,
        "sum": float(values.sum()) + draws["sum"],
        "sumsq": float(np.square(values).sum()) + draws["sumsq"],
    }


def combine(spec: SummarySpec, partials: list[dict[str, Any]], state: dict[str, Any]) -> Outcome:
    e = edges(spec.variable)
    hist = np.zeros(len(e) - 1)
    withheld = np.zeros(len(e) - 1, dtype=np.int64)
    n = 0.0
    for p in partials:
        h = [0 if v is None else v for v in p["histogram"]]
        hist += h
        withheld += [v is None for v in p["histogram"]]
        # n: the exact count where noise is off (tests), else the noisy histogram's total
        n += p["n"] if p.get("n") is not None else sum(h)
    total = float(sum(p["sum"] for p in partials))
    sumsq = float(sum(p["sumsq"] for p in partials))
    mean = total / n if n else None
    var = (sumsq - n * mean * mean) / (n - 1) if mean is not None and n > 1 else None
    return Outcome(
        True,
        result={
            "analysis": "summary",
            "variable": spec.variable,
            "n": int(n),
            "mean": mean,
            "sd": float(np.sqrt(max(var, 0.0))) if var is not None else None,
            "quantiles": {f"{q:g}": quantile(hist, e, q) for q in QUANTILES},
            "histogram": {
                "edges": e.tolist(),
                "counts": hist.astype(int).tolist(),
                "withheld_at_nodes": withheld.tolist(),
            },
        },
    )


def quantile(hist: np.ndarray, e: np.ndarray, q: float) -> float | None:
    """The q-quantile of a binned distribution, linear within its bin."""
    total = hist.sum()
    if total <= 0:
        return None
    cum = np.cumsum(hist)
    target = q * total
    i = int(np.searchsorted(cum, target))
    before = cum[i - 1] if i > 0 else 0.0
    inside = (target - before) / hist[i] if hist[i] else 0.0
    return float(e[i] + inside * (e[i + 1] - e[i]))


ANALYSIS = Registered(
    name="summary",
    version=1,
    iterative=False,
    epsilon_units=3,
    Spec=SummarySpec,
    start=start,
    local=local,
    combine=combine,
)
