"""The Beacon network pieces that need no processes: the node's `beacon.query` handler,
the task body both sides register, and the hub's merge of node answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from oncofed.beacon.wire import BeaconConfig, BeaconFramework, BeaconRequest
from oncofed.hub.beacon import merge
from oncofed.hub.channel import TargetView, TaskView
from oncofed.node.beacon.schemas import BeaconSchemas, default_root
from oncofed.node.beacon.task import beacon_query
from oncofed.node.context import NodeContext
from oncofed.node.handlers import TaskMeta, registered
from oncofed.node.ingest.common import NodeTarget
from oncofed.node.ingest.vcf import ingest_vcf
from oncofed.protocol import TaskBodyError, validate_body
from oncofed.settings import load_node_settings
from tests.clinical_fixtures import make_node, make_synth


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> NodeContext:
    base = tmp_path_factory.mktemp("hub")
    synth = make_synth(base / "synth", patients=40)
    node = make_node(base / "node")
    target = NodeTarget.open(node)
    ingest_vcf([synth / "variants"], target, access_level="registered")
    target.close()
    context = NodeContext.open(load_node_settings(node))
    yield context  # type: ignore[misc]
    context.close()


def _view(results: dict[str, dict | None]) -> TaskView:  # type: ignore[type-arg]
    targets = [
        TargetView(name, name, "succeeded" if r is not None else "expired", 1, None, r,
                   None if r is not None else "no answer in time")
        for name, r in results.items()
    ]  # fmt: skip
    return TaskView("t1", "beacon.query", {}, "alice", "", "", targets)


def test_task_body_is_registered_and_checked() -> None:
    assert "beacon.query" in registered()
    body = validate_body("beacon.query", {"entry_type": "g_variants", "request": {}})
    assert body["entry_type"] == "g_variants"
    with pytest.raises(TaskBodyError):
        validate_body("beacon.query", {"entry_type": "patients"})
    with pytest.raises(TaskBodyError):
        validate_body("beacon.query", {"entry_type": "g_variants", "sql": "DROP TABLE"})


def test_node_handler_and_hub_merge_are_schema_valid(ctx: NodeContext) -> None:
    meta = TaskMeta("t1", "beacon.query", "alice")
    # Everyone (26 individuals): a cohort below the minimum count (10), such as the KRAS
    # carriers here, is reported as absent.
    request = {"query": {"requestedGranularity": "count"}}
    answer = beacon_query(ctx, {"entry_type": "individuals", "request": request}, meta)
    assert answer["status"] == 200
    doc = answer["document"]
    assert doc["responseSummary"]["exists"] is True
    # record level is never granted through the hub by default
    rec = {"query": {"requestedGranularity": "record"}}
    answer_rec = beacon_query(ctx, {"entry_type": "individuals", "request": rec}, meta)
    assert "response" not in answer_rec["document"]
    bad = beacon_query(ctx, {"entry_type": "individuals",
                             "request": {"query": {"filters": ["XYZ:1"]}}}, meta)  # fmt: skip
    assert bad["status"] == 400 and "XYZ:1" in bad["error"]

    framework = BeaconFramework(BeaconConfig("org.oncofed.hub", "hub", "hub"))
    merged = merge(
        framework, "individuals", BeaconRequest.parse(request),
        _view({"node-1": answer, "node-2": answer, "node-3": None}),
    )  # fmt: skip
    nodes = {n["node"]: n for n in merged["info"]["nodes"]}
    assert nodes["node-3"]["status"] == "expired" and "error" in nodes["node-3"]
    assert merged["responseSummary"]["exists"] is True
    if doc["meta"]["returnedGranularity"] == "count":
        assert merged["responseSummary"]["numTotalResults"] == 2 * doc["responseSummary"][
            "numTotalResults"]  # fmt: skip
    root = default_root()
    if root is not None:
        schemas = BeaconSchemas(root)
        schemas.check_response("/individuals", doc)
        schemas.check_response("/individuals", merged)
        datasets = beacon_query(ctx, {"entry_type": "datasets", "request": {}}, meta)
        merged_ds = merge(framework, "datasets", BeaconRequest.parse({}),
                          _view({"node-1": datasets}))  # fmt: skip
        schemas.check_response("/datasets", merged_ds)
        assert merged_ds["response"]["collections"][0]["id"].startswith("node-1:")


def test_no_hits_anywhere(tmp_path: Path) -> None:
    framework = BeaconFramework(BeaconConfig("org.oncofed.hub", "hub", "hub"))
    miss = {"status": 200, "document": {"meta": {"returnedGranularity": "count"},
                                        "responseSummary": {"exists": False,
                                                            "numTotalResults": 0}}}  # fmt: skip
    merged = merge(framework, "individuals",
                   BeaconRequest.parse({"query": {"requestedGranularity": "count"}}),
                   _view({"a": miss, "b": miss}))  # fmt: skip
    assert merged["responseSummary"] == {"exists": False, "numTotalResults": 0}


def test_granularity_is_decided_per_node(ctx: NodeContext) -> None:
    """A node whose visa the passport holds returns records even when another node with a
    hit answers only a count; the merged response says which node gave what."""
    from oncofed.node.beacon import task as beacon_task

    with ctx.store.reading() as con:
        (dataset,) = con.execute("SELECT id FROM dataset LIMIT 1").fetchone()
    meta = TaskMeta("t1", "beacon.query", "alice")
    request = {"query": {"requestParameters": {"geneId": "KRAS"},
                         "requestedGranularity": "record"}}  # fmt: skip
    body = {"entry_type": "g_variants", "request": request, "passport": "visa"}
    beacon_task.TASK_GRANTS.append(lambda c, passport, who: {dataset})  # verified, for the test
    try:
        granted = beacon_query(ctx, body, meta)
    finally:
        beacon_task.TASK_GRANTS.pop()
    plain = beacon_query(ctx, body, meta)
    assert granted["document"]["meta"]["returnedGranularity"] == "record"
    assert plain["document"]["meta"]["returnedGranularity"] != "record"
    framework = BeaconFramework(BeaconConfig("org.oncofed.hub", "hub", "hub"))
    merged = merge(framework, "g_variants", BeaconRequest.parse(request),
                   _view({"node-1": granted, "node-2": plain}))  # fmt: skip
    assert merged["meta"]["returnedGranularity"] == "record"
    assert {rs["info"]["node"] for rs in merged["response"]["resultSets"]} == {"node-1"}
    nodes = {n["node"]: n["returnedGranularity"] for n in merged["info"]["nodes"]}
    assert nodes == {
        "node-1": "record",
        "node-2": plain["document"]["meta"]["returnedGranularity"],
    }
    assert "per node" in merged["info"]["granularity"]
    root = default_root()
    if root is not None:
        BeaconSchemas(root).check_response("/g_variants", merged, max_records=5)
