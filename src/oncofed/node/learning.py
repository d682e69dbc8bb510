"""`fl.round` and `fl.validate`: federated training and external validation at the node.

The node stays sovereign over every round: the model must be on its allow-list, the round
within its cap, batch and epochs at or above its minimums, every dataset covered by a visa
of the researcher it verifies itself (so a revoked visa stops the node at the next round),
and the training split at least `min_train_cases` patients. Then it selects the cases
itself (its datasets, the run's label and modality), fetches the global weights from the
hub by hash, and runs the learning worker (a separate process in its own venv, given only
the case list and the weights file). What goes back is a weights blob and aggregate metrics
from a fixed list; nothing per case. Every decision is audited.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from oncofed.learning import worker
from oncofed.learning.tasks import LABELS, ROUND_KIND, VALIDATE_KIND
from oncofed.node.cas import ContentStore
from oncofed.node.context import NodeContext
from oncofed.node.grants import task_grants_for
from oncofed.node.handlers import TaskMeta, TaskRefused, handler
from oncofed.security.request_auth import sign_request

# The only metrics a reply may carry (anything else the worker reports is dropped).
RELEASED_METRICS = frozenset({"num-examples", "train-loss", "eval-loss", "eval-auc"})
WORKER_TIMEOUT_SECONDS = 3600
CHUNK = 1 << 20

_CASES = """
SELECT p.id, b.value_code, i.content_hash
FROM patient p
JOIN biomarker b ON b.patient_id = p.id AND upper(b.name) = ?
JOIN imaging_series s ON s.patient_id = p.id AND s.modality = ?
JOIN imaging_instance i ON i.series_uid = s.uid
WHERE p.dataset_id IN ({datasets}) AND b.value_code IS NOT NULL
ORDER BY p.id, i.content_hash
"""


def select_cases(ctx: NodeContext, cohort: dict[str, Any]) -> list[dict[str, Any]]:
    """The image files and labels of the cohort: one case per image slice."""
    marker, positive = LABELS[cohort["label"]]
    datasets = list(cohort["datasets"])
    store = ContentStore(ctx.settings.resolve(ctx.settings.images_dir))
    sql = _CASES.format(datasets=", ".join("?" for _ in datasets))
    with ctx.store.reading() as con:
        rows = con.execute(sql, [marker, cohort["modality"], *datasets]).fetchall()
    return [
        {"path": str(store.path_for(digest)), "patient": pid, "label": int(value == positive)}
        for pid, value, digest in rows
        if store.exists(digest)
    ]


class HubBlobs:
    """Signed GET/PUT of `/api/blobs/{sha256}` at the hub, hash checked on our side too."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.base_path = urlsplit(ctx.settings.hub_url).path.rstrip("/")
        self.client = httpx.Client(
            base_url=ctx.settings.hub_url, timeout=ctx.settings.request_timeout_seconds * 10
        )

    def _headers(self, method: str, path: str, digest: str | None = None) -> dict[str, str]:
        return sign_request(
            self.ctx.settings.node_id,
            self.ctx.key,
            method,
            self.base_path + path,
            body_sha256=digest,
        )

    def fetch(self, digest: str, dest: Path) -> None:
        path = f"/api/blobs/{digest}"
        hasher = hashlib.sha256()
        with (
            self.client.stream("GET", path, headers=self._headers("GET", path)) as response,
            dest.open("wb") as out,
        ):
            if response.status_code != 200:
                response.read()
                raise TaskRefused(f"the hub refused blob {digest}: {response.text[:200]}")
            for chunk in response.iter_bytes(CHUNK):
                hasher.update(chunk)
                out.write(chunk)
        if hasher.hexdigest() != digest:
            raise TaskRefused(f"blob {digest} from the hub does not match its hash")

    def upload(self, source: Path) -> str:
        data = source.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        path = f"/api/blobs/{digest}"
        response = self.client.put(path, content=data, headers=self._headers("PUT", path, digest))
        if response.status_code not in (200, 201):
            raise RuntimeError(f"the hub refused the weights upload: {response.text[:200]}")
        return digest

    def close(self) -> None:
        self.client.close()


class _Running:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None


_running: dict[str, _Running] = {}
_running_lock = threading.Lock()
Handler = Callable[[NodeContext, dict[str, Any], TaskMeta], dict[str, Any]]


def once_per_task(fn: Handler) -> Handler:
    """Run a task once even when the hub delivers it again while it runs.

    The hub re-sends a task whose lease (30 s by default) ran out before its result came,
    which is right for a node that died but wrong for a training round that takes longer
    than the lease: the second delivery would train a second time, beside the first. It
    waits for the first run here and answers with the same result.
    """

    @functools.wraps(fn)
    def run(ctx: NodeContext, body: dict[str, Any], meta: TaskMeta) -> dict[str, Any]:
        with _running_lock:
            first = _running.get(meta.task_id)
            if first is None:
                mine = _running[meta.task_id] = _Running()
        if first is not None:
            first.done.wait()
            if first.error is not None:
                raise first.error
            assert first.result is not None
            return first.result
        try:
            mine.result = fn(ctx, body, meta)
            return mine.result
        except BaseException as exc:
            mine.error = exc
            raise
        finally:
            mine.done.set()
            with _running_lock:
                _running.pop(meta.task_id, None)

    return run


def _check_grants(ctx: NodeContext, body: dict[str, Any], meta: TaskMeta) -> None:
    wanted = set(body["cohort"]["datasets"])
    granted = task_grants_for(ctx, body.get("passport") or None, meta.requester)
    missing = sorted(wanted - granted)
    if missing:
        raise TaskRefused(
            f"no valid visa of {meta.requester} for dataset(s) {', '.join(missing)} at this node"
        )


def _run_worker(request: dict[str, Any], cwd: Path) -> dict[str, Any]:
    try:
        proc = worker.start("client", cwd)
    except worker.WorkerMissing as exc:
        raise RuntimeError(str(exc)) from exc
    try:
        out, err = proc.communicate(json.dumps(request) + "\n", timeout=WORKER_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError("the learning worker ran past its time limit") from None
    lines = [line for line in out.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the learning worker failed: {err.strip()[-500:]}")
    reply: dict[str, Any] = json.loads(lines[-1])
    return reply


def _audit(meta: TaskMeta, decision: str, reason: str, details: dict[str, Any]) -> None:
    meta.audit_entries.append(
        {
            "actor": meta.requester,
            "action": meta.kind,
            "decision": decision,
            "target": meta.task_id,
            "reason": reason,
            "details": details,
        }
    )


def _refuse(meta: TaskMeta, reason: str, details: dict[str, Any]) -> TaskRefused:
    _audit(meta, "deny", reason, details)
    return TaskRefused(reason)


def _granted_cases(
    ctx: NodeContext, body: dict[str, Any], meta: TaskMeta, details: dict[str, Any]
) -> list[Any]:
    """The cohort's cases, once the researcher's visas for its datasets are verified here
    (a refusal is audited with `details`)."""
    try:
        _check_grants(ctx, body, meta)
    except TaskRefused as exc:
        raise _refuse(meta, str(exc), details) from exc
    return select_cases(ctx, body["cohort"])


@contextmanager
def _workspace(cases: list[Any]) -> Iterator[Path]:
    """A private folder for one worker run holding the cases it may read; gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="oncofed-fl-") as tmp:
        folder = Path(tmp)
        (folder / "cases.json").write_text(json.dumps({"cases": cases}), encoding="utf-8")
        yield folder


@handler(ROUND_KIND)
@once_per_task
def fl_round(ctx: NodeContext, body: dict[str, Any], meta: TaskMeta) -> dict[str, Any]:
    policy = ctx.policy.learning
    details = {
        "run": body["run_id"],
        "round": body["round"],
        "message_type": body["message_type"],
        "model": body["model"],
        "datasets": body["cohort"]["datasets"],
    }
    if body["model"] not in policy.allowed_models:
        raise _refuse(meta, f"this node's policy does not allow the model {body['model']}", details)
    if body["round"] > policy.max_rounds:
        raise _refuse(
            meta, f"round {body['round']} is past this node's cap of {policy.max_rounds}", details
        )
    if body["batch_size"] < policy.min_batch_size:
        raise _refuse(
            meta,
            f"batch size {body['batch_size']} is below this node's minimum of "
            f"{policy.min_batch_size}",
            details,
        )
    if body["local_epochs"] < policy.min_local_epochs:
        raise _refuse(
            meta,
            f"fewer local epochs than this node's minimum of {policy.min_local_epochs}",
            details,
        )
    cases = _granted_cases(ctx, body, meta, details)
    blobs = HubBlobs(ctx)
    try:
        with _workspace(cases) as folder:
            blobs.fetch(body["weights_sha256"], folder / "global.npz")
            config: dict[str, Any] = {
                "model": body["model"],
                "local-epochs": body["local_epochs"],
                "batch-size": body["batch_size"],
                "seed": body["seed"],
                "server-round": body["round"],
                "proximal-mu": body["proximal_mu"],
            }
            if body["learning_rate"] is not None:
                config["lr"] = body["learning_rate"]
            reply = _run_worker(
                {
                    "message_type": body["message_type"],
                    "round": body["round"],
                    "arrays": str(folder / "global.npz"),
                    "config": config,
                    "node_config": {
                        "cases": str(folder / "cases.json"),
                        "min-train-cases": policy.min_train_cases,
                        "min-batch-size": policy.min_batch_size,
                        "min-count": ctx.policy.disclosure.min_count,
                        "validation-fraction": policy.validation_fraction,
                    },
                    "out": str(folder / "local.npz"),
                },
                folder,
            )
            if reply.get("error"):
                if reply.get("refused"):
                    raise _refuse(meta, str(reply["error"]), details)
                raise RuntimeError(str(reply["error"]))
            result: dict[str, Any] = {
                "metrics": {
                    k: v for k, v in (reply.get("metrics") or {}).items() if k in RELEASED_METRICS
                }
            }
            if reply.get("arrays"):
                result["weights_sha256"] = blobs.upload(Path(reply["arrays"]))
    finally:
        blobs.close()
    _audit(meta, "allow", "", {**details, "metrics": result["metrics"]})
    return result


@handler(VALIDATE_KIND)
@once_per_task
def fl_validate(ctx: NodeContext, body: dict[str, Any], meta: TaskMeta) -> dict[str, Any]:
    details = {
        "run": body["run_id"],
        "model_sha256": body["model_sha256"],
        "datasets": body["cohort"]["datasets"],
    }
    cases = _granted_cases(ctx, body, meta, details)
    blobs = HubBlobs(ctx)
    try:
        with _workspace(cases) as folder:
            blobs.fetch(body["model_sha256"], folder / "model.pt")
            reply = _run_worker(
                {
                    "message_type": "validate",
                    "model_file": str(folder / "model.pt"),
                    "config": {"threshold": body["threshold"]},
                    "node_config": {
                        "cases": str(folder / "cases.json"),
                        "min-count": ctx.policy.disclosure.min_count,
                    },
                },
                folder,
            )
    finally:
        blobs.close()
    if reply.get("error"):
        if reply.get("refused"):
            raise _refuse(meta, str(reply["error"]), details)
        raise RuntimeError(str(reply["error"]))
    report: dict[str, Any] = reply["report"]
    _audit(
        meta, "allow", "", {**details, "n": report.get("n"), "suppressed": report.get("suppressed")}
    )
    return {"report": report}
