"""Ingest through the running node service.

DuckDB admits one process per store file, and the running node (`oncofed node serve`) holds
it. A data manager should not have to stop the node (and its federated answers) to load a
new export, so `oncofed node ingest ...` hands the work to the service when the store is
busy: the service runs the same importer on its own store connection, one job at a time,
and the command waits and prints the same report. The service accepts such jobs only from
this machine (loopback) with the node's local admin token, a file readable by the node's
owner alone; the paths are files on this machine.
"""

from __future__ import annotations

import io
import secrets
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console

from oncofed.node.context import NodeContext
from oncofed.node.ingest.common import FileOutcome, ImportReport, NodeTarget, Pseudonyms
from oncofed.node.ingest.images import IngestReport, Rejection
from oncofed.security.pseudonym import load_secret
from oncofed.settings import NodeSettings

ADMIN_TOKEN_FILE = "keys/admin.token"
IngestKind = Literal["images", "pull", "clinical", "fhir", "omop", "vcf"]


class IngestJob(BaseModel):
    """One `oncofed node ingest <kind>` command, as the service runs it."""

    model_config = ConfigDict(extra="forbid")
    kind: IngestKind
    paths: list[str] = Field(min_length=1, max_length=10_000)
    mapping: str | None = None
    dataset: str | None = Field(None, max_length=200)
    access_level: str | None = Field(None, max_length=20)
    sample_pattern: str | None = Field(None, max_length=500)
    sample_map: str | None = None
    assembly: str | None = Field(None, max_length=20)
    pull: dict[str, Any] | None = Field(None, description="`oncofed node pull` options")


def admin_token(settings: NodeSettings, create: bool = False) -> str | None:
    """The node's local admin token (made by the service on start, mode 0600)."""
    path = settings.resolve(ADMIN_TOKEN_FILE)
    if path.is_file():
        return path.read_text().strip() or None
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(token + "\n")
    tmp.replace(path)
    return token


def report_to_json(report: ImportReport | IngestReport) -> dict[str, Any]:
    if isinstance(report, IngestReport):
        return {"type": "images", **asdict(report), "quarantined": dict(report.quarantined)}
    return {"type": "import", **asdict(report)}


def report_from_json(data: dict[str, Any]) -> ImportReport | IngestReport:
    """The report object the command prints, rebuilt from the service's answer."""
    from collections import Counter

    if data.get("type") == "images":
        fields = {k: v for k, v in data.items() if k != "type"}
        fields["quarantined"] = Counter(fields.get("quarantined", {}))
        fields["rejections"] = [Rejection(**r) for r in fields.get("rejections", [])]
        return IngestReport(**fields)
    return ImportReport(
        title=str(data.get("title", "import")),
        files=[FileOutcome(**f) for f in data.get("files", [])],
        seconds=float(data.get("seconds", 0.0)),
    )


def run_job(ctx: NodeContext, job: IngestJob) -> ImportReport | IngestReport:
    """Run one importer on the service's own store (the caller serialises jobs)."""
    from oncofed.node.cas import ContentStore
    from oncofed.node.ingest.clinical_csv import ingest_clinical, resolve_mapping
    from oncofed.node.ingest.commands import PullRequest, node_context, pull_into
    from oncofed.node.ingest.fhir import ingest_fhir
    from oncofed.node.ingest.images import ingest_images
    from oncofed.node.ingest.omop import ingest_omop
    from oncofed.node.ingest.vcf import SampleMap, ingest_vcf

    settings = ctx.settings
    paths = [Path(p) for p in job.paths]
    quiet = Console(file=io.StringIO())
    if job.kind == "pull":
        return pull_into(ctx.store, settings, PullRequest(**(job.pull or {})), False, quiet)
    if job.kind == "images":
        return ingest_images(
            paths,
            ctx.store,
            node_context(settings),
            ContentStore(settings.resolve(settings.images_dir)),
            settings.resolve(settings.quarantine_dir),
            progress=False,
            console=quiet,
        )
    provider = settings.provider_id or settings.name
    target = NodeTarget(
        settings,
        ctx.store,
        Pseudonyms(load_secret(settings.resolve(settings.secret_file)), provider),
    )
    if job.kind == "clinical":
        mapping = resolve_mapping(paths, Path(job.mapping) if job.mapping else None)
        return ingest_clinical(paths, mapping, target, job.dataset, job.access_level)
    if job.kind == "fhir":
        return ingest_fhir(paths, target, job.dataset, job.access_level)
    if job.kind == "omop":
        return ingest_omop(paths, target, job.dataset, job.access_level)
    samples = SampleMap.from_options(
        job.sample_pattern, Path(job.sample_map) if job.sample_map else None
    )
    return ingest_vcf(
        paths, target, job.dataset, samples, job.assembly, job.access_level, False, quiet
    )


@dataclass
class JobState:
    id: str
    job: IngestJob
    state: Literal["queued", "running", "done", "failed"] = "queued"
    started: float = field(default_factory=time.time)
    finished: float | None = None
    report: dict[str, Any] | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.job.kind,
            "state": self.state,
            "seconds": round((self.finished or time.time()) - self.started, 1),
            "report": self.report,
            "error": self.error,
        }


class IngestJobs:
    """The service's ingest jobs: run one after another in a worker thread, kept in memory
    (the report is also in the store's ingest ledger and the audit log)."""

    def __init__(self, ctx: NodeContext, after: Any = None) -> None:
        self.ctx = ctx
        self.after = after  # called with the finished JobState (catalogue refresh)
        self.jobs: dict[str, JobState] = {}
        self._lock = threading.Lock()  # one ingest at a time

    KEEP = 100  # finished jobs remembered for their commands to read

    def submit(self, job: IngestJob) -> JobState:
        state = JobState(uuid.uuid4().hex, job)
        finished = [k for k, v in self.jobs.items() if v.finished is not None]
        for old in finished[: max(0, len(finished) - self.KEEP)]:
            del self.jobs[old]
        self.jobs[state.id] = state
        threading.Thread(target=self._run, args=(state,), daemon=True).start()
        return state

    def _run(self, state: JobState) -> None:
        with self._lock:
            state.state = "running"
            state.started = time.time()
            try:
                report = run_job(self.ctx, state.job)
            except Exception as exc:  # reported to the command that submitted it
                state.state, state.error = "failed", f"{type(exc).__name__}: {exc}"
                decision = "error"
            else:
                state.state, state.report = "done", report_to_json(report)
                decision = "info"
            state.finished = time.time()
            self.ctx.audit.append(
                "local-admin",
                f"ingest.{state.job.kind}",
                decision,
                state.id,
                state.error or "",
                {
                    "paths": state.job.paths[:20],
                    "seconds": round(state.finished - state.started, 1),
                },
            )
        if self.after is not None and state.state == "done":
            self.after(state)
