"""The cohort explorer's query: groups of criteria as the page shows them, and the AST.

The page shows "any of these groups, each needing all of its criteria" — EUCAIM's own shape
(OR of ANDs, each criterion wrapped in its own OR), so a query built here runs unchanged on
a EUCAIM search stack and a EUCAIM query opens here as chips. A query of another shape is
still accepted (as JSON in the advanced box); it runs, it just cannot be edited as chips.

The whole state lives in the page address (`?q=<json>`), which is what makes a query
shareable as a link and lets the page work without JavaScript.
"""

from __future__ import annotations

import json
from typing import Any

from oncofed.query import KEYS_BY_NAME, QueryValidationError, parse_query
from oncofed.query.ast import to_json

Criterion = dict[str, Any]
Groups = list[list[Criterion]]

TYPE_WORDS = {
    "EQUALS": "is",
    "NOT_EQUALS": "is not",
    "IN": "is any of",
    "BETWEEN": "between",
    "LOWER_THAN": "below",
    "GREATER_THAN": "above",
    "CONTAINS": "contains",
}


class CohortError(ValueError):
    """A criterion or query the vocabulary refuses; the message names the field."""


def to_ast(groups: Groups) -> dict[str, Any]:
    return {
        "operand": "OR",
        "children": [
            {"operand": "AND", "children": [{"operand": "OR", "children": [c]} for c in g]}
            for g in groups
            if g
        ],
    }


def _leaf(node: Any) -> Criterion | None:
    if isinstance(node, dict) and "key" in node:
        return node
    if (
        isinstance(node, dict)
        and node.get("operand") == "OR"
        and len(node.get("children", [])) == 1
        and isinstance(node["children"][0], dict)
        and "key" in node["children"][0]
    ):
        return dict(node["children"][0])
    return None


def from_ast(ast: dict[str, Any]) -> Groups | None:
    """Groups for an AST of EUCAIM's shape (or a plain AND / single criterion); else None."""
    if _leaf(ast) is not None:
        return [[_leaf(ast)]]  # type: ignore[list-item]
    children = ast.get("children", [])
    if ast.get("operand") == "AND":
        children = [ast]
    elif ast.get("operand") != "OR":
        return None
    groups: Groups = []
    for child in children:
        leaf = _leaf(child)
        if leaf is not None:
            groups.append([leaf])
            continue
        if not isinstance(child, dict) or child.get("operand") != "AND":
            return None
        group = [_leaf(c) for c in child.get("children", [])]
        if any(c is None for c in group):
            return None
        groups.append([c for c in group if c is not None])
    return groups


def parse_state(q: str) -> tuple[dict[str, Any], Groups | None]:
    """The AST from a page address or form (`q`), validated; and its groups when editable."""
    if not q.strip():
        return to_ast([]), []
    try:
        op = parse_query(q)
    except QueryValidationError as exc:
        raise CohortError(f"the query is not valid: {exc}") from exc
    ast = to_json(op)
    return ast, from_ast(json.loads(q) if isinstance(q, str) else q)


def _number(raw: str, field: str, label: str) -> float | int:
    try:
        value = float(raw)
    except ValueError:
        raise CohortError(f"{label}: {field} must be a number, not {raw!r}") from None
    return int(value) if value.is_integer() else value


def criterion_from_form(key: str, type_: str, values: list[str], lo: str, hi: str) -> Criterion:
    """One criterion from the add-criterion form, checked against the vocabulary."""
    spec = KEYS_BY_NAME.get(key)
    if spec is None:
        raise CohortError(f"choose a criterion first (unknown key {key!r})")
    if type_ not in spec.types:
        raise CohortError(
            f"{spec.label}: choose one of {', '.join(sorted(TYPE_WORDS[t] for t in spec.types))}"
        )
    values = [v.strip() for v in values if v.strip()]
    value: Any
    if spec.kind == "number":
        if type_ == "BETWEEN":
            if not lo.strip() and not hi.strip():
                raise CohortError(f"{spec.label}: give a lower bound, an upper bound or both")
            value = {}
            if lo.strip():
                value["min"] = _number(lo, "the lower bound", spec.label)
            if hi.strip():
                value["max"] = _number(hi, "the upper bound", spec.label)
        else:
            raw = lo.strip() or (values[0] if values else "")
            if not raw:
                raise CohortError(f"{spec.label}: give a number")
            value = _number(raw, "the value", spec.label)
    else:
        if len(values) == 1 and "," in values[0] and spec.kind != "code":
            values = [v.strip() for v in values[0].split(",") if v.strip()]
        if not values:
            raise CohortError(f"{spec.label}: choose or type a value")
        if len(values) > 1 and type_ in ("EQUALS", "NOT_EQUALS") and "IN" in spec.types:
            type_ = "IN" if type_ == "EQUALS" else type_
        if type_ == "IN":
            value = values
        elif len(values) > 1:
            raise CohortError(f"{spec.label}: '{TYPE_WORDS[type_]}' takes one value")
        else:
            value = values[0]
    criterion = {"key": key, "type": type_, "value": value}
    try:
        parse_query(to_ast([[criterion]]))
    except QueryValidationError as exc:
        raise CohortError(f"{spec.label}: {exc.problems[0].message}") from exc
    return criterion


def _value_words(spec_key: str, value: Any) -> str:
    spec = KEYS_BY_NAME.get(spec_key)

    def number(v: Any) -> str:
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)

    def one(v: Any) -> str:
        code = spec.code(str(v)) if spec is not None else None
        return code.label if code is not None else number(v)

    if isinstance(value, dict):
        unit = f" {spec.unit}" if spec is not None and spec.unit else ""
        low, high = value.get("min"), value.get("max")
        if low is not None and high is not None:
            return f"{number(low)} and {number(high)}{unit}"
        if low is not None:
            return f"at least {number(low)}{unit}"
        return f"at most {number(high)}{unit}"
    if isinstance(value, list):
        return ", ".join(one(v) for v in value)
    return one(value)


def describe_criterion(c: Criterion) -> str:
    spec = KEYS_BY_NAME.get(str(c.get("key")))
    label = spec.label if spec is not None else str(c.get("key"))
    type_ = str(c.get("type"))
    if type_ == "BETWEEN" and isinstance(c.get("value"), dict) and len(c["value"]) == 1:
        return f"{label} {_value_words(str(c.get('key')), c['value'])}"
    words = TYPE_WORDS.get(type_, type_.lower())
    return f"{label} {words} {_value_words(str(c['key']), c['value'])}"


def describe(groups: Groups | None, ast: dict[str, Any]) -> str:
    """The query in words, for titles of saved queries and access requests."""
    if groups is None:
        return "custom query " + json.dumps(ast)[:200]
    groups = [g for g in groups if g]
    if not groups:
        return "all patients"
    parts = [" and ".join(describe_criterion(c) for c in g) for g in groups]
    return parts[0] if len(parts) == 1 else " or ".join(f"({p})" for p in parts)


def encode(groups: Groups) -> str:
    return json.dumps(to_ast(groups), separators=(",", ":"))
