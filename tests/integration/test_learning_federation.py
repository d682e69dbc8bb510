"""Federated training and validation across real processes on loopback: a hub, three nodes
with synthetic images (non-IID: lesion prevalence 0.3 / 0.5 / 0.7), their learning workers.

One federation per module (ingest is the slow part); each test starts its own runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from oncofed.hub.admin import add_user, create_api_token, open_hub
from oncofed.learning.worker import WorkerMissing, learning_python
from oncofed.local import LocalFederation
from oncofed.node.policy import load_policy, write_policy
from oncofed.settings import load_node_settings
from oncofed.synth import generate_federation
from tests.integration.test_negotiation import FORM

# Ingest and PyTorch start-up dominate; on a loaded 2-core machine a test takes minutes.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PATIENTS = 75
# Test providers are small: the nodes accept 30 training patients (the default is 50) and
# release metrics from 5 patients (the default is 10; the validation split is a fifth).
MIN_TRAIN = 30
MIN_COUNT = 5
MODEL = "small-cnn-2d@1"
RELEASED = {"num-examples", "train-loss", "eval-loss", "eval-auc"}


@dataclass
class Federation:
    fed: LocalFederation
    sites: list[str]
    tokens: dict[str, str]
    visas: dict[str, str]  # site -> alice's visa jti there

    def call(self, user: str, method: str, path: str, **body: object) -> httpx.Response:
        return httpx.request(
            method,
            self.fed.hub.url + path,
            json=body or None,
            headers={"authorization": f"Bearer {self.tokens[user]}"},
            timeout=60,
        )

    def datasets(self, sites: list[str] | None = None) -> list[str]:
        return [f"{s}:{s}-oncology" for s in sites or self.sites]

    def train(self, user: str = "alice", **spec: object) -> dict:  # type: ignore[type-arg]
        body = {
            "model": MODEL,
            "datasets": self.datasets(),
            "rounds": 2,
            "batch_size": 16,
            "local_epochs": 10,
            "round_timeout": 120,
            "seed": 3,
        } | spec
        r = self.call(user, "POST", "/api/learning/runs", **body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def wait(self, run_id: str, user: str = "alice", timeout: float = 240) -> dict:  # type: ignore[type-arg]
        deadline = time.monotonic() + timeout
        while True:
            view = self.call(user, "GET", f"/api/learning/runs/{run_id}").json()
            if view["status"] not in ("queued", "running"):
                return dict(view)
            assert time.monotonic() < deadline, f"run {run_id} still {view['status']}"
            time.sleep(0.5)


def _ingest(jobs: list[tuple[Path, Path, str]]) -> None:
    """Clinical records, then images (they join the same patients), all nodes at once."""
    for step in ("clinical", "images"):
        running = []
        for node_dir, data, dataset in jobs:
            args = (
                ["clinical", str(data / "clinical"), "--dataset", dataset]
                if step == "clinical"
                else ["images", str(data / "dicom"), "--no-progress"]
            )
            running.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "oncofed",
                        "node",
                        "ingest",
                        *args,
                        "--dir",
                        str(node_dir),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
        for proc in running:
            _, err = proc.communicate()
            assert proc.returncode == 0, err.decode()[-2000:]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    try:
        learning_python()
    except WorkerMissing as exc:
        pytest.fail(str(exc))
    os.environ["ONCOFED_NODE_GRANT_REFRESH_SECONDS"] = "1"
    base = tmp_path_factory.mktemp("learning")
    manifest = generate_federation(
        base / "synthetic",
        providers=3,
        patients=PATIENTS,
        seed=5,
        instances=1,
        formats=("dicom", "clinical"),
        progress=False,
    )
    fed = LocalFederation(base / "fed")
    fed.init_hub("learning test hub")
    fed.start_hub()
    sites = [p.id for p in manifest.providers]
    try:
        jobs = []
        for provider in manifest.providers:
            node = fed.add_node(provider.id, start=False)
            jobs.append(
                (node.directory, base / "synthetic" / provider.path, f"{provider.id}-oncology")
            )
        _ingest(jobs)
        for site in sites:
            node = fed.nodes[site]
            settings = load_node_settings(node.directory)
            policy = load_policy(settings.resolve(settings.policy_file))
            policy.allowed_tasks += ["fl.round", "fl.validate"]
            policy.learning.allowed_models = [MODEL]
            policy.learning.min_train_cases = MIN_TRAIN
            policy.disclosure = policy.disclosure.model_copy(update={"min_count": MIN_COUNT})
            write_policy(settings.resolve(settings.policy_file), policy)
        for site in sites:
            fed.start_node(site)
        _, engine = open_hub(fed.hub.directory)
        add_user(engine, "alice", ["researcher"])
        add_user(engine, "bob", ["researcher"])
        add_user(engine, "dac", [f"dac:{s}" for s in sites])
        tokens = {u: create_api_token(engine, u, days=1) for u in ("alice", "bob", "dac")}
        tokens["admin"] = fed.admin_token
        engine.dispose()
        f = Federation(fed, sites, tokens, {})
        nid = f.call(
            "alice",
            "POST",
            "/api/negotiations",
            title="lesion model",
            resources=[{"id": f"{s}-oncology", "provider": s} for s in sites],
            form=FORM,
        ).json()["id"]
        for user, ev in (("alice", "SUBMIT"), ("admin", "APPROVE"), ("alice", "START")):
            view = f.call(user, "POST", f"/api/negotiations/{nid}/events", event=ev).json()
        for res in view["resources"]:
            for ev in ("MARK_AS_AVAILABLE", "GRANT_ACCESS_TO_RESOURCE"):
                r = f.call(
                    "dac",
                    "POST",
                    f"/api/negotiations/{nid}/resources/{res['row']}/events",
                    event=ev,
                )
                assert r.status_code < 300, r.text
        for visa in f.call("alice", "GET", "/api/visas").json()["visas"]:
            f.visas[visa["provider"]] = visa["jti"]
        assert sorted(f.visas) == sorted(sites)
        yield f
    finally:
        fed.stop()


def _score_held_back(model: Path, tmp: Path) -> float:
    """AUC of the model on patients none of the nodes holds (same providers, later indices),
    computed in the learning venv from the downloaded model file."""
    from oncofed.synth import iter_patients, make_provider
    from oncofed.synth.writers.dicom import build_instance

    cases = []
    for index in range(3):
        provider = make_provider(index)
        for r in iter_patients(index, 40, seed=5, start=PATIENTS, instances=1):
            for study in r.studies:
                for series in study.series:
                    if series.kind == "image" and series.modality == "CT":
                        path = tmp / f"{series.uid}.dcm"
                        build_instance(provider, r, study, series, 1, 5).save_as(
                            path, enforce_file_format=True
                        )
                        cases.append(
                            {
                                "path": str(path),
                                "patient": r.patient.mrn,
                                "label": int(r.lesion.present),
                            }
                        )
    (tmp / "cases.json").write_text(json.dumps({"cases": cases}))
    script = (
        "import json,sys; from pathlib import Path\n"
        "from oncofed_learning import data, metrics\n"
        "from oncofed_learning.worker import load_model\n"
        "from oncofed_learning.train import predict\n"
        "_, model, _ = load_model(Path(sys.argv[1]))\n"
        "split = data.load(data.read_cases(Path(sys.argv[2])))\n"
        "y, p = metrics.per_patient(split.patients, split.y.numpy(), predict(model, split))\n"
        "print(metrics.auc(y, p))\n"
    )
    out = subprocess.run(
        [str(learning_python()), "-c", script, str(model), str(tmp / "cases.json")],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def test_a_run_completes_and_its_model_scores_on_held_back_data(
    federation: Federation, tmp_path: Path
) -> None:
    f = federation
    run = f.wait(f.train()["id"])
    assert run["status"] == "succeeded", (run["error"], run["rounds"])
    assert [r["round"] for r in run["rounds"]] == [1, 2]
    for entry in run["rounds"]:
        assert sorted(entry["nodes"]) == sorted(f.sites)
        for metrics in entry["nodes"].values():
            assert metrics["train_status"] == metrics["evaluate_status"] == "succeeded"
    assert run["provenance"]["sites"] == sorted(f.sites)
    assert run["provenance"]["model_sha256"] == run["model_sha256"]
    # What the nodes sent: weights by hash and the fixed metric names, nothing per case.
    with httpx.Client(
        base_url=f.fed.hub.url,
        headers={"authorization": f"Bearer {f.tokens['alice']}"},
        timeout=60,
    ) as client:
        tasks = client.get("/api/tasks", params={"limit": 200}).json()
        rounds = [t for t in tasks if t["kind"] == "fl.round"]
        assert len(rounds) >= 2 * 2 * len(f.sites)
        for task in rounds[:6]:
            view = client.get(f"/api/tasks/{task['id']}").json()
            for target in view["targets"]:
                assert set(target["result"]) <= {"weights_sha256", "metrics"}
                assert set(target["result"]["metrics"]) <= RELEASED
        response = client.get(f"/api/learning/runs/{run['id']}/model")
        assert response.status_code == 200
    model = tmp_path / "model.pt"
    model.write_bytes(response.content)
    assert _score_held_back(model, tmp_path) >= 0.9
    # Someone else cannot download it.
    other = f.call("bob", "GET", f"/api/learning/runs/{run['id']}/model")
    assert other.status_code == 404

    # External validation of the same model at every node, under disclosure control.
    r = f.call("alice", "POST", "/api/learning/validations", run=run["id"], datasets=f.datasets())
    assert r.status_code == 201, r.text
    validation = f.wait(r.json()["id"])
    assert validation["status"] == "succeeded", validation["error"]
    for site in f.sites:
        report = validation["result"]["nodes"][site]["report"]
        assert report["n"] >= MIN_COUNT and report["min_count"] == MIN_COUNT
        for cell in report["confusion"].values():
            assert cell is None or cell >= MIN_COUNT
        assert set(report["suppressed"]) == {k for k, v in report["confusion"].items() if v is None}
    assert validation["result"]["pooled"]["nodes"] == len(f.sites)


def test_the_cli_lists_shows_downloads_and_validates(
    federation: Federation, tmp_path: Path
) -> None:
    f = federation
    runs = f.call("alice", "GET", "/api/learning/runs").json()["runs"]
    done = [r for r in runs if r["kind"] == "train" and r["status"] == "succeeded"]
    assert done, "the first test leaves a finished run"
    run_id = done[0]["id"]
    env = os.environ | {
        "ONCOFED_HUB": f.fed.hub.url,
        "ONCOFED_TOKEN": f.tokens["alice"],
        "COLUMNS": "100",
    }

    def oncofed(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "oncofed", "learn", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    assert run_id in oncofed("runs")
    shown = json.loads(oncofed("show", run_id, "--json"))
    assert shown["status"] == "succeeded" and len(shown["rounds"]) == 2
    model = tmp_path / "model.pt"
    oncofed("download", run_id, "--out", str(model))
    assert model.stat().st_size > 10_000
    # The downloaded file goes back as an uploaded model and is validated at one site.
    table = oncofed("validate", "--model", str(model), "--datasets", f.datasets(f.sites[:1])[0])
    assert f.sites[0] in table and "pooled" in table


def test_refused_without_a_visa(federation: Federation) -> None:
    f = federation
    started = f.train(user="bob", rounds=1)
    run = f.wait(started["id"], user="bob")
    assert run["status"] == "failed"
    assert "fewer than the run's minimum" in run["error"]
    nodes = run["rounds"][0]["nodes"]
    for site in f.sites:
        assert nodes[site]["train_status"] == "refused"
        assert "no valid visa" in nodes[site]["train_error"]


def _wait_round(f: Federation, run_id: str, round_no: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        view = f.call("alice", "GET", f"/api/learning/runs/{run_id}").json()
        done = [
            r
            for r in view["rounds"]
            if r["round"] == round_no and all("evaluate_status" in n for n in r["nodes"].values())
        ]
        if done and len(done[0]["nodes"]) == len(f.sites):
            return
        assert view["status"] == "running", view["error"]
        assert time.monotonic() < deadline, f"round {round_no} did not finish"
        time.sleep(0.3)


def test_a_revoked_visa_and_a_killed_node_drop_out_and_the_run_goes_on(
    federation: Federation,
) -> None:
    f = federation
    revoked_site, killed_site = f.sites[2], f.sites[1]
    run = f.train(rounds=3, min_sites=1, round_timeout=45)
    _wait_round(f, run["id"], 1)

    r = f.call("dac", "POST", f"/api/visas/{f.visas[revoked_site]}/revoke", reason="withdrawn")
    assert r.status_code < 300, r.text
    # Round 2 may have reached the node before the revocation did; round 3 cannot.
    _wait_round(f, run["id"], 2)
    f.fed.nodes[killed_site].stop(kill=True)
    try:
        view = f.wait(run["id"])
    finally:
        f.fed.start_node(killed_site)
    assert view["status"] == "succeeded", view["error"]
    third = view["rounds"][2]["nodes"]
    assert third[f.sites[0]]["train_status"] == "succeeded"
    assert third[revoked_site]["train_status"] == "refused"
    assert "no valid visa" in third[revoked_site]["train_error"]
    assert third[killed_site]["train_status"] in ("timed_out", "failed")
    assert third[killed_site]["evaluate_status"] in ("skipped", "timed_out", "failed")
    # The refusal is in the node's own audit log, with its reason.
    from oncofed.audit import AuditLog
    from oncofed.node.state import state_engine

    settings = load_node_settings(f.fed.nodes[revoked_site].directory)
    engine = state_engine(settings.resolve(settings.state_file))
    try:
        entries = [e for e in AuditLog(engine).entries() if e["action"] == "fl.round"]
    finally:
        engine.dispose()
    assert entries[-1]["decision"] == "deny" and "no valid visa" in entries[-1]["reason"]


def test_blobs_are_signed_and_checked_against_their_name(federation: Federation) -> None:
    import hashlib

    from oncofed.security.keys import SigningKey
    from oncofed.security.request_auth import sign_request

    f = federation
    settings = load_node_settings(f.fed.nodes[f.sites[0]].directory)
    key = SigningKey.load(settings.resolve(settings.key_file))
    data = os.urandom(3000)
    digest = hashlib.sha256(data).hexdigest()
    path = f"/api/blobs/{digest}"

    def put(body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.put(f.fed.hub.url + path, content=body, headers=headers, timeout=30)

    assert put(data, {}).status_code == 401  # unsigned
    wrong = put(b"x" + data, sign_request(settings.node_id, key, "PUT", path, body_sha256=digest))
    assert wrong.status_code == 422 and "does not match" in wrong.text
    headers = sign_request(settings.node_id, key, "PUT", path, body_sha256=digest)
    assert put(data, headers).status_code == 201
    assert put(data, headers).status_code == 401  # the same signed request again: a replay
    got = httpx.get(
        f.fed.hub.url + path, headers=sign_request(settings.node_id, key, "GET", path), timeout=30
    )
    assert got.status_code == 200 and got.content == data
    # A researcher's token is not a node's signature.
    assert f.call("alice", "GET", path).status_code == 401


def test_a_run_cut_by_a_hub_restart_ends_interrupted_without_a_model(
    federation: Federation,
) -> None:
    f = federation
    run = f.train(rounds=5, datasets=f.datasets(f.sites[:1]))
    deadline = time.monotonic() + 120
    while not f.call("alice", "GET", f"/api/learning/runs/{run['id']}").json()["rounds"]:
        assert time.monotonic() < deadline, "the run never started a round"
        time.sleep(0.3)
    f.fed.restart_hub(kill=True)
    view = f.call("alice", "GET", f"/api/learning/runs/{run['id']}").json()
    assert view["status"] == "interrupted" and view["model_sha256"] is None
    assert "start it again" in view["error"]
    assert f.call("alice", "GET", f"/api/learning/runs/{run['id']}/model").status_code == 409
