"""The answer of one provider to a search: EUCAIM's "mediator" response (STANDARDS §2).

Counts that disclosure control withholds are ``null`` with a ``*_below`` field giving the
threshold (``{"subjects_count": null, "subjects_count_below": 10}`` reads "fewer than 10").
Released counts are rounded and carry cached noise (see :mod:`oncofed.privacy`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AgeRange(BaseModel):
    """Age at diagnosis, coarsened: ``min`` inclusive, ``max`` exclusive, both multiples of
    the policy's age band (5 years by default)."""

    min: int
    max: int


class Collection(BaseModel):
    """One dataset's answer. ``extra`` is allowed so that the hub can add ``provider``."""

    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    description: str = ""
    subjects_count: int | None
    subjects_count_below: int | None = None
    studies_count: int | None
    studies_count_below: int | None = None
    age_range: AgeRange | None = None
    gender: list[str] = Field(default_factory=list)
    modalities: list[str] = Field(default_factory=list)
    body_parts: list[str] = Field(default_factory=list)


class MediatorResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    collections: list[Collection] = Field(default_factory=list)
