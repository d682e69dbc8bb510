"""The ClientApp a node runs: Flower's message model, oncofed's data and policy.

`train` and `evaluate` are Flower's standard message types (so any Flower strategy drives
them); `query.validate` is external validation of a finished model. The node's own
configuration arrives as Flower's `node_config` (never from the hub): the case list it
selected (`cases`), its disclosure minimum (`min-count`) and training minimums
(`min-train-cases`, `min-batch-size`), checked here again because a hostile hub could send
any config. Only weights and aggregate metrics go into a reply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from oncofed_learning import catalogue, data, metrics
from oncofed_learning.train import TrainConfig, fit, log_loss, predict

app = ClientApp()


class PolicyRefusal(ValueError):
    """The node's minimums forbid this round; the reply carries the reason, no weights."""


def _config(msg: Message) -> dict[str, Any]:
    return dict(msg.content["config"]) if "config" in msg.content else {}


def _model(msg: Message, config: dict[str, Any]) -> tuple[str, Any]:
    name = str(config["model"])
    model = catalogue.build(name)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    return name, model


def _cases(context: Context) -> list[data.Case]:
    return data.read_cases(Path(str(context.node_config["cases"])))


def _split(context: Context, seed: int) -> tuple[list[data.Case], list[data.Case]]:
    fraction = float(context.node_config.get("validation-fraction", data.VALIDATION_FRACTION))
    return data.split(_cases(context), seed, min(max(fraction, 0.1), 0.5))


def _evaluate(model: Any, split: data.Split) -> dict[str, float]:
    p = predict(model, split)
    y = split.y.numpy()
    labels, scores = metrics.per_patient(split.patients, y, p)
    return {"loss": log_loss(y, p), "auc": metrics.auc(labels, scores)}


@app.train()
def train(msg: Message, context: Context) -> Message:
    config = _config(msg)
    seed = int(config.get("seed", 0))
    batch = int(config.get("batch-size", 32))
    epochs = int(config.get("local-epochs", 1))
    if batch < int(context.node_config.get("min-batch-size", 16)):
        raise PolicyRefusal(f"batch size {batch} is below this node's minimum")
    if epochs < 1:
        raise PolicyRefusal("at least one local epoch")
    name, model = _model(msg, config)
    train_cases, _ = _split(context, seed)
    train_split = data.load(train_cases)
    minimum = int(context.node_config.get("min-train-cases", 50))
    if train_split.n_patients < minimum:
        raise PolicyRefusal(
            f"{train_split.n_patients} training patients, fewer than this node's minimum "
            f"of {minimum}"
        )
    server_round = int(config.get("server-round", 1))
    loss = fit(
        model,
        name,
        train_split,
        TrainConfig(
            epochs=epochs,
            batch_size=batch,
            learning_rate=float(config["lr"]) if "lr" in config else None,
            proximal_mu=float(config.get("proximal-mu", 0.0)),
            seed=seed * 1000 + server_round,
        ),
    )
    record = MetricRecord({"num-examples": len(train_split), "train-loss": loss})
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": record})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    config = _config(msg)
    _, model = _model(msg, config)
    _, valid_cases = _split(context, int(config.get("seed", 0)))
    split = data.load(valid_cases)
    minimum = int(context.node_config.get("min-count", 10))
    if split.n_patients < minimum:
        raise PolicyRefusal(
            f"{split.n_patients} validation patients, fewer than this node's minimum of {minimum}"
        )
    scores = _evaluate(model, split)
    record = MetricRecord(
        {
            "num-examples": len(split),
            "eval-loss": scores["loss"],
            # NaN (one class only) cannot travel in a MetricRecord that aggregates; -1 marks it.
            "eval-auc": -1.0 if np.isnan(scores["auc"]) else scores["auc"],
        }
    )
    return Message(content=RecordDict({"metrics": record}), reply_to=msg)


def validate(
    model: Any, cases: list[data.Case], threshold: float, min_count: int
) -> dict[str, Any]:
    """External validation on every case the node selected (no split: the model was trained
    elsewhere), per patient, under disclosure control."""
    split = data.load(cases)
    p = predict(model, split)
    labels, scores = metrics.per_patient(split.patients, split.y.numpy(), p)
    return metrics.validation_report(labels, scores, threshold=threshold, min_count=min_count)
