"""The model catalogue: the architectures a node operator installed, each with its recipe.

Weights are data, code is not: a training run names a catalogue entry, never sends code.
The training recipe (optimiser, learning rate, normalisation, activation) is part of the
entry because federated averaging over non-IID sites is fragile: with ReLU, BatchNorm and
Adam at 3e-3, FedAvg over three sites of different lesion prevalence collapsed to a constant
model (AUC 0.5) while pooled training of the same network reached 0.99 (TIER3.md §5).
The recipes here use GroupNorm (BatchNorm's running statistics are per-site and do not
average into anything meaningful), a smooth activation (SiLU) and SGD with momentum at a
moderate rate, and are tested on non-IID sites (`tests/test_training.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

# Images enter every model as one channel of IMAGE_SIZE x IMAGE_SIZE in [0, 1] (images.py).
IMAGE_SIZE = 32


@dataclass(frozen=True)
class Recipe:
    """How a catalogue model is trained locally in one round."""

    optimizer: str  # "sgd" | "adam"
    learning_rate: float
    momentum: float = 0.9
    weight_decay: float = 1e-4


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    version: str
    description: str
    build: Callable[[], nn.Module]
    recipe: Recipe

    @property
    def id(self) -> str:
        """`name@version`: what a node's allow-list names."""
        return f"{self.name}@{self.version}"


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class SmallCnn2d(nn.Module):
    """Three conv blocks and a linear head: ~25k parameters, a round in seconds on a CPU."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for out in (width, width * 2, width * 2):
            layers += [nn.Conv2d(channels, out, 3, padding=1), _norm(out), nn.SiLU()]
            layers.append(nn.MaxPool2d(2))
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = _norm(cout)
        self.act = nn.SiLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class ResNet18_2d(nn.Module):
    """ResNet-18 (He et al. 2016: four stages of two basic blocks, 64-512 channels), with the
    small-image stem (3x3 convolution, no max-pool) and GroupNorm for federated averaging."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), _norm(width), nn.SiLU())
        stages: list[nn.Module] = []
        cin = width
        for i, cout in enumerate((width, width * 2, width * 4, width * 8)):
            stride = 1 if i == 0 else 2
            stages += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(cin, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)).mean(dim=(2, 3))).squeeze(1)


CATALOGUE: dict[str, CatalogueEntry] = {
    e.name: e
    for e in (
        CatalogueEntry(
            "small-cnn-2d",
            "1",
            "3 conv blocks (GroupNorm, SiLU), global pooling, linear head; 1x32x32 input",
            SmallCnn2d,
            Recipe("sgd", 0.01),
        ),
        CatalogueEntry(
            "resnet18-2d",
            "1",
            "ResNet-18 (11.2M parameters), small-image stem, GroupNorm; 1x32x32 input",
            ResNet18_2d,
            Recipe("sgd", 0.02),
        ),
    )
}


class UnknownModel(ValueError):
    pass


def entry(name: str) -> CatalogueEntry:
    """The catalogue entry `name` (or `name@version`); UnknownModel names the choices."""
    base, _, version = name.partition("@")
    found = CATALOGUE.get(base)
    if found is None or (version and version != found.version):
        raise UnknownModel(
            f"no model {name!r} in the catalogue; choose one of "
            + ", ".join(e.id for e in CATALOGUE.values())
        )
    return found


def build(name: str, seed: int = 0) -> nn.Module:
    """A freshly initialised model; the same seed gives the same weights everywhere."""
    torch.manual_seed(seed)
    return entry(name).build()


def optimizer_for(name: str, model: nn.Module, lr: float | None = None) -> torch.optim.Optimizer:
    recipe = entry(name).recipe
    rate = lr if lr is not None else recipe.learning_rate
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=rate, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=rate, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
