"""Cox proportional hazards, stratified by node (Efron ties), by Newton over rounds.

Each node is a stratum: it returns the gradient, the information (minus the Hessian) and
the log partial likelihood of its own rows at the hub's β, and the sum over nodes is the
stratified model's (each stratum's partial likelihood is a product over its own risk sets,
so nothing else needs to cross the wire). This equals lifelines'
``CoxPHFitter().fit(..., strata=["node"])`` on the pooled rows to its convergence
tolerance (tests: 1e-6). No event time leaves a node, unlike an unstratified Cox
(WebDISCO, vantage6 ``v6-coxph``), which needs the pooled risk sets.

Released per round: a p-vector, a pxp matrix and a number; exact, bounded by the same
rules as the GLM plus a minimum number of events, overall and per covariate level.
Peers: vantage6 ``v6-coxph-py`` (unstratified), DataSHIELD ``ds.coxphSLMA`` (per-study
fits meta-analysed: an approximation, where this is the pooled stratified fit).
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from oncofed.analysis.base import Outcome, Registered, Spec, newton_step
from oncofed.analysis.disclosure import (
    AnalysisRefused,
    AnalysisRules,
    Noise,
    check_coefficients,
    check_levels,
    check_parameters,
)
from oncofed.analysis.formula import column_names, design, parse_formula
from oncofed.analysis.variables import Frame, variable


class CoxSpec(Spec):
    formula: str = Field(description="survival ~ TERM + TERM, catalogue variables only")
    tol: float = Field(1e-10, gt=0, le=1e-3, description="converged when max |Δβ| is below")
    max_iter: int = Field(30, ge=1, le=100)

    @field_validator("formula")
    @classmethod
    def _formula(cls, value: str) -> str:
        formula = parse_formula(value, "cox")
        if not formula.terms:
            raise ValueError("a Cox model needs at least one covariate")
        return str(formula)


def start(spec: CoxSpec) -> dict[str, Any]:
    p = len(column_names(parse_formula(spec.formula, "cox"), False))
    return {"beta": [0.0] * p, "iteration": 0}


def efron(
    time: np.ndarray, event: np.ndarray, x: np.ndarray, beta: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Log partial likelihood, gradient and information of one stratum (Efron ties).

    Vectorised: rows sorted by time, risk-set sums as reverse cumulative sums over the
    distinct times, and Efron's correction expanded to one term per death.
    """
    order = np.argsort(time, kind="stable")
    t, e, xs = time[order], event[order], x[order]
    eta = xs @ beta
    w = np.exp(eta)
    p = xs.shape[1]
    times, first = np.unique(t, return_index=True)
    # per distinct time: sums over all rows, and over the deaths
    wx = w[:, None] * xs
    wxx = wx[:, :, None] * xs[:, None, :]
    a0, a1, a2 = (np.add.reduceat(v, first, axis=0) for v in (w, wx, wxx))
    ew = e * w
    d0 = np.add.reduceat(ew, first)
    d1 = np.add.reduceat(ew[:, None] * xs, first, axis=0)
    d2 = np.add.reduceat(ew[:, None, None] * xs[:, :, None] * xs[:, None, :], first, axis=0)
    deaths = np.add.reduceat(e, first).astype(np.int64)
    # risk sets: everyone whose time is at or after the distinct time
    s0 = np.cumsum(a0[::-1])[::-1]
    s1 = np.cumsum(a1[::-1], axis=0)[::-1]
    s2 = np.cumsum(a2[::-1], axis=0)[::-1]
    g = np.flatnonzero(deaths)
    dg = deaths[g]
    rep = np.repeat(g, dg)
    ell = np.arange(int(dg.sum())) - np.repeat(np.cumsum(dg) - dg, dg)
    frac = ell / np.repeat(dg, dg)
    phi0 = s0[rep] - frac * d0[rep]
    phi1 = s1[rep] - frac[:, None] * d1[rep]
    phi2 = s2[rep] - frac[:, None, None] * d2[rep]
    loglik = float(np.sum(e * eta) - np.sum(np.log(phi0)))
    grad = (e[:, None] * xs).sum(axis=0) - (phi1 / phi0[:, None]).sum(axis=0)
    mean = phi1 / phi0[:, None]
    info = (phi2 / phi0[:, None, None]).sum(axis=0) - np.einsum("ij,ik->jk", mean, mean)
    del times
    return loglik, grad.reshape(p), info


def local(
    spec: CoxSpec, frame: Frame, state: dict[str, Any], rules: AnalysisRules, noise: Noise
) -> dict[str, Any]:
    formula = parse_formula(spec.formula, "cox")
    d = design(frame, formula, ["survival.time", "survival.event"], intercept=False)
    n, p = d.x.shape
    time = frame.columns["survival.time"].take(d.rows).astype(np.float64)
    event = frame.columns["survival.event"].take(d.rows).astype(np.float64)
    check_parameters(p, n, rules)
    check_levels(d.level_counts, rules)
    events = int(event.sum())
    if events < rules.min_cell:
        raise AnalysisRefused(
            "few_events", f"fewer than {rules.min_cell} events in the cohort at this node"
        )
    for t in formula.terms:  # events per level (DataSHIELD glmDS2's rule, applied to Cox)
        v = variable(t)
        if v.kind in ("categorical", "binary"):
            col = frame.columns[t].take(d.rows).astype(np.int64)
            width = len(v.levels) if v.kind == "categorical" else 2
            check_levels(
                {t: np.bincount(col[event == 1], minlength=width).tolist()}, rules, "events"
            )
    beta = np.asarray(state["beta"], dtype=np.float64)
    if beta.shape != (p,):
        raise AnalysisRefused("bad_state", f"expected {p} coefficients, got {beta.size}")
    check_coefficients(beta, rules)
    loglik, grad, info = efron(time, event, d.x, beta)
    return {
        "n": n,
        "events": events,
        "loglik": loglik,
        "score": grad.tolist(),
        "information": info.tolist(),
    }


def combine(spec: CoxSpec, partials: list[dict[str, Any]], state: dict[str, Any]) -> Outcome:
    names = column_names(parse_formula(spec.formula, "cox"), False)
    info, step = newton_step(
        partials,
        "the pooled information matrix is singular: a covariate is constant "
        "within every node or two covariates are collinear",
    )
    loglik = float(sum(p["loglik"] for p in partials))
    beta = np.asarray(state["beta"], dtype=np.float64)
    iteration = int(state.get("iteration", 0)) + 1
    if float(np.max(np.abs(step))) < spec.tol or iteration >= spec.max_iter:
        converged = float(np.max(np.abs(step))) < spec.tol
        beta = beta + step
        cov = np.linalg.inv(info)
        se = np.sqrt(np.diag(cov))
        z = beta / se
        q = NormalDist().inv_cdf(0.975)
        return Outcome(
            True,
            result={
                "analysis": "cox",
                "formula": spec.formula,
                "strata": "node",
                "ties": "efron",
                "n": int(sum(p["n"] for p in partials)),
                "events": int(sum(p["events"] for p in partials)),
                "log_likelihood": loglik,
                "iterations": iteration,
                "converged": converged,
                "coefficients": [
                    {
                        "term": names[i],
                        "coef": float(beta[i]),
                        "exp_coef": float(np.exp(beta[i])),
                        "std_err": float(se[i]),
                        "z": float(z[i]),
                        "p": float(2 * NormalDist().cdf(-abs(float(z[i])))),
                        "ci_low": float(beta[i] - q * se[i]),
                        "ci_high": float(beta[i] + q * se[i]),
                    }
                    for i in range(len(names))
                ],
                "covariance": cov.tolist(),
            },
        )
    return Outcome(False, state={"beta": (beta + step).tolist(), "iteration": iteration})


ANALYSIS = Registered(
    name="cox",
    version=1,
    iterative=True,
    epsilon_units=0,
    Spec=CoxSpec,
    start=start,
    local=local,
    combine=combine,
)
