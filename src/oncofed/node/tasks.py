"""Task handlers: what a node does for each task kind it allows.

A handler receives the node context and the validated body and returns the result body,
which must already be safe to leave the node (aggregates that passed disclosure control).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oncofed import __version__
from oncofed.node.context import NodeContext
from oncofed.node.policy import disclose_count

Handler = Callable[[NodeContext, dict[str, Any]], dict[str, Any]]
HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn

    return register


def node_summary(ctx: NodeContext) -> dict[str, Any]:
    """Version, policy and datasets, with sizes as the node's disclosure rules allow."""
    datasets = []
    for d in ctx.store.datasets():
        patients = disclose_count(int(str(d["patients"])), ctx.policy.disclosure)
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
    return {
        "name": ctx.settings.name,
        "provider_id": ctx.settings.provider_id,
        "version": __version__,
        "policy": ctx.policy.summary(),
        "datasets": datasets,
    }


@handler("node.info")
def node_info(ctx: NodeContext, body: dict[str, Any]) -> dict[str, Any]:
    return node_summary(ctx)
