"""The server side of a training run: a Flower strategy over a Grid.

`train_federated` runs the same way over any Grid: oncofed's (`OncofedGrid`, signed tasks
through the hub) or Flower's own (a SuperLink, in `flower_app.py`). The run's parameters are
bounded here and again at each node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, FedProx, Result

from oncofed_learning import catalogue

STRATEGIES = ("fedavg", "fedprox")
MAX_ROUNDS = 200


@dataclass(frozen=True)
class RunSpec:
    model: str = "small-cnn-2d"
    strategy: str = "fedavg"
    rounds: int = 3
    local_epochs: int = 1
    batch_size: int = 32
    learning_rate: float | None = None
    proximal_mu: float = 0.01
    seed: int = 0
    min_sites: int = 1
    round_timeout: float = 600.0

    def check(self) -> None:
        catalogue.entry(self.model)
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}")
        if not 1 <= self.rounds <= MAX_ROUNDS:
            raise ValueError(f"rounds must be 1..{MAX_ROUNDS}")
        if self.local_epochs < 1 or self.batch_size < 1 or self.min_sites < 1:
            raise ValueError("local epochs, batch size and minimum sites must be at least 1")

    def train_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "model": catalogue.entry(self.model).id,
            "local-epochs": self.local_epochs,
            "batch-size": self.batch_size,
            "seed": self.seed,
        }
        if self.learning_rate is not None:
            config["lr"] = self.learning_rate
        return config


@dataclass
class History:
    """Per round: the strategy's aggregates (weighted means over sites)."""

    train: dict[int, dict[str, Any]] = field(default_factory=dict)
    evaluate: dict[int, dict[str, Any]] = field(default_factory=dict)


def strategy_for(spec: RunSpec, n_sites: int) -> FedAvg:
    common: dict[str, Any] = {
        "fraction_train": 1.0,
        "fraction_evaluate": 1.0,
        "min_train_nodes": spec.min_sites,
        "min_evaluate_nodes": spec.min_sites,
        "min_available_nodes": min(spec.min_sites, n_sites),
    }
    if spec.strategy == "fedprox":
        return FedProx(proximal_mu=spec.proximal_mu, **common)
    return FedAvg(**common)


def initial_arrays(spec: RunSpec) -> ArrayRecord:
    return ArrayRecord(catalogue.build(spec.model, spec.seed).state_dict())


def train_federated(
    grid: Grid, spec: RunSpec, n_sites: int, arrays: ArrayRecord | None = None
) -> tuple[ArrayRecord, History]:
    spec.check()
    strategy = strategy_for(spec, n_sites)
    config = spec.train_config()
    result: Result = strategy.start(
        grid=grid,
        initial_arrays=arrays if arrays is not None else initial_arrays(spec),
        num_rounds=spec.rounds,
        timeout=spec.round_timeout,
        train_config=ConfigRecord(config),
        evaluate_config=ConfigRecord(config),
    )
    history = History(
        train={r: _plain(m) for r, m in result.train_metrics_clientapp.items()},
        evaluate={r: _plain(m) for r, m in result.evaluate_metrics_clientapp.items()},
    )
    return result.arrays, history


def _plain(record: MetricRecord) -> dict[str, Any]:
    return {str(k): v for k, v in record.items()}
