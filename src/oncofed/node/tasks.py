"""The node's own task kinds: `node.info` (version, policy, dataset sizes) and `search.count`
(EUCAIM search). Other capabilities register theirs in their own modules; the registry and
its rules are in `oncofed.node.handlers`.
"""

from __future__ import annotations

from typing import Any

from oncofed import __version__
from oncofed.node.context import NodeContext
from oncofed.node.handlers import TaskMeta, TaskRefused, handler
from oncofed.privacy.disclose import release_count


def node_summary(ctx: NodeContext) -> dict[str, Any]:
    """Version, policy and datasets, with sizes as the node's disclosure rules allow.

    The dataset part is recomputed only when the store changed: it is asked for on every
    `node.info` and catalogue refresh, and its noise is cached anyway.
    """
    cached = ctx.dataset_sizes
    if cached is None or cached[0] != ctx.store.generation:
        cached = ctx.dataset_sizes = (ctx.store.generation, _dataset_sizes(ctx))
    return {
        "name": ctx.settings.name,
        "provider_id": ctx.settings.provider_id,
        "version": __version__,
        "policy": ctx.policy.summary(),
        "datasets": cached[1],
    }


def _dataset_sizes(ctx: NodeContext) -> list[dict[str, Any]]:
    datasets = []
    policy = ctx.policy.disclosure
    rows = ctx.store.datasets()
    # Dataset sizes get the same treatment as search counts: cached noise, rounding, and
    # the threshold applied to the noisy value (an exact threshold would leak).
    noise = ctx.privacy_ledger.noise(
        ctx.settings.node_id or ctx.settings.name,
        "node.info",
        [(str(d["id"]), "patients", 1.0 / policy.epsilon) for d in rows],
    )
    for d in rows:
        patients = release_count(int(str(d["patients"])), noise[(str(d["id"]), "patients")], policy)
        datasets.append(
            {
                "id": d["id"],
                "name": d["name"],
                "description": d["description"],
                "access_level": d["access_level"],
                "patients": patients,
                **(
                    {}
                    if patients is not None
                    else {"patients_below": ctx.policy.disclosure.min_count}
                ),
            }
        )
    return datasets


@handler("node.info")
def node_info(ctx: NodeContext, body: dict[str, Any], meta: TaskMeta) -> dict[str, Any]:
    return node_summary(ctx)


@handler("search.count")
def search_count(ctx: NodeContext, body: dict[str, Any], meta: TaskMeta) -> dict[str, Any]:
    """Disclosure-controlled counts per dataset, in EUCAIM's mediator shape."""
    from oncofed.node.search import answer_search
    from oncofed.privacy import DisclosureDecision, DisclosureRefused
    from oncofed.query import QueryValidationError

    def audit(decision: DisclosureDecision) -> None:
        meta.audit_entries.append(
            {
                "actor": meta.requester,
                "action": "search",
                "decision": "allow" if decision.decision == "answered" else "deny",
                "target": meta.task_id,
                "reason": decision.reason,
                "details": decision.model_dump(mode="json", exclude={"query"}),
            }
        )

    try:
        response = answer_search(
            ctx.store,
            body["ast"],
            meta.requester,
            ctx.policy.disclosure,
            ctx.state,
            ctx.settings.node_id or ctx.settings.name,
            audit=audit,
            ledger=ctx.privacy_ledger,
            defer=meta.writes,
        )
    except (DisclosureRefused, QueryValidationError) as exc:
        raise TaskRefused(str(exc)) from exc
    return response.model_dump(mode="json")
