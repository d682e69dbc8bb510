"""Training and validation runs: requests, the coordinator thread, run views.

A training run is one learning worker process (`oncofed_learning.worker coordinate`, in
the learning venv) running a Flower strategy; each Flower message it sends becomes one
hub-signed `fl.round` task per site, carrying the weights' hash, bounded hyper-parameters,
the site's datasets and the researcher's visas for them as they stand at that round (a visa
revoked since the last round is not sent, and the node checks its revocation list too). The
coordinator waits for the round's results until its deadline, records per-site metrics, and
hands the replies back to the worker. What the hub keeps is aggregate: per-round metrics per
site, and the final model (weights) with its provenance.

A run the hub was running when it stopped ends as `interrupted` when the hub starts again;
a half-finished run is never presented as a model.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field, field_validator

from oncofed import __version__
from oncofed.hub.blobs import blob_store
from oncofed.hub.channel import ChannelError
from oncofed.hub.context import HubContext
from oncofed.hub.learning.models import FINAL, LearningRun
from oncofed.hub.models import FINAL_STATUSES, Node
from oncofed.learning import worker
from oncofed.learning.tasks import LABELS, ROUND_KIND, VALIDATE_KIND
from oncofed.security.envelope import iso, utcnow

log = logging.getLogger("oncofed.hub.learning")
POLL_SECONDS = 0.2


class RunRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _datasets(value: list[str]) -> dict[str, list[str]]:
    by_node: dict[str, list[str]] = {}
    for item in value:
        node, sep, dataset = item.partition(":")
        if not sep or not node or not dataset:
            raise ValueError(f"{item!r}: name datasets as NODE:DATASET (e.g. de-berlin:lung)")
        by_node.setdefault(node, []).append(dataset)
    return by_node


class CohortRequest(BaseModel):
    datasets: list[str] = Field(min_length=1, max_length=100, description="NODE:DATASET")
    label: str = "oncofed:lesion"
    modality: str = "CT"

    @field_validator("datasets")
    @classmethod
    def _named(cls, value: list[str]) -> list[str]:
        _datasets(value)
        return value

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        if value not in LABELS:
            raise ValueError(f"unknown label {value!r}; known: {', '.join(sorted(LABELS))}")
        return value

    def by_node(self) -> dict[str, list[str]]:
        return _datasets(self.datasets)


class TrainRequest(CohortRequest):
    model: str = Field("small-cnn-2d", max_length=60)
    task: str = Field("", max_length=200, description="what the model predicts, for people")
    strategy: str = Field("fedavg", pattern="^(fedavg|fedprox)$")
    rounds: int = Field(3, ge=1, le=200)
    local_epochs: int = Field(1, ge=1, le=50)
    batch_size: int = Field(32, ge=1, le=1024)
    learning_rate: float | None = Field(None, gt=0, le=1)
    proximal_mu: float = Field(0.01, ge=0, le=10)
    seed: int = Field(0, ge=0, le=2**31)
    min_sites: int | None = Field(None, ge=1, description="default: every site")
    round_timeout: float = Field(600, ge=5, le=24 * 3600)


class ValidateRequest(CohortRequest):
    run: str | None = Field(None, description="a training run whose model to validate")
    model_sha256: str | None = Field(None, pattern="^[0-9a-f]{64}$")
    threshold: float = Field(0.5, gt=0, lt=1)
    timeout: float = Field(600, ge=5, le=24 * 3600)


# -- views --------------------------------------------------------------------------------


def view(run: LearningRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "kind": run.kind,
        "owner": run.owner,
        "status": run.status,
        "spec": run.spec,
        "sites": run.sites,
        "rounds": run.rounds,
        "result": run.result,
        "model_sha256": run.model_sha256,
        "provenance": run.provenance,
        "error": run.error,
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at),
        "finished_at": iso(run.finished_at) if run.finished_at else None,
    }


def get_run(ctx: HubContext, run_id: str, username: str, admin: bool) -> dict[str, Any]:
    with ctx.sessions() as s:
        run = s.get(LearningRun, run_id)
        if run is None or (run.owner != username and not admin):
            raise RunRefused(404, f"no run {run_id}")
        return view(run)


def list_runs(ctx: HubContext, username: str, admin: bool, limit: int = 50) -> list[dict[str, Any]]:
    query = sa.select(LearningRun).order_by(LearningRun.created_at.desc()).limit(limit)
    if not admin:
        query = query.where(LearningRun.owner == username)
    with ctx.sessions() as s:
        return [
            {k: v for k, v in view(r).items() if k not in ("rounds", "result")}
            for r in s.scalars(query)
        ]


def interrupt_unfinished(ctx: HubContext) -> int:
    """At hub start: runs left running by a stopped hub end as `interrupted`."""
    now = utcnow()
    with ctx.sessions.begin() as s:
        runs = list(s.scalars(sa.select(LearningRun).where(LearningRun.status.not_in(FINAL))))
        for run in runs:
            run.status, run.updated_at, run.finished_at = "interrupted", now, now
            run.error = "the hub stopped during the run; start it again (no model was kept)"
            ctx.audit.append(
                "hub", "learning.interrupt", "info", run.id, run.error, con=s.connection()
            )
    return len(runs)


# -- starting -------------------------------------------------------------------------------


def _check_sites(ctx: HubContext, names: list[str]) -> None:
    with ctx.sessions() as s:
        known = set(s.scalars(sa.select(Node.name).where(Node.status == "enrolled")))
    missing = sorted(set(names) - known)
    if missing:
        raise RunRefused(404, f"no enrolled node named {', '.join(missing)}")


def _create(ctx: HubContext, owner: str, kind: str, spec: dict[str, Any], sites: list[str]) -> str:
    now = utcnow()
    run_id = uuid.uuid4().hex
    with ctx.sessions.begin() as s:
        s.add(
            LearningRun(
                id=run_id,
                kind=kind,
                owner=owner,
                status="running",
                spec=spec,
                sites=sites,
                rounds=[],
                created_at=now,
                updated_at=now,
            )
        )
        ctx.audit.append(
            owner,
            f"learning.{kind}",
            "allow",
            run_id,
            details={"sites": sites, **{k: spec[k] for k in ("model", "datasets") if k in spec}},
            con=s.connection(),
        )
    return run_id


def start_training(ctx: HubContext, owner: str, req: TrainRequest) -> str:
    by_node = req.by_node()
    sites = sorted(by_node)
    _check_sites(ctx, sites)
    min_sites = req.min_sites or len(sites)
    if min_sites > len(sites):
        raise RunRefused(422, f"min_sites {min_sites} is more than the {len(sites)} sites named")
    try:
        worker.learning_python()
    except worker.WorkerMissing as exc:
        raise RunRefused(503, str(exc)) from exc
    spec = req.model_dump(mode="json") | {"min_sites": min_sites}
    run_id = _create(ctx, owner, "train", spec, sites)
    thread = threading.Thread(
        target=_train, args=(ctx, run_id, owner, req, by_node, min_sites), daemon=True
    )
    thread.start()
    return run_id


def start_validation(ctx: HubContext, owner: str, admin: bool, req: ValidateRequest) -> str:
    by_node = req.by_node()
    sites = sorted(by_node)
    _check_sites(ctx, sites)
    model = req.model_sha256
    if req.run:
        source = get_run(ctx, req.run, owner, admin)
        if source["status"] != "succeeded" or not source["model_sha256"]:
            raise RunRefused(
                409, f"run {req.run} has no finished model (status {source['status']})"
            )
        model = source["model_sha256"]
    if not model:
        raise RunRefused(422, "name the model: a training run, or an uploaded model's sha256")
    if not blob_store(ctx).exists(model):
        raise RunRefused(404, f"no model {model} at the hub; upload it first")
    spec = req.model_dump(mode="json") | {"model_sha256": model}
    run_id = _create(ctx, owner, "validate", spec, sites)
    thread = threading.Thread(
        target=_validate, args=(ctx, run_id, owner, req, by_node, model), daemon=True
    )
    thread.start()
    return run_id


# -- the coordinator ------------------------------------------------------------------------


def _passport(ctx: HubContext, owner: str, node: str, datasets: list[str]) -> str:
    """The researcher's valid visas for these datasets at this node, as of now."""
    from oncofed.hub.negotiation.models import VisaGrant
    from oncofed.hub.negotiation.service import visa_token

    now = utcnow()
    with ctx.sessions() as s:
        node_id = s.scalar(sa.select(Node.id).where(Node.name == node))
        grants = list(
            s.scalars(
                sa.select(VisaGrant).where(
                    VisaGrant.subject == owner,
                    VisaGrant.node_id == node_id,
                    VisaGrant.dataset.in_(datasets),
                    VisaGrant.revoked_at.is_(None),
                    VisaGrant.expires_at > now,
                )
            )
        )
    return " ".join(visa_token(ctx, g.claims) for g in grants)


def _send_round(
    ctx: HubContext,
    owner: str,
    kind: str,
    bodies: dict[str, dict[str, Any]],
    timeout: float,
) -> dict[str, dict[str, Any]]:
    """One task per site; wait for all results or the deadline; a reply per site."""
    tasks: dict[str, str] = {}
    replies: dict[str, dict[str, Any]] = {}
    for site, body in bodies.items():
        try:
            task_id, node_ids = ctx.channel.create(
                kind, body, [site], max(1, round(timeout)), owner
            )
        except ChannelError as exc:
            replies[site] = {"error": exc.message, "status": "failed"}
            continue
        tasks[site] = task_id
        for node_id in node_ids:
            ctx.notifier.wake(f"node:{node_id}")
    deadline = time.monotonic() + timeout + 2
    pending = dict(tasks)
    while pending and time.monotonic() < deadline:
        for site, task_id in list(pending.items()):
            target = ctx.channel.view(task_id).targets[0]
            if target.status in FINAL_STATUSES:
                result = target.result or {}
                replies[site] = {
                    "status": target.status,
                    "weights": result.get("weights_sha256"),
                    "metrics": result.get("metrics"),
                    "report": result.get("report"),
                    "error": None
                    if target.status == "succeeded"
                    else (target.error or target.status),
                    "refused": target.status == "refused",
                }
                del pending[site]
        if pending:
            time.sleep(POLL_SECONDS)
    for site in pending:
        replies[site] = {"status": "timed_out", "error": "no answer by the round's deadline"}
    return replies


def _record_round(
    ctx: HubContext, run_id: str, round_no: int, message_type: str, replies: dict[str, Any]
) -> None:
    with ctx.sessions.begin() as s:
        run = s.get(LearningRun, run_id)
        assert run is not None
        rounds = [dict(r) for r in run.rounds]
        entry = next((r for r in rounds if r["round"] == round_no), None)
        if entry is None:
            entry = {"round": round_no, "nodes": {}}
            rounds.append(entry)
        nodes = {k: dict(v) for k, v in entry["nodes"].items()}
        for site, reply in replies.items():
            node = nodes.setdefault(site, {})
            node[message_type] = reply.get("metrics")
            node[f"{message_type}_status"] = reply.get("status")
            if reply.get("error"):
                node[f"{message_type}_error"] = reply["error"]
        entry["nodes"] = nodes
        run.rounds = sorted(rounds, key=lambda r: int(r["round"]))
        run.updated_at = utcnow()


def _finish(ctx: HubContext, run_id: str, status: str, **values: Any) -> None:
    with ctx.sessions.begin() as s:
        run = s.get(LearningRun, run_id)
        assert run is not None
        if run.status in FINAL:
            return
        run.status = status
        run.updated_at = run.finished_at = utcnow()
        for key, value in values.items():
            setattr(run, key, value)
        ctx.audit.append(
            run.owner,
            f"learning.{run.kind}.{status}",
            "info",
            run_id,
            values.get("error") or "",
            {"model_sha256": values.get("model_sha256")},
            con=s.connection(),
        )


def _train(
    ctx: HubContext,
    run_id: str,
    owner: str,
    req: TrainRequest,
    by_node: dict[str, list[str]],
    min_sites: int,
) -> None:
    try:
        _coordinate(ctx, run_id, owner, req, by_node, min_sites)
    except Exception as exc:  # the run fails with its reason; the hub carries on
        log.exception("training run %s failed", run_id)
        _finish(ctx, run_id, "failed", error=f"{type(exc).__name__}: {exc}")


def _coordinate(
    ctx: HubContext,
    run_id: str,
    owner: str,
    req: TrainRequest,
    by_node: dict[str, list[str]],
    min_sites: int,
) -> None:
    blobs = blob_store(ctx)
    blobs.root.mkdir(parents=True, exist_ok=True)
    proc = worker.start("coordinate", ctx.settings.directory)
    assert proc.stdin is not None and proc.stdout is not None
    sites = sorted(by_node)
    provenance = {
        "run": run_id,
        "owner": owner,
        "task": req.task,
        "label": req.label,
        "modality": req.modality,
        "datasets": req.datasets,
        "sites": sites,
        "strategy": req.strategy,
        "rounds": req.rounds,
        "oncofed_version": __version__,
        "hub": ctx.settings.url,
    }
    proc.stdin.write(
        json.dumps(
            {
                "blob_dir": str(blobs.root),
                "sites": sites,
                "provenance": provenance,
                "spec": {
                    "model": req.model,
                    "strategy": req.strategy,
                    "rounds": req.rounds,
                    "local_epochs": req.local_epochs,
                    "batch_size": req.batch_size,
                    "learning_rate": req.learning_rate,
                    "proximal_mu": req.proximal_mu,
                    "seed": req.seed,
                    "min_sites": min_sites,
                    "round_timeout": req.round_timeout,
                },
            }
        )
        + "\n"
    )
    proc.stdin.flush()
    try:
        for line in proc.stdout:
            message = json.loads(line)
            op = message.get("op")
            if op == "round":
                replies = _round(ctx, run_id, owner, req, by_node, message)
                proc.stdin.write(json.dumps({"replies": replies}) + "\n")
                proc.stdin.flush()
            elif op == "done":
                provenance |= {
                    "model_sha256": message["model"],
                    "weights_sha256": message["weights"],
                    "seconds": message.get("seconds"),
                    "bytes_moved": message.get("bytes_moved"),
                }
                _finish(
                    ctx,
                    run_id,
                    "succeeded",
                    model_sha256=message["model"],
                    provenance=provenance,
                    result={"history": message.get("history")},
                )
                return
            elif op == "failed":
                _finish(ctx, run_id, "failed", error=str(message.get("error")))
                return
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except Exception:
            proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    _finish(ctx, run_id, "failed", error=f"the learning worker stopped: {err.strip()[-500:]}")


def _round(
    ctx: HubContext,
    run_id: str,
    owner: str,
    req: TrainRequest,
    by_node: dict[str, list[str]],
    message: dict[str, Any],
) -> dict[str, Any]:
    config = message["config"]
    round_no = int(message["round"])
    bodies = {}
    skipped: dict[str, dict[str, Any]] = {}
    if message["message_type"] == "evaluate":
        # A site that did not answer this round's training by its deadline is down or
        # stuck: its evaluation is not waited for as well.
        skipped = {
            site: {"status": "skipped", "error": "no answer to this round's training"}
            for site in message["sites"]
            if _train_status(ctx, run_id, round_no, site) == "timed_out"
        }
    for site in message["sites"]:
        if site in skipped:
            continue
        bodies[site] = {
            "run_id": run_id,
            "round": round_no,
            "message_type": message["message_type"],
            "model": config["model"],
            "weights_sha256": message["weights"],
            "local_epochs": config.get("local-epochs", req.local_epochs),
            "batch_size": config.get("batch-size", req.batch_size),
            "learning_rate": config.get("lr"),
            "proximal_mu": config.get("proximal-mu", 0.0),
            "seed": config.get("seed", req.seed),
            "cohort": {"datasets": by_node[site], "label": req.label, "modality": req.modality},
            "passport": _passport(ctx, owner, site, by_node[site]),
        }
    replies = _send_round(
        ctx, owner, ROUND_KIND, bodies, float(message.get("timeout") or req.round_timeout)
    )
    replies |= skipped
    _record_round(ctx, run_id, round_no, message["message_type"], replies)
    return {
        site: {k: r.get(k) for k in ("weights", "metrics", "error", "refused")}
        for site, r in replies.items()
    }


def _train_status(ctx: HubContext, run_id: str, round_no: int, site: str) -> str | None:
    with ctx.sessions() as s:
        run = s.get(LearningRun, run_id)
        assert run is not None
        for entry in run.rounds:
            if entry["round"] == round_no:
                status = entry["nodes"].get(site, {}).get("train_status")
                return str(status) if status else None
    return None


def _validate(
    ctx: HubContext,
    run_id: str,
    owner: str,
    req: ValidateRequest,
    by_node: dict[str, list[str]],
    model: str,
) -> None:
    try:
        bodies = {
            site: {
                "run_id": run_id,
                "model_sha256": model,
                "threshold": req.threshold,
                "cohort": {"datasets": datasets, "label": req.label, "modality": req.modality},
                "passport": _passport(ctx, owner, site, datasets),
            }
            for site, datasets in by_node.items()
        }
        replies = _send_round(ctx, owner, VALIDATE_KIND, bodies, req.timeout)
        nodes = {
            site: {"status": r["status"], "report": r.get("report"), "error": r.get("error")}
            for site, r in replies.items()
        }
        result = {
            "nodes": nodes,
            "pooled": pooled([n["report"] for n in nodes.values() if n["report"]]),
        }
        answered = sum(1 for n in nodes.values() if n["report"])
        _finish(
            ctx,
            run_id,
            "succeeded" if answered else "failed",
            result=result,
            error=None if answered else "no node returned a validation report",
        )
    except Exception as exc:
        log.exception("validation run %s failed", run_id)
        _finish(ctx, run_id, "failed", error=f"{type(exc).__name__}: {exc}")


def pooled(reports: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Pooled figures from the nodes' released reports only: confusion cells summed where
    every node released them, calibration bins likewise, and the nodes' AUCs averaged with
    their case counts as weights (the pooled AUC itself needs per-case scores, which never
    leave a node)."""
    if not reports:
        return None
    cells: dict[str, int | None] = {}
    for name in ("tp", "fn", "tn", "fp"):
        values = [r["confusion"].get(name) for r in reports]
        cells[name] = None if any(v is None for v in values) else sum(values)
    aucs = [(r["auc"], r["n"]) for r in reports if r.get("auc") is not None]
    total = sum(n for _, n in aucs)
    tp, fn, tn, fp = cells["tp"], cells["fn"], cells["tn"], cells["fp"]
    bins = []
    for i, first in enumerate(reports[0]["calibration"]):
        parts = [r["calibration"][i] for r in reports]
        if any(p["n"] is None for p in parts):
            bins.append({"low": first["low"], "high": first["high"], "n": None})
            continue
        n = sum(p["n"] for p in parts)
        bins.append(
            {
                "low": first["low"],
                "high": first["high"],
                "n": n,
                "mean_predicted": sum(p["n"] * p["mean_predicted"] for p in parts) / n,
                "observed": sum(p["n"] * p["observed"] for p in parts) / n,
            }
        )
    return {
        "n": sum(r["n"] for r in reports),
        "nodes": len(reports),
        "auc_weighted_mean": sum(a * n for a, n in aucs) / total if total else None,
        "confusion": cells,
        "sensitivity": tp / (tp + fn) if tp is not None and fn is not None and tp + fn else None,
        "specificity": tn / (tn + fp) if tn is not None and fp is not None and tn + fp else None,
        "calibration": bins,
    }


def model_path(ctx: HubContext, run_id: str, username: str, admin: bool) -> tuple[Any, datetime]:
    """The finished model file of a training run, for its owner (or an admin)."""
    with ctx.sessions() as s:
        run = s.get(LearningRun, run_id)
        if run is None or (run.owner != username and not admin):
            raise RunRefused(404, f"no run {run_id}")
        if run.status != "succeeded" or not run.model_sha256:
            raise RunRefused(409, f"run {run_id} has no model (status {run.status})")
        digest, created = run.model_sha256, run.created_at
    # Audited outside the read session: SQLite would make the write wait for it.
    ctx.audit.append(username, "learning.download", "allow", run_id)
    return blob_store(ctx).path(digest), created
