"""The learning benchmark's training half (run by `bench/learning.py` in the learning venv).

Same model, recipe, seed and epoch budget three ways: (a) federated with Flower's FedAvg
through `OncofedGrid` (in process: the sites' ClientApps are called one after another on
this machine), (b) centrally on the pooled training cases, (c) each site alone. AUC per
patient on a common held-out test set and on each site's own held-out patients.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord

from oncofed_learning import catalogue, data, metrics, wire
from oncofed_learning.client_app import PolicyRefusal, app
from oncofed_learning.flower_adapter import OncofedGrid, Reply, call_client_app
from oncofed_learning.server_app import RunSpec, train_federated
from oncofed_learning.train import TrainConfig, fit, predict


def _auc(model: torch.nn.Module, split: data.Split) -> float:
    y, p = metrics.per_patient(split.patients, split.y.numpy(), predict(model, split))
    return round(metrics.auc(y, p), 4)


def _model(name: str, arrays: ArrayRecord) -> torch.nn.Module:
    model = catalogue.build(name)
    model.load_state_dict(arrays.to_torch_state_dict())
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", nargs="+", type=Path, required=True)
    parser.add_argument("--site-tests", nargs="+", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--model", default="small-cnn-2d")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.getLogger("flwr").setLevel(logging.WARNING)
    torch.set_num_threads(1)

    n = len(args.sites)
    test = data.load(data.read_cases(args.test))
    site_tests = [data.load(data.read_cases(p)) for p in args.site_tests]
    spec = RunSpec(
        model=args.model,
        rounds=args.rounds,
        batch_size=args.batch_size,
        seed=args.seed,
        min_sites=n,
    )
    local_seconds: list[float] = []
    round_bytes: list[int] = []

    def transport(
        message_type: str,
        group: str,
        arrays: ArrayRecord | None,
        config: dict[str, Any],
        nodes: list[int],
        timeout: float | None,
    ) -> dict[int, Reply]:
        blob = wire.to_bytes(arrays) if arrays is not None else b""
        replies = {}
        for node in nodes:
            started = time.perf_counter()
            reply = call_client_app(
                app,
                message_type,
                wire.from_bytes(blob) if blob else None,
                config,
                {"cases": str(args.sites[node - 1]), "min-count": 5, "min-train-cases": 20},
                refusals=(PolicyRefusal,),
            )
            if reply.arrays is not None:
                back = wire.to_bytes(reply.arrays)
                round_bytes.append(len(blob) + len(back))
            local_seconds.append(time.perf_counter() - started)
            replies[node] = reply
        return replies

    started = time.perf_counter()
    arrays, history = train_federated(OncofedGrid(list(range(1, n + 1)), transport, n, 1), spec, n)
    federated_seconds = time.perf_counter() - started
    federated = _model(args.model, arrays)

    # The local work alone: each site's data loading and training, without Flower.
    site_cases = [data.read_cases(p) for p in args.sites]
    trains = [data.load(data.split(c, args.seed)[0]) for c in site_cases]
    started = time.perf_counter()
    pooled = catalogue.build(args.model, args.seed)
    pooled_split = data.Split(
        torch.cat([t.x for t in trains]),
        torch.cat([t.y for t in trains]),
        [p for t in trains for p in t.patients],
    )
    for r in range(args.rounds):
        fit(pooled, args.model, pooled_split, TrainConfig(batch_size=args.batch_size, seed=r))
    pooled_seconds = time.perf_counter() - started
    singles = []
    for train in trains:
        model = catalogue.build(args.model, args.seed)
        for r in range(args.rounds):
            fit(model, args.model, train, TrainConfig(batch_size=args.batch_size, seed=r))
        singles.append(model)

    rounds = args.rounds
    result = {
        "model": catalogue.entry(args.model).id,
        "parameters": int(sum(p.numel() for p in federated.parameters())),
        "sites": n,
        "rounds": rounds,
        "epochs_per_round": 1,
        "train_cases": [len(t) for t in trains],
        "auc": {
            "federated": _auc(federated, test),
            "pooled": _auc(pooled, test),
            "single_nodes": [_auc(m, test) for m in singles],
            "per_site": {
                "federated": [_auc(federated, s) for s in site_tests],
                "pooled": [_auc(pooled, s) for s in site_tests],
                "single_nodes": [_auc(m, s) for m, s in zip(singles, site_tests, strict=True)],
            },
        },
        "history": {
            "evaluate": {str(k): v for k, v in history.evaluate.items()},
        },
        "seconds": {
            "federated": round(federated_seconds, 2),
            "pooled": round(pooled_seconds, 2),
        },
        "seconds_per_round": {
            "federated": round(federated_seconds / rounds, 3),
            # The same ClientApp work (load, train, evaluate at every site) without the
            # strategy, the grid and the weight serialisation around it.
            "local": round(sum(local_seconds) / rounds, 3),
        },
        "bytes_per_round": int(np.sum(round_bytes) / rounds),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["auc"]))


if __name__ == "__main__":
    main()
