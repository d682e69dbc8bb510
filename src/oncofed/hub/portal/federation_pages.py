"""The federation dashboard (nodes, what they publish, recent activity) and, for admins,
the hub's audit log with its chain check."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from oncofed.audit import audit_entry
from oncofed.hub.auth import Caller
from oncofed.hub.catalogue import service as catalogue
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.models import FINAL_STATUSES, Node, Task, TaskTarget
from oncofed.hub.portal.catalogue_pages import by_provider
from oncofed.hub.portal.charts import Bar, bar_chart, range_chart
from oncofed.hub.portal.session import user_with
from oncofed.hub.portal.templating import render
from oncofed.security.envelope import utcnow

router = APIRouter(include_in_schema=False)
Ctx = Annotated[HubContext, Depends(hub_context)]
AUDIT_PAGE = 100


def _nodes(ctx: HubContext) -> list[dict[str, Any]]:
    # A node long-polls continuously; one not heard from for two polls (plus slack) is down.
    online_after = utcnow() - timedelta(seconds=2 * ctx.settings.long_poll_seconds + 15)
    with ctx.sessions() as s:
        return [
            {
                "name": n.name,
                "status": n.status,
                "version": n.version or "—",
                "last_seen_at": n.last_seen_at,
                "online": n.status == "enrolled"
                and n.last_seen_at is not None
                and n.last_seen_at > online_after,
            }
            for n in s.scalars(sa.select(Node).order_by(Node.name))
        ]


def _recent_tasks(ctx: HubContext, user: Caller) -> list[dict[str, Any]]:
    """The last tasks with how many nodes answered; others' usernames only for admins."""
    admin = "admin" in user.roles
    with ctx.sessions() as s:
        tasks = list(s.scalars(sa.select(Task).order_by(Task.created_at.desc()).limit(15)))
        if not tasks:
            return []
        counts: dict[str, Counter[str]] = {t.id: Counter() for t in tasks}
        for task_id, status in s.execute(
            sa.select(TaskTarget.task_id, TaskTarget.status).where(
                TaskTarget.task_id.in_(list(counts))
            )
        ):
            counts[task_id][status] += 1
    out = []
    for t in tasks:
        c = counts[t.id]
        who = t.created_by if admin or t.created_by == user.username else "another user"
        out.append(
            {
                "kind": t.kind,
                "by": who,
                "at": t.created_at,
                "targets": sum(c.values()),
                "succeeded": c.get("succeeded", 0),
                "open": sum(n for st, n in c.items() if st not in FINAL_STATUSES),
                "other": {
                    st: n
                    for st, n in c.items()
                    if st not in ("succeeded",) and st in FINAL_STATUSES
                },
            }
        )
    return out


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(
    request: Request, ctx: Ctx, user: Annotated[Caller, Depends(user_with())]
) -> Response:
    nodes = await run_in_threadpool(_nodes, ctx)
    records = await run_in_threadpool(catalogue.list_records, ctx)
    tasks = await run_in_threadpool(_recent_tasks, ctx, user)
    datasets = Counter(r.provider for r in records if not r.origin)
    for n in nodes:
        n["datasets"] = datasets.get(n["name"], 0)
    ranges = [
        (f"{r.provider}: {r.title}", r.figures.age_range.min, r.figures.age_range.max)
        for r in records
        if r.figures.age_range is not None
    ][:20]
    modalities: Counter[str] = Counter()
    for r in records:
        modalities.update({m.label for m in r.figures.modalities})
    return render(
        request,
        ctx,
        "dashboard.html",
        user,
        title="Federation",
        nodes=nodes,
        online=sum(1 for n in nodes if n["online"]),
        tasks=tasks,
        individuals_chart=bar_chart("Individuals per provider", by_provider(records)),
        modality_chart=bar_chart(
            "Datasets per imaging modality",
            [Bar(m, n) for m, n in sorted(modalities.items(), key=lambda x: (-x[1], x[0]))],
        ),
        age_chart=range_chart(
            "Age at diagnosis per dataset (released ranges)",
            ranges,
            min((a for _, a, _ in ranges), default=0) // 10 * 10,
            (max((b for _, _, b in ranges), default=0) + 9) // 10 * 10,
        ),
        harvested=sum(1 for r in records if r.origin),
    )


def _audit_page(
    ctx: HubContext, actor: str, action: str, decision: str, before: int | None
) -> list[dict[str, Any]]:
    q = sa.select(audit_entry).order_by(audit_entry.c.seq.desc()).limit(AUDIT_PAGE)
    if actor:
        q = q.where(audit_entry.c.actor == actor)
    if action:
        q = q.where(audit_entry.c.action.startswith(action, autoescape=True))
    if decision:
        q = q.where(audit_entry.c.decision == decision)
    if before:
        q = q.where(audit_entry.c.seq < before)
    with ctx.engine.connect() as con:
        return [dict(r._mapping) for r in con.execute(q)]


@router.get("/admin/audit", response_class=HTMLResponse)
async def audit(
    request: Request,
    ctx: Ctx,
    user: Annotated[Caller, Depends(user_with("admin"))],
    actor: Annotated[str, Query(max_length=200)] = "",
    action: Annotated[str, Query(max_length=100)] = "",
    decision: Annotated[str, Query(max_length=20)] = "",
    before: Annotated[int | None, Query(ge=1)] = None,
    verify: bool = False,
) -> Response:
    entries = await run_in_threadpool(_audit_page, ctx, actor, action, decision, before)
    problems = await run_in_threadpool(ctx.audit.verify) if verify else None
    await run_in_threadpool(
        ctx.audit.append,
        user.username,
        "audit.view",
        "info",
        "portal",
        details={"actor": actor, "action": action, "decision": decision, "verify": verify},
    )
    filters = {k: v for k, v in (("actor", actor), ("action", action), ("decision", decision)) if v}
    return render(
        request,
        ctx,
        "audit.html",
        user,
        title="Audit log",
        entries=entries,
        filters=filters,
        actor=actor,
        action=action,
        decision=decision,
        problems=problems,
        verified=verify,
        older=entries[-1]["seq"] if len(entries) == AUDIT_PAGE else None,
    )
