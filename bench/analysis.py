"""Federated statistics end to end, next to the pooled fit of the same rows in one process.

    python bench/analysis.py [--nodes 10] [--patients 100000]

A hub and N nodes run as processes on loopback, each with `--patients` synthetic patients
(the search benchmark's federation). A researcher holding a visa for every dataset runs,
through the SDK: a logistic GLM with 8 parameters to convergence (Newton rounds over the
signed task channel), a Kaplan-Meier curve in 3 groups (30-day bins, noisy), and a Cox model
stratified by node. Each is timed end to end (the client's wall time), per round, and
compared with statsmodels / lifelines fitted on all rows pooled in this process (the floor).
Results go to bench/results/analysis.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from measure import machine, summary  # bench/measure.py
from oncofed import __version__
from oncofed.analysis import ANALYSES
from oncofed.analysis.variables import FRAME_SQL, Frame, frame_from_columns
from oncofed.hub.admin import add_user, create_api_token, open_hub
from oncofed.local import LocalFederation
from oncofed.node.policy import NodePolicy, write_policy
from oncofed.node.store import NodeStore
from oncofed.security.keys import SigningKey
from oncofed.security.visas import sign_visa, visa_claims
from oncofed.settings import load_hub_settings, load_node_settings, save_settings
from oncofed.synth.load import fill_node

GLM = "vital_status ~ age + stage + sex + surgery + chemotherapy"  # 8 parameters
COX = "survival ~ age + stage + sex"
TARGET_GLM_SECONDS = 2.0
TARGET_ROUND_MS = 150.0
STAGES = ("I", "II", "III", "IV")


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def frame_of(node_dir: Path) -> Frame:
    settings = load_node_settings(node_dir)
    store = NodeStore(settings.resolve(settings.store_file), threads=1)
    try:
        index = store.search_index()
        with store.reading() as con:
            data = con.execute(FRAME_SQL).fetchnumpy()
        return frame_from_columns(data, tuple(d[0] for d in index.datasets))
    finally:
        store.close()


def pooled(frames: list[Frame]) -> pd.DataFrame:
    parts = []
    for node, f in enumerate(frames):
        c = f.columns
        parts.append(
            pd.DataFrame(
                {
                    "age": c["age"],
                    "stage": pd.Categorical.from_codes(
                        np.where(c["stage"] >= 0, c["stage"], -1), categories=STAGES
                    ),
                    "sex": pd.Categorical.from_codes(
                        np.where(c["sex"] >= 0, c["sex"], -1), categories=("female", "male")
                    ),
                    "vital_status": c["vital_status"],
                    "surgery": c["surgery"],
                    "chemotherapy": c["chemotherapy"],
                    "T": c["survival.time"],
                    "E": c["survival.event"],
                    "node": node,
                }
            )
        )
    return pd.concat(parts, ignore_index=True).dropna()


def visas(fed: LocalFederation, names: list[str], who: str) -> str:
    """The researcher's visas, signed with the hub's key as the negotiation would."""
    hub = load_hub_settings(fed.hub.directory)
    key = SigningKey.load(hub.resolve(hub.key_file))
    tokens = []
    for name in names:
        node = load_node_settings(fed.nodes[name].directory)
        claims = visa_claims(
            issuer=hub.url,
            subject=who,
            audience=node.node_id,
            dataset=f"{node.provider_id}-cohort",
            source=f"{hub.url}/dac",
            lifetime=timedelta(hours=6),
        )
        tokens.append(sign_visa(claims, key))
    return " ".join(tokens)


def max_diff(got: pd.DataFrame, params: pd.Series, column: str = "coef") -> float:
    return float(np.max(np.abs(got[column].to_numpy() - params[got.index].to_numpy())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "analysis.json"
    )
    args = parser.parse_args()
    measured_on = machine()
    tmp = args.workdir or Path(tempfile.mkdtemp(prefix="oncofed-bench-analysis-"))
    fed = LocalFederation(tmp)
    names = [f"node-{i + 1:02d}" for i in range(args.nodes)]
    datasets = [f"{n}:p{i + 1}-cohort" for i, n in enumerate(names)]
    out: dict[str, Any] = {}
    try:
        fed.init_hub("bench hub")
        fed.start_hub()
        policy = NodePolicy(
            allowed_tasks=["node.info", "analysis.step"],
            allowed_algorithms=sorted(ANALYSES),
        )
        policy = policy.model_copy(
            update={
                "analysis": policy.analysis.model_copy(update={"runs_per_day": 100_000}),
                "disclosure": policy.disclosure.model_copy(
                    update={"daily_budget": 1e6, "rate_limit_per_minute": 100_000}
                ),
            }
        )
        for i, name in enumerate(names):
            fed.add_node(name, f"p{i + 1}", start=False)
            settings = load_node_settings(fed.nodes[name].directory)
            settings.store_threads = 1
            save_settings(settings)
            write_policy(settings.resolve(settings.policy_file), policy)
        say(f"loading {args.nodes} x {args.patients} patients")
        started = time.perf_counter()
        with ProcessPoolExecutor(max(1, os.cpu_count() or 2)) as pool:
            loaded = list(
                pool.map(
                    fill_node,
                    [fed.nodes[n].directory for n in names],
                    range(args.nodes),
                    [args.patients] * args.nodes,
                )
            )
        load_seconds = time.perf_counter() - started
        say(f"loaded in {time.perf_counter() - started:.0f} s; reading the pooled rows")
        frames = [frame_of(fed.nodes[n].directory) for n in names]
        say("starting the nodes")
        for name in names:
            fed.start_node(name)
        _, engine = open_hub(fed.hub.directory)
        add_user(engine, "researcher", ["researcher"])
        token = create_api_token(engine, "researcher", days=1)
        engine.dispose()
        passport = visas(fed, names, "researcher")
        from oncofed.client.hub import HubClient

        client = HubClient(fed.hub.url, token, timeout=600)
        kw = {"passport": passport, "round_timeout_seconds": 120}

        say("running the analyses")
        # GLM, repeated (each run is a new run id: the first round reads the nodes' frames)
        glm_runs = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            glm = client.analyse.glm(GLM, datasets, **kw)
            glm_runs.append((time.perf_counter() - t0, glm))
        glm_seconds = [s for s, _ in glm_runs]
        glm = glm_runs[-1][1]
        rounds_ms = [r["seconds"] * 1000 for _, g in glm_runs for r in g.run["rounds"]]

        t0 = time.perf_counter()
        km = client.analyse.km(datasets, group_by="stage", bin_days=30, **kw)
        km_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        cox = client.analyse.cox(COX, datasets, **kw)
        cox_seconds = time.perf_counter() - t0
        client.close()
    finally:
        fed.stop()
        if args.workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)

    # The floor: the same fits on all rows pooled in this process.
    import statsmodels.api as sm
    import statsmodels.formula.api as smf
    from lifelines import CoxPHFitter, KaplanMeierFitter

    say("pooled fits (statsmodels, lifelines)")
    df = pooled(frames)
    t0 = time.perf_counter()
    ref = smf.glm(GLM, df, family=sm.families.Binomial()).fit(tol=1e-12)
    glm_pooled = time.perf_counter() - t0
    got = glm.to_frame()
    t0 = time.perf_counter()
    km_worst = km_core = 0.0
    for level in km.result["groups"]:
        sub = df[df["stage"] == level]
        fit = KaplanMeierFitter().fit(sub["T"], sub["E"])
        for row in km.result["groups"][level]["table"]:
            ref_s = float(fit.survival_function_at_times(row["end"] - 1).iloc[0])
            km_worst = max(km_worst, abs(row["survival"] - ref_s))
            if row["at_risk"] >= 100:
                km_core = max(km_core, abs(row["survival"] - ref_s))
    km_pooled = time.perf_counter() - t0
    x = pd.get_dummies(df[["stage", "sex"]], prefix_sep="[T.", dtype=float)
    x = x.rename(columns=lambda c: f"{c}]").drop(columns=["stage[T.I]", "sex[T.female]"])
    t0 = time.perf_counter()
    ref_cox = CoxPHFitter().fit(
        pd.concat([df[["age", "T", "E", "node"]], x], axis=1),
        "T",
        "E",
        strata=["node"],
        fit_options={"precision": 1e-12},
    )
    cox_pooled = time.perf_counter() - t0
    got_cox = cox.to_frame()

    out = {
        "benchmark": "analysis",
        "oncofed_version": __version__,
        "machine": measured_on,
        "nodes": args.nodes,
        "patients_per_node": args.patients,
        "patients_loaded": sum(loaded),
        "rows_pooled": len(df),
        "load_seconds": round(load_seconds, 1),
        "glm": {
            "formula": GLM,
            "parameters": len(got),
            "seconds_end_to_end": round(min(glm_seconds), 3),
            "seconds_end_to_end_runs": [round(s, 3) for s in glm_seconds],
            "rounds": len(glm.run["rounds"]),
            "round_ms": summary(rounds_ms),
            "first_round_ms": round(glm.run["rounds"][0]["seconds"] * 1000, 1),
            "max_abs_diff_vs_pooled": max_diff(got, ref.params),
            "max_abs_se_diff_vs_pooled": max_diff(got, ref.bse, "std_err"),
        },
        "km": {
            "groups": len(km.result["groups"]),
            "bin_days": 30,
            "seconds_end_to_end": round(km_seconds, 3),
            "max_abs_survival_diff_vs_pooled_exact": km_worst,
            "max_abs_survival_diff_where_at_risk_ge_100": km_core,
            "note": "30-day bins with noise and small-bin carry-over, against exact KM",
        },
        "cox": {
            "formula": COX,
            "seconds_end_to_end": round(cox_seconds, 3),
            "rounds": len(cox.run["rounds"]),
            "max_abs_diff_vs_pooled": max_diff(got_cox, ref_cox.params_),
        },
        "pooled": {
            "seconds": round(glm_pooled, 3),
            "glm_statsmodels_seconds": round(glm_pooled, 3),
            "km_lifelines_seconds": round(km_pooled, 3),
            "cox_lifelines_seconds": round(cox_pooled, 3),
        },
        "target": {
            "glm_seconds": TARGET_GLM_SECONDS,
            "glm_met": min(glm_seconds) <= TARGET_GLM_SECONDS,
            "round_ms": TARGET_ROUND_MS,
            "round_p50_met": summary(rounds_ms)["p50_ms"] <= TARGET_ROUND_MS,
            "exact_1e-6_met": max_diff(got, ref.params) <= 1e-6
            and max_diff(got_cox, ref_cox.params_) <= 1e-6,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
