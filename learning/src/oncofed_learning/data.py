"""A node's training data: the case list its node wrote, loaded into tensors.

The node (the `oncofed` service, which owns the store) selects the cases: patients of the
granted datasets matching the run's cohort, their images in the content-addressed store, and
the label from the clinical record. It writes them as a JSON case list the worker reads; the
worker opens the image files read-only and never sees identifiers beyond the pseudonyms.

The validation split is fixed per patient: a keyed hash of the run's seed and the patient's
pseudonym, so a patient's slices are all on one side and the split is the same every round.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from oncofed_learning.images import load_slice

VALIDATION_FRACTION = 0.2


@dataclass(frozen=True)
class Case:
    path: str
    patient: str
    label: int


@dataclass
class Split:
    x: torch.Tensor  # N x 1 x H x W
    y: torch.Tensor  # N, float 0/1
    patients: list[str]

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_patients(self) -> int:
        return len(set(self.patients))


def read_cases(path: Path) -> list[Case]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return [Case(str(c["path"]), str(c["patient"]), int(c["label"])) for c in raw["cases"]]


def is_validation(patient: str, seed: int, fraction: float = VALIDATION_FRACTION) -> bool:
    digest = hashlib.sha256(f"{seed}\x1f{patient}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def load(cases: list[Case]) -> Split:
    if not cases:
        return Split(torch.zeros(0, 1, 1, 1), torch.zeros(0), [])
    x = torch.stack([load_slice(Path(c.path)) for c in cases])
    y = torch.tensor([float(c.label) for c in cases])
    return Split(x, y, [c.patient for c in cases])


def split(
    cases: list[Case], seed: int, fraction: float = VALIDATION_FRACTION
) -> tuple[list[Case], list[Case]]:
    """(training, validation) cases, by patient; `fraction` is the node's choice (policy)."""
    held = {c.patient for c in cases if is_validation(c.patient, seed, fraction)}
    return [c for c in cases if c.patient not in held], [c for c in cases if c.patient in held]
