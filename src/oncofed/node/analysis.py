"""The node's handler of ``analysis.step`` tasks: Tier 3 at the provider.

Before an analysis's ``local`` step sees a row, the node checks, in this order, and
refuses with the reason (every decision in its audit log):

1. its policy allows the algorithm (``allowed_algorithms``; the task kind itself is checked
   by the agent against ``allowed_tasks``: both default to none);
2. it is one of the run's signed ``sites`` and there are at least ``min_sites`` of them;
3. the researcher holds a verified visa for every dataset of this node the run analyses
   (:mod:`oncofed.node.grants`: signature, audience, expiry, revocation, subject);
4. the run: a later step must carry the spec hash the first step had (the hub cannot swap
   the cohort or the model mid-run), the step cap, and the per-day run allowance;
5. the cohort (the search AST, selected on the same in-memory index search counts on) is
   large enough and does not differ from an earlier cohort of the same analysis by fewer
   than the minimum count (differencing);
6. noisy releases are admitted by the privacy ledger search uses (cached noise per run
   spec, so a repeat costs nothing and reveals nothing new).

Then the analysis's own disclosure rules run inside ``local``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import time
from typing import Any, cast

import numpy as np
import sqlalchemy as sa

from oncofed.analysis import ANALYSES
from oncofed.analysis.base import Registered, spec_hash
from oncofed.analysis.disclosure import AnalysisRefused, Noise, no_noise
from oncofed.analysis.variables import FRAME_SQL, Frame, VariableError, frame_from_columns
from oncofed.analysis.wire import STEP_KIND, AnalysisStepBody
from oncofed.audit import AuditLog
from oncofed.node.context import NodeContext
from oncofed.node.handlers import TaskMeta, TaskRefused, handler
from oncofed.privacy.errors import DisclosureRefused
from oncofed.query.validate import QueryValidationError, parse_query

metadata = sa.MetaData()
runs = sa.Table(
    "analysis_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("requester", sa.String(300), nullable=False),
    sa.Column("algorithm", sa.String(64), nullable=False),
    sa.Column("spec_hash", sa.String(64), nullable=False),
    # the analysis without its cohort: two runs with the same key differ only in patients
    sa.Column("question", sa.String(64), nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("day", sa.String(10), nullable=False),
    sa.Column("steps", sa.Integer, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("analysis_runs_who_day", "requester", "day"),
)

_created: set[int] = set()
# Cohort frames of recent runs, by store and spec hash (a run's rounds analyse the same rows),
# with the store generation they were selected at.
COHORTS_KEPT = 8
_cohorts: dict[str, tuple[int, Frame]] = {}
_frames: dict[str, tuple[int, Frame]] = {}
_frames_lock = threading.Lock()


def _tables(ctx: NodeContext) -> None:
    if id(ctx.state) not in _created:
        metadata.create_all(ctx.state)
        _created.add(id(ctx.state))


def cohort_frame(ctx: NodeContext, cohort: dict[str, Any], datasets: set[str]) -> Frame:
    """The analysis frame of the patients the search AST selects, in ``datasets``."""
    op = parse_query(cohort)
    for _ in range(3):
        index = ctx.store.search_index()
        key = str(ctx.store.path.resolve())
        with _frames_lock:
            cached = _frames.get(key)
        if cached is None or cached[0] != index.changes:
            with ctx.store.reading() as con:
                data = con.execute(FRAME_SQL).fetchnumpy()
                row = con.execute("SELECT count(*) FROM store_change").fetchone()
            changes = int(row[0]) if row else -1
            if changes != index.changes:
                continue  # the store moved between the index and the frame: read again
            frame = frame_from_columns(data, tuple(d[0] for d in index.datasets))
            if frame.rows != index.patients.rows:
                continue
            with _frames_lock:
                _frames[key] = (index.changes, frame)
        else:
            frame = cached[1]
        mask = index.matching(op)
        wanted = np.array([ds in datasets for ds in frame.datasets], dtype=np.bool_)
        if len(wanted):
            mask &= wanted[frame.dataset]
        return frame.take(np.flatnonzero(mask))
    raise RuntimeError("the store keeps changing; try the analysis again")


class _DeferredAudit:
    """An audit log whose entries join the task's own (written in the transaction that
    records the step's outcome, one commit for all; see ``TaskMeta.audit_entries``)."""

    def __init__(self, meta: TaskMeta) -> None:
        self.meta = meta

    def append(
        self,
        actor: str,
        action: str,
        decision: str,
        target: str = "",
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> int:
        self.meta.audit_entries.append(
            {
                "actor": actor,
                "action": action,
                "decision": decision,
                "target": target,
                "reason": reason,
                "details": details,
            }
        )
        return 0


def _audience(token: str) -> str:
    """The ``aud`` a visa claims, unverified: only to skip visas meant for other nodes."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    except (ValueError, IndexError):
        return ""
    aud = payload.get("aud", "") if isinstance(payload, dict) else ""
    return str(aud[0] if isinstance(aud, list) and aud else aud)


def _allowed(ctx: NodeContext, analysis: Registered) -> bool:
    allowed = set(ctx.policy.allowed_algorithms)
    return analysis.name in allowed or analysis.key in allowed


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@handler(STEP_KIND)
def analysis_step(ctx: NodeContext, body: dict[str, Any], meta: TaskMeta) -> dict[str, Any]:
    task = AnalysisStepBody.model_validate(body)
    audit: dict[str, Any] = {
        "run_id": task.run_id,
        "step": task.step,
        "algorithm": task.algorithm,
        "spec_hash": task.spec_hash,
    }

    def refuse(reason: str, message: str) -> TaskRefused:
        meta.audit_entries.append(
            {
                "actor": meta.requester,
                "action": "analysis.step",
                "decision": "deny",
                "target": task.run_id,
                "reason": message,
                "details": {**audit, "refusal": reason},
            }
        )
        return TaskRefused(message)

    try:
        result, released = _run_step(ctx, task, meta, audit)
    except AnalysisRefused as exc:
        raise refuse(exc.reason, str(exc)) from exc
    except DisclosureRefused as exc:
        raise refuse(exc.reason, str(exc)) from exc
    except (QueryValidationError, VariableError, ValueError) as exc:
        raise refuse("invalid", f"invalid analysis request: {exc}") from exc
    meta.audit_entries.append(
        {
            "actor": meta.requester,
            "action": "analysis.step",
            "decision": "allow",
            "target": task.run_id,
            "reason": "",
            "details": {**audit, "released": released},
        }
    )
    return result


def _run_step(
    ctx: NodeContext, task: AnalysisStepBody, meta: TaskMeta, audit: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    name, _, version = task.algorithm.partition("@")
    analysis = ANALYSES.get(name)
    if analysis is None or (version and version != str(analysis.version)):
        raise AnalysisRefused("unknown_algorithm", f"no analysis {task.algorithm!r} is installed")
    if not _allowed(ctx, analysis):
        raise AnalysisRefused(
            "not_allowed", f"this node's policy does not allow the {analysis.key} analysis"
        )
    rules = ctx.policy.analysis
    me = ctx.settings.name
    if me not in task.sites:
        raise AnalysisRefused("not_a_site", "this node is not one of the run's signed sites")
    if len(set(task.sites)) < rules.min_sites:
        raise AnalysisRefused(
            "too_few_sites",
            f"this node takes part only in runs over at least {rules.min_sites} sites",
        )
    datasets = {d.split(":", 1)[1] for d in task.datasets if d.split(":", 1)[0] == me}
    if not datasets:
        raise AnalysisRefused("no_dataset", "the run names no dataset of this node")
    spec = analysis.Spec.model_validate(task.spec)
    canonical = spec.model_dump(mode="json")
    expected = spec_hash(analysis.key, canonical, task.cohort, task.datasets)
    if expected != task.spec_hash:
        raise AnalysisRefused("spec_hash", "the run's spec hash does not match its content")

    # Grants: a verified visa for every dataset analysed here, bound to the requester. One
    # passport serves all the run's nodes: visas addressed to another node cannot grant
    # anything here, so only ours are verified (and audited, with the step's outcome).
    from oncofed.node.grants import split_passport, verified_datasets

    mine = [t for t in split_passport(task.passport) if _audience(t) == ctx.settings.node_id]
    granted = verified_datasets(
        ctx.settings,
        ctx.state,
        cast(AuditLog, _DeferredAudit(meta)),
        mine,
        subject=meta.requester,
        datasets=datasets,
        channel="task",
    )
    missing = sorted(datasets - granted)
    if missing:
        raise AnalysisRefused(
            "no_grant",
            f"no valid visa of {meta.requester} for dataset(s) {', '.join(missing)} "
            "(request access, or check that the visa has not expired or been revoked)",
        )

    _tables(ctx)
    now = time.time()
    day = dt.datetime.fromtimestamp(now, dt.UTC).date().isoformat()
    question = _digest([analysis.key, canonical, sorted(task.datasets)])
    with ctx.state.connect() as con:
        run = con.execute(sa.select(runs).where(runs.c.run_id == task.run_id)).first()
        runs_today = con.execute(
            sa.select(sa.func.count())
            .select_from(runs)
            .where(runs.c.requester == meta.requester, runs.c.day == day)
        ).scalar_one()
        earlier = con.execute(
            sa.select(runs.c.n).where(
                runs.c.requester == meta.requester,
                runs.c.question == question,
                runs.c.spec_hash != task.spec_hash,
            )
        ).scalars()
        earlier_n = [int(n) for n in earlier]
    if run is not None and (run.requester != meta.requester or run.spec_hash != task.spec_hash):
        raise AnalysisRefused(
            "spec_changed", "a later step of a run must analyse what its first step did"
        )
    steps = (run.steps if run is not None else 0) + 1
    if steps > rules.max_steps:
        raise AnalysisRefused(
            "step_cap", f"a run may take at most {rules.max_steps} steps at this node"
        )
    if run is None and runs_today >= rules.runs_per_day:
        raise AnalysisRefused(
            "run_allowance",
            f"{meta.requester} has started {runs_today} analysis runs at this node today, "
            "the most its policy allows; the allowance resets at midnight UTC",
        )

    key = f"{ctx.store.path.resolve()}:{task.spec_hash}"
    cached = _cohorts.get(key)
    if cached is not None and cached[0] == ctx.store.generation:
        frame = cached[1]
    else:
        frame = cohort_frame(ctx, task.cohort, datasets)
        _cohorts[key] = (ctx.store.generation, frame)
        while len(_cohorts) > COHORTS_KEPT:
            _cohorts.pop(next(iter(_cohorts)))
    n = frame.rows
    audit["n_rows"] = n
    k = max(rules.min_cell, ctx.policy.disclosure.min_count)
    if n < max(rules.min_cohort, ctx.policy.disclosure.min_count):
        raise AnalysisRefused(
            "small_cohort",
            f"the cohort at this node has fewer than "
            f"{max(rules.min_cohort, ctx.policy.disclosure.min_count)} patients",
        )
    if run is None:
        close = [m for m in earlier_n if 0 < abs(n - m) < k]
        if close:
            raise AnalysisRefused(
                "differencing",
                f"this cohort differs from one you analysed before with the same analysis by "
                f"fewer than {k} patients; its result would reveal theirs",
            )

    # Budget: noisy releases charge the ledger search uses, once per run spec and day.
    noise: Noise = no_noise
    epsilon = 0.0
    if analysis.epsilon_units and rules.noise:
        for unit in range(analysis.epsilon_units):
            admission = ctx.privacy_ledger.admit(
                meta.requester,
                f"{task.spec_hash[:56]}:{unit}",
                ctx.policy.disclosure,
                meta.writes,
            )
            epsilon += admission.epsilon_charged
        scale = 1.0 / ctx.policy.disclosure.epsilon
        node_id = ctx.settings.node_id or me
        dataset_key = ",".join(sorted(datasets))

        def noise(wanted: Any) -> dict[str, int]:
            draws = ctx.privacy_ledger.noise(
                node_id, task.spec_hash, [(dataset_key, s, w * scale) for s, w in wanted]
            )
            return {s: draws[(dataset_key, s)] for s, _ in wanted}

    partial = analysis.local(spec, frame, task.state, rules, noise)

    values = {
        "run_id": task.run_id,
        "requester": meta.requester,
        "algorithm": analysis.key,
        "spec_hash": task.spec_hash,
        "question": question,
        "n": n,
        "day": day,
        "steps": steps,
        "at": now,
    }

    def record(con: sa.Connection) -> None:
        if run is None:
            con.execute(sa.insert(runs).values(**values))
        else:
            con.execute(sa.update(runs).where(runs.c.run_id == task.run_id).values(steps=steps))

    meta.writes.append(record)
    released = {"keys": sorted(partial), "epsilon": epsilon, "noisy": bool(epsilon)}
    return {"run_id": task.run_id, "step": task.step, "partial": partial}, released
