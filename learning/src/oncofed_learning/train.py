"""Local training and scoring of a catalogue model: the same code for a node's round, the
pooled baseline and the single-site baselines of the benchmark."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from oncofed_learning.catalogue import optimizer_for
from oncofed_learning.data import Split


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float | None = None  # None: the catalogue recipe's
    proximal_mu: float = 0.0  # FedProx: weight of ||w - w_global||^2 / 2
    seed: int = 0


def fit(model: nn.Module, name: str, data: Split, config: TrainConfig) -> float:
    """Train in place for `config.epochs` epochs; returns the mean training loss."""
    if len(data) == 0:
        raise ValueError("no training cases")
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = optimizer_for(name, model, config.learning_rate)
    anchor = [p.detach().clone() for p in model.parameters()] if config.proximal_mu else []
    model.train()
    total, seen = 0.0, 0
    for _ in range(config.epochs):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), config.batch_size):
            index = order[start : start + config.batch_size]
            logits = model(data.x[index])
            loss = F.binary_cross_entropy_with_logits(logits, data.y[index])
            if anchor:
                prox = sum(
                    ((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor, strict=True)
                )
                loss = loss + config.proximal_mu / 2 * prox
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(index)
            seen += len(index)
    return total / max(seen, 1)


@torch.no_grad()
def predict(model: nn.Module, data: Split, batch_size: int = 256) -> np.ndarray:
    """Probabilities of the positive class, one per case."""
    model.eval()
    if len(data) == 0:
        return np.zeros(0)
    out = [
        torch.sigmoid(model(data.x[i : i + batch_size])) for i in range(0, len(data), batch_size)
    ]
    return torch.cat(out).numpy().astype(np.float64)


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    if len(y) == 0:
        return math.nan
    q = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))
