"""The same training run under Flower's own runtime (a SuperLink and SuperNodes).

oncofed's default runs Flower's strategies over `OncofedGrid` (signed tasks through the
hub). This module is the other deployment of the *same* code: `server_app` runs
`train_federated` over the Grid that a SuperLink hands it, and the SuperNodes run
`client_app.app`, the node's ClientApp, unchanged. `APP_DIR` is the Flower App that
`flwr run` submits: its bundle (FAB) is a manifest only, naming these two installed
components, so no Python code travels to the nodes with it.

Run parameters come from the app's `[tool.flwr.app.config]` (overridable with
`flwr run --run-config`) and are bounded by `RunSpec.check` as for any run. With
`result-dir` set, the final weights (`.npz`, `wire` format) and the per-round metrics
(`history.json`) are written there, each by rename so that a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from oncofed_learning import wire
from oncofed_learning.server_app import History, RunSpec, train_federated

APP_DIR = Path(__file__).with_name("flower_fab")
WEIGHTS_FILE = "weights.npz"
HISTORY_FILE = "history.json"

server_app = ServerApp()


def spec_from_run_config(config: dict[str, Any]) -> RunSpec:
    """A RunSpec from Flower's run config (the app's keys, kebab-case as Flower's are)."""
    lr = float(config.get("lr", 0.0))
    return RunSpec(
        model=str(config.get("model", RunSpec.model)),
        strategy=str(config.get("strategy", RunSpec.strategy)),
        rounds=int(config.get("num-server-rounds", RunSpec.rounds)),
        local_epochs=int(config.get("local-epochs", RunSpec.local_epochs)),
        batch_size=int(config.get("batch-size", RunSpec.batch_size)),
        learning_rate=lr if lr > 0 else None,
        seed=int(config.get("seed", RunSpec.seed)),
        min_sites=int(config.get("min-sites", RunSpec.min_sites)),
        round_timeout=float(config.get("round-timeout", RunSpec.round_timeout)),
    )


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    config = dict(context.run_config)
    spec = spec_from_run_config(config)
    # The strategy waits until `min_sites` SuperNodes are connected, then trains on all.
    arrays, history = train_federated(grid, spec, spec.min_sites)
    out = str(config.get("result-dir", ""))
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        _write(folder / HISTORY_FILE, json.dumps(_history(history), sort_keys=True).encode())
        _write(folder / WEIGHTS_FILE, wire.to_bytes(arrays))


def _history(history: History) -> dict[str, Any]:
    return {
        "train": {str(r): m for r, m in history.train.items()},
        "evaluate": {str(r): m for r, m in history.evaluate.items()},
    }
