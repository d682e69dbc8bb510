"""The Flower contract oncofed relies on (flwr 1.42.*): a stock FedAvg drives two rounds
through `OncofedGrid`, messages built outside Flower's runtime, the node's ClientApp called
on each, weights through the `.npz` wire format. A Flower upgrade that breaks any of this
fails here, not at a hospital."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from oncofed_learning.client_app import PolicyRefusal, app
from oncofed_learning.flower_adapter import OncofedGrid, RoundFailed, Transport, call_client_app
from oncofed_learning.server_app import RunSpec, train_federated


def test_two_rounds_of_fedavg_over_the_oncofed_grid(
    sites: list[Path], in_process: Callable[..., Transport]
) -> None:
    log: list[dict[str, Any]] = []
    spec = RunSpec(rounds=2, min_sites=3, batch_size=16, seed=1)
    grid = OncofedGrid([1, 2, 3], in_process(sites, log, {}), spec.min_sites, run_id=7)
    arrays, history = train_federated(grid, spec, 3)
    assert [(m["type"], m["config"]["server-round"]) for m in log] == [
        ("train", 1),
        ("evaluate", 1),
        ("train", 2),
        ("evaluate", 2),
    ]
    assert all(m["nodes"] == [1, 2, 3] and m["config"]["model"] == "small-cnn-2d@1" for m in log)
    assert sorted(history.train) == [1, 2] and sorted(history.evaluate) == [1, 2]
    assert set(history.evaluate[2]) == {"eval-loss", "eval-auc"}
    assert all(np.isfinite(a).all() for a in arrays.to_numpy_ndarrays())


def test_a_round_below_the_minimum_of_sites_fails(
    sites: list[Path], in_process: Callable[..., Transport]
) -> None:
    spec = RunSpec(rounds=1, min_sites=3, batch_size=16)
    # Every node refuses: batch 16 is below this node's minimum of 32.
    grid = OncofedGrid([1, 2, 3], in_process(sites, [], {"min-batch-size": 32}), 3, run_id=8)
    with pytest.raises(RoundFailed, match="fewer than the run's minimum of 3"):
        train_federated(grid, spec, 3)


def test_node_minimums_refuse_with_a_reason(sites: list[Path]) -> None:
    from oncofed_learning.server_app import initial_arrays

    spec = RunSpec(batch_size=16)
    reply = call_client_app(
        app,
        "train",
        initial_arrays(spec),
        spec.train_config(),
        {"cases": str(sites[0]), "min-train-cases": 500},
        refusals=(PolicyRefusal,),
    )
    assert reply.refused and reply.arrays is None
    assert "fewer than this node's minimum of 500" in str(reply.error)
