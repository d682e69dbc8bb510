"""Messages between hub and nodes: task kinds and the shape of their bodies.

Hub and node both validate a task body against the model of its kind: the hub to refuse a
malformed task before it is signed and sent, the node because it trusts nothing it did not
check itself. A kind not listed here does not exist; a node additionally runs only the kinds
its policy allows.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


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
