"""Driving an analysis run: rounds of signed ``analysis.step`` tasks until convergence.

A round is one task to the run's active nodes: the hub sends the current state (β for a
GLM or Cox model), waits for every node's partial up to the round deadline, and hands the
partials to the analysis's ``combine``, which answers with the next state or the pooled
result. The loop knows nothing of the analysis beyond that (:class:`RoundDriver`), so
federated learning can drive its rounds the same way.

A node that refuses, fails or does not answer in a round ends the run with an error naming
it, unless the researcher asked for ``allow_partial``: then the run goes on without it and
the result says which node left at which round. For an iterative model that is the fit on
the remaining nodes' rows (Newton's fixed point does not depend on the path to it).

Runs are kept in this hub process (the last :data:`KEEP` runs): each round is a task in the
hub's database and both audit logs, and a run that a restart interrupted is started again
by the researcher (analyses are deterministic; noisy releases reuse cached noise, so a
rerun costs no budget and reveals nothing new).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi.concurrency import run_in_threadpool

from oncofed.analysis import ANALYSES
from oncofed.analysis.base import Outcome, Registered, spec_hash
from oncofed.analysis.disclosure import AnalysisRefused
from oncofed.analysis.wire import STEP_KIND
from oncofed.hub.admission import admit_task
from oncofed.hub.channel import ChannelError, TaskView
from oncofed.hub.context import HubContext
from oncofed.hub.waiting import wait_for_results
from oncofed.protocol import TaskBodyError
from oncofed.query.validate import parse_query
from oncofed.security.envelope import iso, utcnow

KEEP = 500


class AnalysisError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Run:
    id: str
    algorithm: str
    spec: dict[str, Any]
    cohort: dict[str, Any]
    datasets: list[str]
    sites: list[str]
    created_by: str
    allow_partial: bool
    round_timeout: float
    spec_hash: str
    passport: str | None = field(default=None, repr=False)
    status: str = "running"  # running | succeeded | failed
    created_at: str = field(default_factory=lambda: iso(utcnow()))
    finished_at: str | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def view(self) -> dict[str, Any]:
        """What the researcher sees: the pooled result, never a node's partial."""
        return {
            "id": self.id,
            "algorithm": self.algorithm,
            "spec": self.spec,
            "cohort": self.cohort,
            "datasets": self.datasets,
            "sites": self.sites,
            "status": self.status,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "seconds": round(self.seconds, 4),
            "rounds": self.rounds,
            "partial": bool(self.excluded),
            "excluded": self.excluded,
            "result": self.result,
            "error": self.error,
        }


# One round: send `state` to `nodes`, return the task's view once all answered or timed out.
SendRound = Callable[[Run, int, dict[str, Any], list[str]], Awaitable[TaskView]]


class RoundDriver:
    """Rounds of one analysis until its combine step says done (shared by every analysis)."""

    def __init__(self, analysis: Registered, send: SendRound) -> None:
        self.analysis = analysis
        self.send = send

    async def drive(self, run: Run, max_rounds: int) -> None:
        spec = self.analysis.Spec.model_validate(run.spec)
        state = self.analysis.start(spec)
        active = list(run.sites)
        for step in range(max_rounds):
            began = time.perf_counter()
            view = await self.send(run, step, state, active)
            ok = [t for t in view.targets if t.status == "succeeded" and t.result]
            bad = [t for t in view.targets if not (t.status == "succeeded" and t.result)]
            run.rounds.append(
                {
                    "step": step,
                    "task": view.id,
                    "nodes": {t.node_name: t.status for t in view.targets},
                    "seconds": round(time.perf_counter() - began, 4),
                }
            )
            for t in bad:
                what = (
                    t.error or f"did not answer within {run.round_timeout:g} s (node down or busy)"
                )
                message = f"node {t.node_name} {_verb(t.status)} at round {step}: {what}"
                if not run.allow_partial or len(ok) == 0:
                    raise AnalysisError(502, message)
                run.excluded.append({"node": t.node_name, "round": step, "reason": message})
            active = [t.node_name for t in ok]
            outcome: Outcome = self.analysis.combine(
                spec, [t.result["partial"] for t in ok if t.result], state
            )
            if outcome.done:
                run.result = outcome.result
                return
            state = outcome.state
        raise AnalysisError(502, f"the run did not finish within {max_rounds} rounds")


def _verb(status: str) -> str:
    return {"refused": "refused", "failed": "failed", "expired": "timed out"}.get(
        status, "did not answer"
    )


class AnalysisRuns:
    """The analysis runs of this hub process (the last KEEP)."""

    def __init__(self) -> None:
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, run_id: str, username: str, admin: bool) -> Run:
        run = self._runs.get(run_id)
        if run is None or (run.created_by != username and not admin):
            raise AnalysisError(404, f"no analysis run {run_id}")
        return run

    def mine(self, username: str) -> list[Run]:
        return [r for r in reversed(self._runs.values()) if r.created_by == username]

    async def start(
        self,
        ctx: HubContext,
        username: str,
        algorithm: str,
        spec: dict[str, Any],
        cohort: dict[str, Any],
        datasets: list[str],
        *,
        allow_partial: bool = False,
        round_timeout: float = 30.0,
        passport: str | None = None,
    ) -> Run:
        """Validate a request and start its run in the background."""
        name, _, version = algorithm.partition("@")
        analysis = ANALYSES.get(name)
        if analysis is None or (version and version != str(analysis.version)):
            raise AnalysisError(
                422, f"unknown analysis {algorithm!r}; available: {', '.join(ANALYSES)}"
            )
        try:
            canonical = analysis.Spec.model_validate(spec).model_dump(mode="json")
            cohort = parse_query(cohort).model_dump(mode="json", exclude_none=True)
        except ValueError as exc:
            raise AnalysisError(422, f"invalid {name} request: {exc}") from exc
        bad = [d for d in datasets if d.count(":") != 1 or not all(d.split(":"))]
        if bad or not datasets:
            raise AnalysisError(
                422, f"datasets are NODE:DATASET (e.g. node-1:p1-cohort); got {bad or datasets}"
            )
        datasets = sorted(set(datasets))
        sites = sorted({d.split(":", 1)[0] for d in datasets})
        if passport is None:
            passport = await run_in_threadpool(_passport, ctx, username, datasets)
        run = Run(
            id=uuid.uuid4().hex,
            algorithm=analysis.key,
            spec=canonical,
            cohort=cohort,
            datasets=datasets,
            sites=sites,
            created_by=username,
            allow_partial=allow_partial,
            round_timeout=round_timeout,
            spec_hash=spec_hash(analysis.key, canonical, cohort, datasets),
            passport=passport,
        )
        await run_in_threadpool(
            ctx.audit.append,
            username,
            "analysis.run",
            "allow",
            run.id,
            "",
            {"algorithm": run.algorithm, "datasets": datasets, "spec_hash": run.spec_hash},
        )
        self._runs[run.id] = run
        while len(self._runs) > KEEP:
            self._runs.popitem(last=False)
        task = asyncio.create_task(self._drive(ctx, analysis, run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run

    async def _drive(self, ctx: HubContext, analysis: Registered, run: Run) -> None:
        began = time.perf_counter()

        async def send(run: Run, step: int, state: dict[str, Any], nodes: list[str]) -> TaskView:
            body = {
                "run_id": run.id,
                "step": step,
                "algorithm": run.algorithm,
                "spec": run.spec,
                "spec_hash": run.spec_hash,
                "cohort": run.cohort,
                "datasets": run.datasets,
                # the sites of this round: each node counts them against its min_sites, so
                # dropping nodes (allow_partial) cannot shrink a run below a node's minimum
                "sites": nodes,
                "state": state,
                "passport": run.passport,
            }
            # the one way a request becomes a task: validated, bounded, audited
            task_id, node_ids = await run_in_threadpool(
                admit_task,
                ctx,
                run.created_by,
                STEP_KIND,
                body,
                nodes,
                int(run.round_timeout) + 5,
            )
            for node_id in node_ids:  # the nodes' streams send it now, not at their recheck
                ctx.notifier.wake(f"node:{node_id}")
            return await wait_for_results(ctx, task_id, run.round_timeout, targets=len(node_ids))

        max_rounds = int(run.spec.get("max_iter", 1)) + 1 if analysis.iterative else 1
        try:
            await RoundDriver(analysis, send).drive(run, max_rounds)
            run.status = "succeeded"
        except AnalysisError as exc:
            run.status, run.error = "failed", exc.message
        except (AnalysisRefused, TaskBodyError) as exc:
            run.status, run.error = "failed", str(exc)
        except ChannelError as exc:
            run.status, run.error = "failed", exc.message
        except Exception as exc:  # a bug must still end the run, with its reason
            run.status, run.error = "failed", f"{type(exc).__name__}: {exc}"
        run.seconds = time.perf_counter() - began
        run.finished_at = iso(utcnow())
        await run_in_threadpool(
            ctx.audit.append,
            run.created_by,
            "analysis.finish",
            "allow" if run.status == "succeeded" else "error",
            run.id,
            run.error or "",
            {"rounds": len(run.rounds), "excluded": run.excluded, "seconds": run.seconds},
        )
        run.done.set()


def _passport(ctx: HubContext, username: str, datasets: list[str]) -> str:
    """The researcher's valid visas for the run's datasets; each node verifies them itself
    (audience, dataset, expiry, revocation), so a visa for another node is merely unused."""
    from oncofed.hub.negotiation.service import Who, my_visas

    wanted = {d.split(":", 1)[1] for d in datasets}
    visas = my_visas(ctx, Who(username, frozenset()))
    return " ".join(v["visa"] for v in visas if v["dataset"] in wanted)
