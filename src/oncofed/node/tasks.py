"""The node's own task kinds: `node.info` (version, policy, dataset sizes) and `search.count`
(EUCAIM search). Other capabilities register theirs in their own modules; the registry and
its rules are in `oncofed.node.handlers`.
"""

from __future__ import annotations

from typing import Any

from oncofed import __version__
from oncofed.node.context import NodeContext
from oncofed.node.handlers import TaskMeta, TaskRefused, handler
from oncofed.privacy.disclose import headline_noise, release_count
from oncofed.query.ast import EVERYONE, query_hash
from oncofed.query.counts import DatasetCounts


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
    # Dataset sizes are the subjects counts of an unconstrained search, released with the
    # very same cached draw (one noisy value per figure, whoever asks and where: averaging
    # two draws of one count would approach the exact value).
    max_studies = ctx.policy.disclosure.max_studies_per_subject
    counts = {c.dataset_id: c for c in ctx.store.search_counts(EVERYONE, max_studies)}
    for d in rows:
        counts.setdefault(
            str(d["id"]), DatasetCounts(str(d["id"]), subjects=int(str(d["patients"])))
        )
    noise = headline_noise(
        list(counts.values()),
        policy,
        ctx.privacy_ledger,
        ctx.settings.node_id or ctx.settings.name,
        query_hash(EVERYONE),
    )
    for d in rows:
        size = counts[str(d["id"])].subjects
        patients = release_count(size, noise[(str(d["id"]), "subjects")], policy)
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
