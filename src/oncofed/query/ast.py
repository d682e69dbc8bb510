"""The federated search query: the EUCAIM / Samply AST of STANDARDS §2, as pydantic models.

A query is a tree whose inner nodes are :class:`Operation` (``AND`` / ``OR``) and whose
leaves are :class:`Condition`. These models check the *shape* only; what keys and values
mean is checked against the vocabulary by :func:`oncofed.query.validate.parse_query`, which
also returns the canonical form used for caching and noise.

An extra ``system`` field on a condition (sent by the EUCAIM front end) is ignored; an
operation without children matches every patient.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

Operand = Literal["AND", "OR"]
ConditionType = Literal[
    "EQUALS", "NOT_EQUALS", "IN", "BETWEEN", "LOWER_THAN", "GREATER_THAN", "CONTAINS"
]


class Range(BaseModel):
    """A closed interval; either bound may be left out (``{"min": 40}`` is "40 or more")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float | None = None
    max: float | None = None


Scalar = str | int | float | bool
ConditionValue = Scalar | list[Scalar] | Range


class Condition(BaseModel):
    """A leaf: ``{"key", "type", "value"}``; any other field (``system``) is dropped."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    key: str
    type: ConditionType
    value: ConditionValue


def value_list(value: ConditionValue) -> list[Scalar]:
    """A condition value as a list (a range is not a list value and is refused)."""
    if isinstance(value, Range):
        raise TypeError("a range is not a list of values")
    return list(value) if isinstance(value, list) else [value]


def _node_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "operation" if "operand" in value or "children" in value else "condition"
    return "operation" if isinstance(value, Operation) else "condition"


Node = Annotated[
    Annotated["Operation", Tag("operation")] | Annotated[Condition, Tag("condition")],
    Discriminator(_node_kind),
]


class Operation(BaseModel):
    """An inner node: all (``AND``) or any (``OR``) of its children; empty matches all."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    operand: Operand
    children: list[Node] = Field(default_factory=list)


Operation.model_rebuild()

EVERYONE = Operation(operand="AND", children=[])
"""The query without conditions: every patient (a dataset's size is its count)."""


class SearchEnvelope(BaseModel):
    """The transport envelope: ``{"ast": <Operation>, "id": "<uuid>__search__<uuid>"}``."""

    model_config = ConfigDict(extra="ignore")

    ast: dict[str, Any]
    id: str = Field(default="", max_length=200)


def to_json(node: Operation | Condition) -> dict[str, Any]:
    """The JSON form of a node, leaving out unset range bounds."""
    return node.model_dump(mode="json", exclude_none=True)


def canonical_json(op: Operation) -> str:
    """A stable JSON text of an (already canonical) query: the key for caches and noise."""
    return json.dumps(to_json(op), sort_keys=True, separators=(",", ":"))


def query_hash(op: Operation) -> str:
    """SHA-256 of :func:`canonical_json`: one value per meaning, whatever the child order."""
    return hashlib.sha256(canonical_json(op).encode()).hexdigest()
