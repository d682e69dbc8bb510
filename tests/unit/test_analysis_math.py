"""Federated analyses against the pooled computation, in process (local + combine calls).

The reference is the pooled fit on the same rows: statsmodels' GLM, lifelines'
CoxPHFitter(strata=node) and KaplanMeierFitter. Hypothesis splits one data set into 1-5
nodes at random: the pooled answer must not depend on the split.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oncofed.analysis import ANALYSES
from oncofed.analysis.disclosure import AnalysisRefused, AnalysisRules, no_noise
from oncofed.analysis.variables import Frame

EXACT = AnalysisRules(min_cohort=1, min_cell=1, km_min_bin_days=1, min_sites=1, noise=False)
STAGES = ("I", "II", "III", "IV")


def cohort(n: int, seed: int = 1) -> pd.DataFrame:
    """Rows with a known relation between covariates and outcomes."""
    rng = np.random.default_rng(seed)
    age = rng.integers(30, 90, n).astype(float)
    stage = rng.choice(STAGES, n, p=[0.3, 0.3, 0.25, 0.15])
    sex = rng.choice(("female", "male"), n)
    s = np.array([STAGES.index(x) for x in stage])
    male = (sex == "male").astype(float)
    eta = -4 + 0.04 * age + 0.5 * s + 0.3 * male
    dead = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    hazard = np.exp(-7.5 + 0.02 * age + 0.4 * s + 0.2 * male)
    t_event = rng.exponential(1 / hazard)
    t_cens = rng.uniform(100, 3000, n)
    time = np.ceil(np.minimum(t_event, t_cens))
    event = (t_event <= t_cens).astype(float)
    return pd.DataFrame(
        {
            "age": age,
            "stage": stage,
            "sex": sex,
            "vital_status": dead,
            "survival.time": time,
            "survival.event": event,
            "survival_days": time,
            "surgery": (rng.random(n) < 0.4).astype(float),
        }
    )


def frame(df: pd.DataFrame) -> Frame:
    return Frame.from_records({c: df[c].tolist() for c in df.columns})


def federated(algorithm: str, spec: dict[str, Any], parts: list[pd.DataFrame]) -> dict[str, Any]:
    """The hub's loop over rounds, in process."""
    a = ANALYSES[algorithm]
    s = a.Spec.model_validate(spec)
    state = a.start(s)
    for _ in range(200):
        partials = [a.local(s, frame(p), state, EXACT, no_noise) for p in parts]
        outcome = a.combine(s, partials, state)
        if outcome.done:
            return outcome.result
        state = outcome.state
    raise AssertionError("did not finish")


def split(df: pd.DataFrame, cuts: list[int]) -> list[pd.DataFrame]:
    bounds = [0, *sorted(set(cuts)), len(df)]
    return [df.iloc[a:b] for a, b in itertools.pairwise(bounds) if b > a]


# -- GLM -----------------------------------------------------------------------------------


def _statsmodels_glm(df: pd.DataFrame, formula: str, family: str) -> Any:
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    fam = {
        "binomial": sm.families.Binomial(),
        "poisson": sm.families.Poisson(),
        "gaussian": sm.families.Gaussian(),
    }[family]
    data = df.rename(columns={"survival.time": "time"})
    data["stage"] = pd.Categorical(data["stage"], categories=STAGES)
    data["sex"] = pd.Categorical(data["sex"], categories=("female", "male"))
    return smf.glm(formula, data, family=fam).fit(tol=1e-12)


@pytest.mark.parametrize(
    ("family", "formula", "sm_formula"),
    [
        ("binomial", "vital_status ~ age + stage + sex", "vital_status ~ age + stage + sex"),
        ("poisson", "surgery ~ age + stage", "surgery ~ age + stage"),
        ("gaussian", "survival_days ~ age + stage + sex", "survival_days ~ age + stage + sex"),
    ],
)
def test_glm_equals_statsmodels_on_pooled_rows(family: str, formula: str, sm_formula: str) -> None:
    df = cohort(1500)
    result = federated("glm", {"formula": formula, "family": family}, split(df, [400, 900]))
    ref = _statsmodels_glm(df, sm_formula, family)
    beta = np.array([r["coef"] for r in result["coefficients"]])
    se = np.array([r["std_err"] for r in result["coefficients"]])
    names = [r["term"] for r in result["coefficients"]]
    assert sorted(names) == sorted(ref.params.index)
    np.testing.assert_allclose(beta, ref.params[names].to_numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(se, ref.bse[names].to_numpy(), atol=1e-6, rtol=0)
    assert result["converged"] and result["n"] == 1500
    assert abs(result["deviance"] - ref.deviance) < 1e-6 * max(1.0, ref.deviance)


# -- Cox -----------------------------------------------------------------------------------


def _lifelines_cox(parts: list[pd.DataFrame], terms: list[str]) -> Any:
    from lifelines import CoxPHFitter

    rows = []
    for i, p in enumerate(parts):
        d = pd.DataFrame({"T": p["survival.time"], "E": p["survival.event"], "node": i})
        for t in terms:
            if t == "stage":
                for level in STAGES[1:]:
                    d[f"stage[T.{level}]"] = (p["stage"] == level).astype(float)
            elif t == "sex":
                d["sex[T.male]"] = (p["sex"] == "male").astype(float)
            else:
                d[t] = p[t]
        rows.append(d)
    # lifelines stops at |Δβ| < 1e-7 by default (1.7e-5 from the optimum here); tighter:
    return CoxPHFitter().fit(
        pd.concat(rows), "T", "E", strata=["node"], fit_options={"precision": 1e-12}
    )


def test_cox_stratified_by_node_equals_lifelines() -> None:
    df = cohort(1200, seed=3)
    parts = split(df, [300, 700])
    result = federated("cox", {"formula": "survival ~ age + stage + sex"}, parts)
    ref = _lifelines_cox(parts, ["age", "stage", "sex"])
    names = [r["term"] for r in result["coefficients"]]
    beta = np.array([r["coef"] for r in result["coefficients"]])
    se = np.array([r["std_err"] for r in result["coefficients"]])
    np.testing.assert_allclose(beta, ref.params_[names].to_numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(se, ref.standard_errors_[names].to_numpy(), atol=1e-6, rtol=0)
    assert abs(result["log_likelihood"] - ref.log_likelihood_) < 1e-6


# -- Kaplan-Meier --------------------------------------------------------------------------


def test_km_one_day_bins_equal_lifelines_exactly() -> None:
    from lifelines import KaplanMeierFitter

    df = cohort(800, seed=5)
    result = federated("km", {"bin_days": 1, "horizon_days": 5000}, split(df, [200, 500]))
    table = result["groups"]["all"]["table"]
    km = KaplanMeierFitter().fit(df["survival.time"], df["survival.event"])
    ref = km.survival_function_["KM_estimate"]
    at_risk = km.event_table["at_risk"]
    for row in table:
        assert row["survival"] == pytest.approx(ref.loc[row["start"]], abs=1e-12)
        assert row["at_risk"] == at_risk.loc[row["start"]]
    ci = km.confidence_interval_
    last = table[-1]
    assert last["ci_low"] == pytest.approx(ci.loc[last["start"]].iloc[0], abs=1e-9)
    assert last["ci_high"] == pytest.approx(ci.loc[last["start"]].iloc[1], abs=1e-9)


@pytest.mark.parametrize(("bin_days", "bound"), [(7, 1e-3), (30, 4e-3), (90, 1.2e-2)])
def test_km_binned_stays_within_bound(bin_days: int, bound: float) -> None:
    """Default binning: survival at each bin's end within a documented bound of lifelines."""
    from lifelines import KaplanMeierFitter

    df = cohort(1500, seed=6)
    result = federated("km", {"bin_days": bin_days, "group_by": "stage"}, split(df, [500]))
    worst = 0.0
    for level, curve in result["groups"].items():
        sub = df[df["stage"] == level]
        km = KaplanMeierFitter().fit(sub["survival.time"], sub["survival.event"])
        for row in curve["table"]:
            ref = float(km.survival_function_at_times(row["end"] - 1).iloc[0])
            worst = max(worst, abs(row["survival"] - ref))
    assert worst <= bound


# -- crosstab and summary ------------------------------------------------------------------


def test_crosstab_and_summary_equal_pandas_without_noise() -> None:
    df = cohort(600, seed=8)
    parts = split(df, [150, 420])
    tab = federated("crosstab", {"row": "stage", "column": "sex"}, parts)
    ref = pd.crosstab(df["stage"], df["sex"]).reindex(index=STAGES, columns=["female", "male"])
    assert tab["counts"] == ref.to_numpy().tolist()
    summary = federated("summary", {"variable": "age"}, parts)
    assert summary["n"] == 600
    assert summary["mean"] == pytest.approx(df["age"].mean(), abs=1e-9)
    assert summary["sd"] == pytest.approx(df["age"].std(), abs=1e-9)
    assert abs(summary["quantiles"]["0.5"] - df["age"].median()) <= 5  # one 5-year bin


# -- the split does not matter (hypothesis) ------------------------------------------------

POOLED = cohort(400, seed=11)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 12), min_size=0, max_size=4))
def test_answers_do_not_depend_on_the_split(cuts: list[int]) -> None:
    """1-5 nodes of at least 30 rows each (smaller ones are refused as saturated)."""
    parts = split(POOLED, [30 * c for c in cuts])
    glm = federated("glm", {"formula": "vital_status ~ age + sex"}, parts)
    ref = federated("glm", {"formula": "vital_status ~ age + sex"}, [POOLED])
    for a, b in zip(glm["coefficients"], ref["coefficients"], strict=True):
        assert a["coef"] == pytest.approx(b["coef"], abs=1e-9)
        assert a["std_err"] == pytest.approx(b["std_err"], abs=1e-9)
    km = federated("km", {"bin_days": 1}, parts)["groups"]["all"]["table"]
    km_ref = federated("km", {"bin_days": 1}, [POOLED])["groups"]["all"]["table"]
    assert [r["survival"] for r in km] == pytest.approx([r["survival"] for r in km_ref], abs=1e-12)
    tab = {"row": "stage", "column": "surgery"}
    assert (
        federated("crosstab", tab, parts)["counts"]
        == (federated("crosstab", tab, [POOLED])["counts"])
    )


# -- disclosure, in the pure functions -----------------------------------------------------

STRICT = AnalysisRules()


def test_saturated_glm_refused() -> None:
    df = cohort(40, seed=2)
    a = ANALYSES["glm"]
    spec = a.Spec.model_validate({"formula": "vital_status ~ age + stage + sex + surgery"})
    with pytest.raises(AnalysisRefused) as err:
        a.local(spec, frame(df), a.start(spec), STRICT, no_noise)
    assert err.value.reason == "saturated"


def test_glm_small_level_and_separation_refused() -> None:
    df = cohort(400, seed=2)
    df.loc[df.index[:3], "stage"] = "IV"
    df.loc[df["stage"] == "IV", "vital_status"] = 1.0
    a = ANALYSES["glm"]
    spec = a.Spec.model_validate({"formula": "vital_status ~ age + stage"})
    with pytest.raises(AnalysisRefused) as err:
        a.local(spec, frame(df), a.start(spec), STRICT, no_noise)
    assert err.value.reason == "separation"


def test_crosstab_small_cells_withheld_and_noised() -> None:
    df = cohort(300, seed=9)
    df.loc[df.index[:4], "stage"] = "IV"
    df.loc[df["stage"] == "IV", "sex"] = "female"
    df.loc[df.index[:4], "sex"] = "male"
    a = ANALYSES["crosstab"]
    spec = a.Spec.model_validate({"row": "stage", "column": "sex"})
    draws = iter(range(-3, 100))
    partial = a.local(
        spec, frame(df), {}, STRICT, lambda wanted: {k: next(draws) % 3 - 1 for k, _ in wanted}
    )
    exact = pd.crosstab(df["stage"], df["sex"]).reindex(index=STAGES, columns=["female", "male"])
    cells = partial["cells"]
    assert cells[7] is None  # stage IV, male: 4 patients
    released = [c for c in cells if c is not None]
    assert released and released != [x for x in exact.to_numpy().ravel() if x >= 10]


def test_summary_refuses_a_dominated_sum() -> None:
    df = pd.DataFrame({"surgery": [1.0] + [0.0] * 99})
    a = ANALYSES["summary"]
    spec = a.Spec.model_validate({"variable": "surgery"})
    with pytest.raises(AnalysisRefused) as err:
        a.local(spec, frame(df), {}, STRICT, no_noise)
    assert err.value.reason == "dominance"


def test_km_refuses_narrow_bins_and_carries_small_bins() -> None:
    df = cohort(300, seed=4)
    a = ANALYSES["km"]
    with pytest.raises(AnalysisRefused, match="at least 30 days"):
        a.local(a.Spec.model_validate({"bin_days": 7}), frame(df), {}, STRICT, no_noise)
    partial = a.local(a.Spec.model_validate({"bin_days": 30}), frame(df), {}, STRICT, no_noise)
    for _, e, c in partial["groups"]["all"]["bins"]:
        assert e == 0 or e >= 10
        assert c == 0 or c >= 10


def test_formula_accepts_catalogue_names_only() -> None:
    a = ANALYSES["glm"]
    for bad in ("vital_status ~ age + eval(x)", "vital_status ~ I(age**2)", "y ~ age", "age"):
        with pytest.raises(ValueError):
            a.Spec.model_validate({"formula": bad})


def test_km_small_bin_carry_keeps_the_curve_close() -> None:
    """With the default threshold (10), small event or censoring counts move to the next
    bin; deaths must not wait for censorings (a bug once shifted them by months: 0.12)."""
    from lifelines import KaplanMeierFitter

    df = cohort(6000, seed=12)
    rules = AnalysisRules(noise=False)  # the default threshold, no noise
    a = ANALYSES["km"]
    spec = a.Spec.model_validate({"bin_days": 30, "group_by": "stage"})
    parts = [a.local(spec, frame(p), {}, rules, no_noise) for p in split(df, [3000])]
    result = a.combine(spec, parts, {}).result
    worst = 0.0
    for level, curve in result["groups"].items():
        sub = df[df["stage"] == level]
        km = KaplanMeierFitter().fit(sub["survival.time"], sub["survival.event"])
        for row in curve["table"]:
            if row["at_risk"] >= 100:  # where a curve is read; its tail is cut by design
                ref = float(km.survival_function_at_times(row["end"] - 1).iloc[0])
                worst = max(worst, abs(row["survival"] - ref))
    assert worst <= 0.03
