"""Kaplan-Meier survival curves from per-bin event and censoring counts.

A node releases, per group and per time bin of the requested width, how many patients died
and how many were censored, plus how many were still at risk where its table stops; never
an event time. The hub sums the bins over nodes, derives the risk sets and multiplies the
conditional survivals. With 1-day bins, threshold 1 and no noise this is lifelines'
``KaplanMeierFitter`` on the pooled rows exactly; with wider bins a bin's deaths are taken
at its end (tests bound the difference; TIER3.md measured ≤ 7e-4 at 7 days, 3.1e-3 at 30
and 8.5e-3 at 90).

Disclosure at the node: bin width at least the policy's ``km_min_bin_days``; a bin whose
event or censored count is below the threshold is carried into the next bin; the table
stops where the node's risk set falls below the threshold; every released count gets
cached Laplace noise (one histogram, each patient in one cell: one budget unit). Events and
censorings carry separately, so sparse censoring never drags deaths to a later bin.
Peers: vantage6 ``v6-kaplan-meier-py`` (releases event times), DataSHIELD ``ds.survfit``.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from oncofed.analysis.base import Outcome, Registered, Spec
from oncofed.analysis.disclosure import (
    AnalysisRefused,
    AnalysisRules,
    Noise,
    check_cohort,
    check_tabulated_levels,
)
from oncofed.analysis.variables import Frame, variable


class KmSpec(Spec):
    group_by: str | None = Field(None, description="a categorical or binary variable")
    bin_days: int = Field(30, ge=1, le=3650, description="width of a time bin in days")
    horizon_days: int = Field(3650, ge=1, le=36500, description="follow-up shown")

    @field_validator("group_by")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and variable(value, "km").kind not in ("categorical", "binary"):
            raise ValueError(f"{value!r} is not categorical: KM groups by a category")
        return value


def start(spec: KmSpec) -> dict[str, Any]:
    return {}


def group_levels(name: str | None) -> list[str]:
    if name is None:
        return ["all"]
    v = variable(name)
    return list(v.levels) if v.kind == "categorical" else ["0", "1"]


def _group_codes(frame: Frame, name: str | None) -> np.ndarray:
    if name is None:
        return np.zeros(frame.rows, dtype=np.int64)
    col = frame.columns[name]
    if variable(name).kind == "categorical":
        return col.astype(np.int64)
    return np.where(np.isnan(col), -1, col).astype(np.int64)


def local(
    spec: KmSpec, frame: Frame, state: dict[str, Any], rules: AnalysisRules, noise: Noise
) -> dict[str, Any]:
    if spec.bin_days < rules.km_min_bin_days:
        raise AnalysisRefused(
            "bin_too_narrow",
            f"this node releases Kaplan-Meier bins of at least {rules.km_min_bin_days} days",
        )
    time = frame.columns["survival.time"]
    event = frame.columns["survival.event"]
    groups = _group_codes(frame, spec.group_by)
    keep = ~np.isnan(time) & ~np.isnan(event) & (groups >= 0)
    levels = group_levels(spec.group_by)
    check_cohort(int(keep.sum()), rules, 0)
    check_tabulated_levels(spec.group_by or "all", len(levels), int(keep.sum()), rules)
    nbins = -(-spec.horizon_days // spec.bin_days)
    k = rules.min_cell
    out: dict[str, Any] = {"nbins": nbins, "groups": {}}
    exact: dict[str, tuple[list[list[int]], int, int]] = {}
    for code, level in enumerate(levels):
        sel = keep & (groups == code)
        if not sel.any():
            continue
        t = np.clip(time[sel], 0, None)
        e = event[sel] == 1
        b = np.minimum((t // spec.bin_days).astype(np.int64), nbins)  # nbins: beyond horizon
        events = np.bincount(b[e], minlength=nbins + 1)
        censored = np.bincount(b[~e], minlength=nbins + 1)
        at_risk = len(t)
        rows: list[list[int]] = []
        carry_e = carry_c = 0
        end = nbins
        for i in range(nbins):
            if at_risk - carry_e - carry_c < k:
                end = i
                break
            # Events and censorings are carried separately: a small count of one kind moves
            # on to the next bin, the other is released where it happened.
            ce, cc = carry_e + int(events[i]), carry_c + int(censored[i])
            out_e = ce if ce >= k else 0
            out_c = cc if cc >= k else 0
            carry_e, carry_c = ce - out_e, cc - out_c
            if out_e or out_c:
                rows.append([i, out_e, out_c])
                at_risk -= out_e + out_c
        exact[level] = (rows, at_risk, end)
    if not exact:
        raise AnalysisRefused("small_cohort", "no patient of the cohort has survival data")
    draws = noise(
        [
            (f"{lv}:{r[0]}:{w}", 1.0)
            for lv, (rows, _, _) in exact.items()
            for r in rows
            for w in ("e", "c")
        ]
        + [(f"{lv}:end", 1.0) for lv in exact]
    )
    for level, (rows, at_end, end) in exact.items():
        released = [
            [
                i,
                max(0, ce + draws[f"{level}:{i}:e"]) if ce else 0,
                max(0, cc + draws[f"{level}:{i}:c"]) if cc else 0,
            ]
            for i, ce, cc in rows
        ]
        out["groups"][level] = {
            "bins": released,
            "at_end": max(0, at_end + draws[f"{level}:end"]),
            "end_bin": end,
        }
    return out


def combine(spec: KmSpec, partials: list[dict[str, Any]], state: dict[str, Any]) -> Outcome:
    nbins = -(-spec.horizon_days // spec.bin_days)
    z = NormalDist().inv_cdf(0.975)
    curves: dict[str, Any] = {}
    for level in group_levels(spec.group_by):
        events = np.zeros(nbins + 1)
        censored = np.zeros(nbins + 1)
        leaving = np.zeros(nbins + 1)  # nodes' tables that stop: their rest leaves here
        nodes = 0
        for p in partials:
            g = p["groups"].get(level)
            if g is None:
                continue
            nodes += 1
            for i, e, c in g["bins"]:
                events[i] += e
                censored[i] += c
            leaving[g["end_bin"]] += g["at_end"]
        n = events.sum() + censored.sum() + leaving.sum()
        if nodes == 0 or n == 0:
            continue
        removed_before = np.concatenate([[0.0], np.cumsum(events + censored)[:-1]])
        at_risk = n - removed_before - np.cumsum(leaving)
        rows: list[dict[str, Any]] = []
        surv, greenwood = 1.0, 0.0
        median: float | None = None
        for i in range(nbins):
            if at_risk[i] <= 0:
                break
            d = events[i]
            if d == 0 and censored[i] == 0:
                continue
            surv *= 1.0 - d / at_risk[i]
            if at_risk[i] > d:
                greenwood += d / (at_risk[i] * (at_risk[i] - d))
            lo, hi = _ci(surv, greenwood, z)
            if median is None and surv <= 0.5:
                median = float(min((i + 1) * spec.bin_days, spec.horizon_days))
            rows.append(
                {
                    "start": i * spec.bin_days,
                    "end": min((i + 1) * spec.bin_days, spec.horizon_days),
                    "at_risk": int(at_risk[i]),
                    "events": int(d),
                    "censored": int(censored[i]),
                    "survival": surv,
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )
        curves[level] = {
            "n": int(n),
            "events": int(events.sum()),
            "median": median,
            "table": rows,
            "nodes": nodes,
        }
    return Outcome(
        True,
        result={
            "analysis": "km",
            "group_by": spec.group_by,
            "bin_days": spec.bin_days,
            "horizon_days": spec.horizon_days,
            "groups": curves,
        },
    )


def _ci(surv: float, greenwood: float, z: float) -> tuple[float, float]:
    """lifelines' log(-log) confidence interval (its default)."""
    if surv <= 0.0 or surv >= 1.0 or greenwood == 0.0:
        return surv, surv
    v = np.log(surv)
    spread = z * np.sqrt(greenwood) / v
    return float(np.exp(-np.exp(np.log(-v) - spread))), float(np.exp(-np.exp(np.log(-v) + spread)))


ANALYSIS = Registered(
    name="km",
    version=1,
    iterative=False,
    epsilon_units=1,
    Spec=KmSpec,
    start=start,
    local=local,
    combine=combine,
)
