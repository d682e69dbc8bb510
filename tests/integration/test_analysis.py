"""Tier 3 through real processes on loopback: a hub and two nodes with synthetic patients,
visas granted through the negotiation, federated GLM and Cox equal to statsmodels /
lifelines on the pooled rows, KM plotted, a researcher without a visa refused at the nodes,
and a node that is down named in the failure (or left out with --allow-partial)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from oncofed.analysis.disclosure import AnalysisRules
from oncofed.analysis.variables import FRAME_SQL, Frame, frame_from_columns
from oncofed.client.analyse import AnalysisFailed
from oncofed.client.hub import HubClient
from oncofed.hub.admin import add_user, create_api_token, open_hub
from oncofed.local import LocalFederation
from oncofed.node.policy import NodePolicy, write_policy
from oncofed.node.store import NodeStore
from oncofed.settings import load_node_settings
from oncofed.synth.load import fill_node
from tests.integration.test_negotiation import FORM

pytestmark = pytest.mark.integration

DATASETS = ["node-1:p1-cohort", "node-2:p2-cohort"]
PATIENTS = 400


def node_frame(directory: Path) -> Frame:
    settings = load_node_settings(directory)
    store = NodeStore(settings.resolve(settings.store_file))
    try:
        index = store.search_index()
        with store.reading() as con:
            data = con.execute(FRAME_SQL).fetchnumpy()
        return frame_from_columns(data, tuple(d[0] for d in index.datasets))
    finally:
        store.close()


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    os.environ["ONCOFED_NODE_GRANT_REFRESH_SECONDS"] = "1"
    fed = LocalFederation(tmp_path_factory.mktemp("analysis") / "fed")
    try:
        fed.init_hub("analysis hub")
        fed.start_hub()
        frames = []
        for i in (1, 2):
            process = fed.add_node(f"node-{i}", f"p{i}", start=False)
            fill_node(process.directory, i - 1, PATIENTS)
            settings = load_node_settings(process.directory)
            write_policy(
                settings.resolve(settings.policy_file),
                NodePolicy(
                    allowed_tasks=["node.info", "search.count", "analysis.step"],
                    allowed_algorithms=["km", "glm", "cox", "crosstab", "summary"],
                    # min_sites 1: the node-down test goes on with one site (the
                    # refusal below a node's minimum: tests/unit/test_analysis_node.py)
                    analysis=AnalysisRules(min_cell=5, min_sites=1),
                ),
            )
            frames.append(node_frame(process.directory))
            fed.start_node(f"node-{i}")
        _, engine = open_hub(fed.hub.directory)
        passwords = {
            user: add_user(engine, user, roles)
            for user, roles in (("alice", ["researcher"]), ("bob", ["researcher"]),
                                ("dac1", ["dac:node-1"]), ("dac2", ["dac:node-2"]))
        }  # fmt: skip
        tokens = {u: create_api_token(engine, u, days=1) for u in ("alice", "bob", "dac1", "dac2")}
        tokens["admin"] = fed.admin_token
        engine.dispose()
        grant(fed.hub.url, tokens)
        yield {"fed": fed, "tokens": tokens, "frames": frames, "passwords": passwords}
    finally:
        fed.stop()
        os.environ.pop("ONCOFED_NODE_GRANT_REFRESH_SECONDS", None)


def grant(url: str, tokens: dict[str, str]) -> None:
    """alice asks for both datasets; the hub admin approves, each node's DAC grants."""

    def call(user: str, path: str, **body: object) -> dict[str, Any]:
        r = httpx.post(url + path, json=body, headers={"authorization": f"Bearer {tokens[user]}"})
        assert r.status_code < 300, r.text
        return dict(r.json())

    resources = [
        {"id": "p1-cohort", "provider": "node-1"},
        {"id": "p2-cohort", "provider": "node-2"},
    ]
    nid = call("alice", "/api/negotiations", title="t", resources=resources, form=FORM)["id"]
    for user, ev in (("alice", "SUBMIT"), ("admin", "APPROVE"), ("alice", "START")):
        view = call(user, f"/api/negotiations/{nid}/events", event=ev)
    for resource, dac in zip(view["resources"], ("dac1", "dac2"), strict=True):
        for ev in ("MARK_AS_AVAILABLE", "GRANT_ACCESS_TO_RESOURCE"):
            call(dac, f"/api/negotiations/{nid}/resources/{resource['row']}/events", event=ev)


def pooled(frames: list[Frame]) -> pd.DataFrame:
    stages = ("I", "II", "III", "IV")
    rows = []
    for node, f in enumerate(frames):
        c = f.columns
        rows.append(pd.DataFrame({
            "age": c["age"], "vital_status": c["vital_status"],
            "stage": [stages[int(s)] if s >= 0 else None for s in c["stage"]],
            "T": c["survival.time"], "E": c["survival.event"], "node": node,
        }))  # fmt: skip
    df = pd.concat(rows).dropna()
    df["stage"] = pd.Categorical(df["stage"], categories=stages)
    return df


def test_glm_and_cox_equal_the_pooled_fits(fed: dict[str, Any], tmp_path: Path) -> None:
    import statsmodels.api as sm
    import statsmodels.formula.api as smf
    from lifelines import CoxPHFitter

    client = HubClient(fed["fed"].hub.url, fed["tokens"]["alice"])
    df = pooled(fed["frames"])
    glm = client.analyse.glm("vital_status ~ age + stage", DATASETS)
    ref = smf.glm("vital_status ~ age + stage", df, family=sm.families.Binomial()).fit(tol=1e-12)
    frame = glm.to_frame()
    np.testing.assert_allclose(frame["coef"], ref.params[frame.index], atol=1e-6, rtol=0)
    np.testing.assert_allclose(frame["std_err"], ref.bse[frame.index], atol=1e-6, rtol=0)
    assert glm.result["n"] == len(df) and len(glm.run["rounds"]) == glm.result["iterations"]

    cox = client.analyse.cox("survival ~ age + stage", DATASETS)
    x = pd.get_dummies(df["stage"], prefix="stage", prefix_sep="[T.", dtype=float)
    x.columns = [f"{c}]" for c in x.columns]
    data = pd.concat([df[["age", "T", "E", "node"]], x.iloc[:, 1:]], axis=1)
    ref_cox = CoxPHFitter().fit(data, "T", "E", strata=["node"], fit_options={"precision": 1e-12})
    got = cox.to_frame()
    np.testing.assert_allclose(got["coef"], ref_cox.params_[got.index], atol=1e-6, rtol=0)

    km = client.analyse.km(DATASETS, group_by="stage", bin_days=30)
    svg = km.plot(tmp_path / "km.svg")
    assert svg.startswith("<svg") and "stage IV" in svg and "http" not in svg.split("xmlns")[1][40:]
    assert set(km.result["groups"]) <= {"I", "II", "III", "IV"}
    assert "Kaplan-Meier" in km.summary() and km.to_csv().startswith("group,")

    # the CLI prints the table statsmodels would
    env = {**os.environ, "ONCOFED_HUB": fed["fed"].hub.url, "ONCOFED_TOKEN": fed["tokens"]["alice"]}
    out = subprocess.run(
        [sys.executable, "-m", "oncofed", "analyse", "glm", "--formula", "vital_status ~ age",
         "-d", DATASETS[0], "-d", DATASETS[1], "--where", "sex=female"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Generalized Linear Model Regression Results" in out.stdout and "P>|z|" in out.stdout
    women = sum(int(((f.columns["sex"] == 0) & ~np.isnan(f.columns["vital_status"])
                     & ~np.isnan(f.columns["age"])).sum()) for f in fed["frames"])  # fmt: skip
    assert f"No. Observations: {women:>10}" in out.stdout  # the --where cohort, not everyone


def test_no_visa_refused_at_each_node(fed: dict[str, Any]) -> None:
    client = HubClient(fed["fed"].hub.url, fed["tokens"]["bob"])
    with pytest.raises(AnalysisFailed) as err:
        client.analyse.glm("vital_status ~ age", DATASETS)
    assert "refused at round 0" in str(err.value) and "no valid visa of bob" in str(err.value)


def test_a_node_down_is_named_or_left_out(fed: dict[str, Any]) -> None:
    federation: LocalFederation = fed["fed"]
    client = HubClient(federation.hub.url, fed["tokens"]["alice"])
    federation.nodes["node-2"].stop()
    try:
        with pytest.raises(AnalysisFailed) as err:
            client.analyse.glm("vital_status ~ age", DATASETS, round_timeout_seconds=2)
        assert "node node-2" in str(err.value)
        partial = client.analyse.glm(
            "vital_status ~ age", DATASETS, allow_partial=True, round_timeout_seconds=2
        )
        assert partial.partial and partial.run["excluded"][0]["node"] == "node-2"
        assert "PARTIAL: without node-2" in partial.summary()
    finally:
        federation.start_node("node-2")


def test_portal_analyse_page_draws_km_and_downloads_csv(fed: dict[str, Any]) -> None:
    import re
    import time

    url = fed["fed"].hub.url
    with httpx.Client(base_url=url, follow_redirects=False) as web:
        web.post("/login", data={"username": "alice", "password": fed["passwords"]["alice"]})
        page = web.get("/analyse")
        assert page.status_code == 200, page.text
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert token is not None
        form = {"csrf": token.group(1), "algorithm": "km", "km_group_by": "sex",
                "km_bin_days": "30", "ast": "", "dataset": DATASETS}  # fmt: skip
        started = web.post("/analyse", data=form)
        assert started.status_code == 303, started.text
        location = started.headers["location"]
        deadline = time.monotonic() + 60
        while "running" in (shown := web.get(location).text) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert "<svg" in shown and "Download CSV" in shown and "at risk" in shown, shown[-2000:]
        csv = web.get(location + ".csv")
        assert csv.status_code == 200 and csv.text.startswith("group,start,end,at_risk")
