"""A node's disclosure policy, read from ``policy.toml`` (safe defaults when absent).

Example ``policy.toml``::

    [disclosure]
    min_count = 10              # counts below this are reported as "fewer than 10"
    rounding = 5                # released counts are multiples of this
    epsilon = 1.0               # Laplace noise per released count (smaller: more noise)
    daily_budget = 20.0         # epsilon a researcher may spend per UTC day
    rate_limit_per_minute = 30  # searches per researcher per minute
    age_band_years = 5          # age range bounds are multiples of this
    max_studies_per_subject = 5 # a subject adds at most this many studies to a count
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class DisclosurePolicy(BaseModel):
    """What a node lets out of a search; every field has a conservative default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_count: int = Field(10, ge=1, description="smallest count ever shown")
    rounding: int = Field(5, ge=1, description="counts are rounded to multiples of this")
    epsilon: float = Field(1.0, gt=0, le=10, description="privacy loss of one noisy count")
    daily_budget: float = Field(20.0, gt=0, description="epsilon per researcher per UTC day")
    rate_limit_per_minute: int = Field(30, ge=1)
    age_band_years: int = Field(5, ge=1, le=50)
    max_studies_per_subject: int = Field(
        5,
        ge=1,
        le=1000,
        description="each subject's studies are counted up to this bound (clipped), which "
        "makes it the studies count's sensitivity",
    )
    strata: bool = Field(True, description="publish age range, gender, modality, body part")


def load_policy(path: Path | None) -> DisclosurePolicy:
    """Read a policy file (top level or a ``[disclosure]`` table); defaults if it is absent."""
    if path is None or not path.exists():
        return DisclosurePolicy()
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    section = data.get("disclosure", data)
    try:
        return DisclosurePolicy.model_validate(section)
    except ValueError as exc:
        raise ValueError(f"invalid disclosure policy in {path}: {exc}") from exc
