"""The hub checks every result against its kind's model and the node's own datasets
(issue 17): a compromised node made the federation total -1,000,000 and answered for
another provider's dataset. A refused result is stored as the node's failure, audited."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oncofed.hub.admin import init_hub
from oncofed.hub.app import build_context
from oncofed.hub.catalogue.models import CatalogueDataset
from oncofed.hub.context import HubContext
from oncofed.hub.models import Node
from oncofed.hub.search import combine
from oncofed.security.envelope import SignedEnvelope, iso, utcnow
from oncofed.security.keys import SigningKey
from oncofed.settings import load_hub_settings

AST = {"operand": "AND", "children": []}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[HubContext, dict[str, tuple[Node, SigningKey]]]]:
    init_hub(tmp_path / "hub", "results hub", "127.0.0.1", 8000)
    ctx = build_context(load_hub_settings(tmp_path / "hub"))
    nodes = {}
    now = utcnow()
    with ctx.sessions.begin() as s:
        for name in ("node-a", "node-b"):
            key = SigningKey.generate()
            node = Node(id=uuid.uuid4().hex, name=name, public_key=key.public.b64,
                        status="enrolled", created_at=now, enrolled_at=now, info={})  # fmt: skip
            s.add(node)
            nodes[name] = (node, key)
        s.flush()
        s.add(CatalogueDataset(key="b1", identifier="b1", origin="", node_id=nodes["node-b"][0].id,
                               node_name="node-b", dataset_id="ds-b", published={}, edits={},
                               issued_at=now, modified_at=now, refreshed_at=now,
                               withdrawn_at=None))  # fmt: skip
        s.flush()
        s.expunge_all()
    yield ctx, nodes
    ctx.engine.dispose()


def _answer(ctx: HubContext, node: Node, key: SigningKey, task_id: str, body: Any) -> None:
    payload = {"type": "oncofed.result", "task_id": task_id, "node_id": node.id,
               "status": "succeeded", "body": body, "error": None,
               "issued_at": iso(utcnow())}  # fmt: skip
    ctx.channel.record_result(node, task_id, SignedEnvelope.sign(payload, key))


def _collection(dataset: str, subjects: int) -> dict[str, Any]:
    return {"id": dataset, "name": dataset, "subjects_count": subjects, "studies_count": None,
            "studies_count_below": 10}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"collections": [_collection("ds-a", -1_000_000)]}, "greater than or equal to 0"),
        ({"collections": [_collection("ds-b", 40)]}, "other nodes' datasets: ds-b"),
        ({"collections": [{**_collection("ds-a", 40), "sql": "x"}]}, "Extra inputs"),
        ({"collections": "many"}, "valid list"),
    ],
)
def test_a_bad_result_is_the_nodes_failure(hub: Any, body: Any, why: str) -> None:
    ctx, nodes = hub
    task_id, _ = ctx.channel.create("search.count", {"ast": AST}, None, 60, "alice")
    _answer(ctx, *nodes["node-a"], task_id, body)
    _answer(ctx, *nodes["node-b"], task_id, {"collections": [_collection("ds-b", 40)]})
    view = combine(ctx.channel.view(task_id))
    by_node = {p["provider"]: p for p in view["providers"]}
    assert by_node["node-a"]["status"] == "failed" and why in by_node["node-a"]["error"]
    assert by_node["node-b"]["status"] == "succeeded"
    assert [c["id"] for c in view["collections"]] == ["ds-b"]
    denied = [e for e in ctx.audit.entries() if e["action"] == "task.result"]
    assert any(e["decision"] == "deny" and why in e["reason"] for e in denied)
