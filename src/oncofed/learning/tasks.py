"""The task kinds of federated learning and their bodies (validated at hub and node).

Weights never travel in a task: a task names a blob at the hub by its SHA-256, and carries
only bounded hyper-parameters, the cohort and the researcher's visas for the round.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from oncofed.protocol import TaskBody, register_kind

ROUND_KIND = "fl.round"
VALIDATE_KIND = "fl.validate"
SHA256 = r"^[0-9a-f]{64}$"
# Labels a run may learn, and where a node finds them: (biomarker name, positive value).
LABELS: dict[str, tuple[str, str]] = {"oncofed:lesion": ("LESION", "present")}


class Cohort(TaskBody):
    """Which cases a node trains or validates on."""

    datasets: list[str] = Field(min_length=1, max_length=50)
    label: str = "oncofed:lesion"
    modality: Literal["CT", "MR", "PT", "MG"] = "CT"
    where: dict[str, Any] | None = None  # a search AST (STANDARDS §2), validated at the node


class RoundBody(TaskBody):
    """`fl.round`: one Flower message (train or evaluate) of a training run."""

    run_id: str = Field(max_length=40)
    round: int = Field(ge=0, le=1000)
    message_type: Literal["train", "evaluate"]
    model: str = Field(max_length=60)
    weights_sha256: str = Field(pattern=SHA256)
    local_epochs: int = Field(1, ge=1, le=50)
    batch_size: int = Field(32, ge=1, le=1024)
    learning_rate: float | None = Field(None, gt=0, le=1)
    proximal_mu: float = Field(0.0, ge=0, le=10)
    seed: int = Field(0, ge=0, le=2**31)
    cohort: Cohort
    passport: str = Field("", max_length=100_000)


class ValidateBody(TaskBody):
    """`fl.validate`: external validation of a finished model at the node."""

    run_id: str = Field(max_length=40)
    model_sha256: str = Field(pattern=SHA256)
    threshold: float = Field(0.5, gt=0, lt=1)
    cohort: Cohort
    passport: str = Field("", max_length=100_000)


register_kind(ROUND_KIND, RoundBody)
register_kind(VALIDATE_KIND, ValidateBody)
