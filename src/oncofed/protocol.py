"""Messages between hub and nodes: task kinds and the shape of their bodies.

Hub and node both validate a task body against the model of its kind: the hub to refuse a
malformed task before it is signed and sent, the node because it trusts nothing it did not
check itself. A kind not listed here does not exist; a node additionally runs only the kinds
its policy allows.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class TaskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodeInfoBody(TaskBody):
    """`node.info` takes no parameters."""


class SearchBody(TaskBody):
    """`search.count`: a EUCAIM search AST (STANDARDS §2); each node validates it again."""

    ast: dict[str, Any]


class CatalogueDescribeBody(TaskBody):
    """`catalogue.describe` takes no parameters: the node's datasets and their figures."""


CATALOGUE_KIND = "catalogue.describe"

TASK_KINDS: dict[str, type[TaskBody]] = {
    "node.info": NodeInfoBody,
    "search.count": SearchBody,
    CATALOGUE_KIND: CatalogueDescribeBody,
}


class TaskBodyError(ValueError):
    pass


def register_kind(kind: str, body: type[TaskBody]) -> None:
    """Capabilities add their task kinds at import time (search, beacon, analysis)."""
    TASK_KINDS[kind] = body


def validate_body(kind: str, body: Any) -> dict[str, Any]:
    """The body as a normalised dict, or a TaskBodyError naming the field that is wrong."""
    model = TASK_KINDS.get(kind)
    if model is None:
        raise TaskBodyError(
            f"unknown task kind {kind!r}; known kinds: {', '.join(sorted(TASK_KINDS))}"
        )
    if not isinstance(body, dict):
        raise TaskBodyError(f"the body of a {kind} task must be a JSON object")
    try:
        return model.model_validate(body).model_dump(mode="json")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        raise TaskBodyError(f"malformed {kind} task body: {problems}") from exc


# -- results ----------------------------------------------------------------------------------
# The hub checks what a node returns before storing or combining it: a signature proves who
# sent a result, not that it is sane (a compromised node once made a federation total
# -1,000,000). A kind with a result model here has its successful results validated.

MAX_COUNT = 10**9


class AgeRangeResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: int = Field(ge=0, le=200)
    max: int = Field(ge=0, le=250)


class CollectionResult(BaseModel):
    """One dataset's disclosure-controlled answer to a search, as a node sends it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    name: str = Field(max_length=500)
    description: str = Field("", max_length=5000)
    subjects_count: int | None = Field(ge=0, le=MAX_COUNT)
    subjects_count_below: int | None = Field(None, ge=1, le=MAX_COUNT)
    studies_count: int | None = Field(ge=0, le=MAX_COUNT)
    studies_count_below: int | None = Field(None, ge=1, le=MAX_COUNT)
    age_range: AgeRangeResult | None = None
    gender: list[str] = Field(default_factory=list, max_length=20)
    modalities: list[str] = Field(default_factory=list, max_length=200)
    body_parts: list[str] = Field(default_factory=list, max_length=500)


class SearchResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collections: list[CollectionResult] = Field(default_factory=list, max_length=10_000)


RESULT_KINDS: dict[str, type[BaseModel]] = {"search.count": SearchResult}


def validate_result(kind: str, body: Any) -> dict[str, Any]:
    """A successful result's body as its kind's model has it (unknown fields refused), or
    a TaskBodyError naming the field; kinds without a result model pass unchanged."""
    model = RESULT_KINDS.get(kind)
    if model is None:
        if not isinstance(body, dict):
            raise TaskBodyError(f"the result of a {kind} task must be a JSON object")
        return body
    try:
        return model.model_validate(body).model_dump(mode="json", exclude_none=False)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise TaskBodyError(f"{where}: {err['msg']}") from exc


def result_datasets(kind: str, body: dict[str, Any]) -> list[str]:
    """The dataset ids a validated result speaks for (checked against the catalogue)."""
    if kind == "search.count":
        return [str(c["id"]) for c in body.get("collections", [])]
    return []
