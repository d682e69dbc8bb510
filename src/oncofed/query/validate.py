"""Check a query against the vocabulary and bring it to its canonical form.

The canonical form is what nodes compile, cache and draw noise for, so two queries that mean
the same thing the same way get the same answer:

- single-child operations are replaced by their child, nested operations with the same
  operand are flattened, duplicates are dropped, children are sorted;
- an empty operation is "everything": dropped from an ``AND``, absorbing an ``OR``;
- values are normalised (codes spelled as in the vocabulary, stages and genes upper case,
  integral numbers as integers, ``IN`` lists sorted and de-duplicated, one-element ``IN``
  as ``EQUALS``, an ``EQUALS`` with a range as ``BETWEEN``);
- within an ``OR``, ``EQUALS``/``IN`` conditions on the same key merge into one ``IN``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from oncofed.query.ast import Condition, Operation, Range, Scalar, to_json, value_list
from oncofed.query.vocabulary import KEYS_BY_NAME, KeySpec

MAX_DEPTH = 16
MAX_CONDITIONS = 200
MAX_LIST = 100


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a query: where, which key and value, and why."""

    path: str
    message: str
    key: str | None = None
    value: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "key": self.key, "value": self.value, "message": self.message}


class QueryValidationError(ValueError):
    """The query is malformed or uses a key or value the vocabulary does not know."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))

    def as_dict(self) -> dict[str, Any]:
        return {"error": "invalid_query", "problems": [p.as_dict() for p in self.problems]}


def _fail(path: str, message: str, key: str | None = None, value: Any = None) -> None:
    raise QueryValidationError([Problem(path, message, key, value)])


def parse_query(data: dict[str, Any] | Operation | str) -> Operation:
    """Validate a query (JSON text, dict or model) and return its canonical form."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            _fail("$", f"the query is not valid JSON: {exc.msg}")
    if isinstance(data, dict) and "ast" in data and "operand" not in data:
        data = data["ast"]  # a transport envelope
    if not isinstance(data, Operation):
        if not isinstance(data, dict):
            _fail("$", "the query must be an operation object with 'operand' and 'children'")
        try:
            data = Operation.model_validate(data)
        except ValidationError as exc:
            raise QueryValidationError(
                [
                    Problem(
                        "$." + ".".join(str(x) for x in err["loc"]),
                        f"{err['msg']} (got {err.get('input')!r})"[:300],
                    )
                    for err in exc.errors()[:10]
                ]
            ) from None
    counter = [0]
    result = _canonical(data, "$", 0, counter)
    if isinstance(result, Condition):
        return Operation(operand="AND", children=[result])
    return result


def _canonical(op: Operation, path: str, depth: int, counter: list[int]) -> Operation | Condition:
    if depth > MAX_DEPTH:
        _fail(path, f"the query is nested deeper than {MAX_DEPTH} levels")
    children: list[Operation | Condition] = []
    for i, child in enumerate(op.children):
        cpath = f"{path}.children[{i}]"
        if isinstance(child, Condition):
            counter[0] += 1
            if counter[0] > MAX_CONDITIONS:
                _fail(cpath, f"the query has more than {MAX_CONDITIONS} conditions")
            children.append(normalise_condition(child, cpath))
        else:
            sub = _canonical(child, cpath, depth + 1, counter)
            if isinstance(sub, Operation) and not sub.children:
                if op.operand == "OR":  # OR with "everything" is everything
                    return Operation(operand="AND", children=[])
                continue
            if isinstance(sub, Operation) and sub.operand == op.operand:
                children.extend(sub.children)
            else:
                children.append(sub)
    if op.operand == "OR":
        children = _merge_in(children)
    unique = {json.dumps(to_json(c), sort_keys=True): c for c in children}
    ordered = [unique[k] for k in sorted(unique)]
    if len(ordered) == 1:
        return ordered[0]
    return Operation(operand=op.operand if ordered else "AND", children=ordered)


def _merge_in(children: list[Operation | Condition]) -> list[Operation | Condition]:
    """OR of EQUALS/IN on one (set-valued) key is one IN."""
    merged: dict[str, set[str]] = {}
    rest: list[Operation | Condition] = []
    for child in children:
        if (
            isinstance(child, Condition)
            and child.type in ("EQUALS", "IN")
            and KEYS_BY_NAME[child.key].kind != "number"
        ):
            merged.setdefault(child.key, set()).update(str(v) for v in value_list(child.value))
        else:
            rest.append(child)
    for key, codes in merged.items():
        rest.append(_set_condition(key, "EQUALS", sorted(codes)))
    return rest


def _set_condition(key: str, ctype: str, values: list[str]) -> Condition:
    if ctype == "NOT_EQUALS":
        return Condition(
            key=key, type="NOT_EQUALS", value=values[0] if len(values) == 1 else list(values)
        )
    if len(values) == 1:
        return Condition(key=key, type="EQUALS", value=values[0])
    return Condition(key=key, type="IN", value=list(values))


def normalise_condition(cond: Condition, path: str = "$") -> Condition:
    """Check one condition against the vocabulary and return its canonical form."""
    spec = KEYS_BY_NAME.get(cond.key)
    if spec is None:
        _fail(
            path,
            f"unknown search key {cond.key!r} (value {_show(cond.value)}); the "
            "vocabulary endpoint lists the keys this federation understands",
            cond.key,
            _jsonable(cond.value),
        )
        raise AssertionError  # unreachable, for type checkers
    if cond.type not in spec.types:
        _fail(
            path,
            f"condition type {cond.type} is not allowed for key {spec.key!r} "
            f"({spec.label}) with value {_show(cond.value)}; use one of "
            f"{', '.join(sorted(spec.types))}",
            spec.key,
            _jsonable(cond.value),
        )
    if spec.kind == "number":
        return _normalise_number(spec, cond, path)
    if cond.type == "CONTAINS":
        if not isinstance(cond.value, str) or not cond.value.strip():
            _fail(
                path,
                f"CONTAINS on key {spec.key!r} ({spec.label}) needs a non-empty "
                f"text, got {_show(cond.value)}",
                spec.key,
                _jsonable(cond.value),
            )
        text = str(cond.value).strip()
        return Condition(
            key=spec.key,
            type="CONTAINS",
            value=text.lower() if spec.case == "lower" else text.upper(),
        )
    raw = [] if isinstance(cond.value, Range) else value_list(cond.value)
    if not raw:
        _fail(
            path,
            f"key {spec.key!r} ({spec.label}) needs a value or a list of values, "
            f"got {_show(cond.value)}",
            spec.key,
            _jsonable(cond.value),
        )
    if len(raw) > MAX_LIST:
        _fail(path, f"key {spec.key!r} has more than {MAX_LIST} values", spec.key)
    values = sorted({_normalise_value(spec, v, path) for v in raw})
    ctype = "NOT_EQUALS" if cond.type == "NOT_EQUALS" else "EQUALS"
    return _set_condition(spec.key, ctype, values)


_VARIANT = re.compile(
    r"^(?:(?P<assembly>GRCh3[78]|hg19|hg38)[:\-])?(?:chr)?(?P<chrom>[0-9]{1,2}|X|Y|MT|M)"
    r"[:\-](?P<pos>[0-9]{1,10})[:\-](?P<ref>[ACGTN]+)[:\-](?P<alt>[ACGTN]+)$",
    re.IGNORECASE,
)
_ASSEMBLIES = {"grch37": "GRCh37", "hg19": "GRCh37", "grch38": "GRCh38", "hg38": "GRCh38"}
_HIERARCHICAL = {
    "/": re.compile(r"^[0-9]{4}(/[0-9])?$"),
    ".": re.compile(r"^C[0-9]{2}(\.[0-9])?$"),
}
_GENE = re.compile(r"^[A-Z0-9][A-Z0-9\-.]{0,29}$")


def _normalise_value(spec: KeySpec, value: Scalar, path: str) -> str:
    if not isinstance(value, str) or isinstance(value, bool):
        _fail(
            path,
            f"key {spec.key!r} ({spec.label}) takes text values, got {_show(value)}",
            spec.key,
            value,
        )
    text = str(value).strip()
    if spec.kind == "code":
        code = spec.code(text)
        if code is None:
            allowed = ", ".join(f"{c.code} ({c.label})" for c in spec.codes)
            _fail(
                path,
                f"unknown value {text!r} for key {spec.key!r} ({spec.label}); allowed: {allowed}",
                spec.key,
                value,
            )
            raise AssertionError
        return code.code
    if spec.kind == "stage":
        up = text.upper()
        if up not in spec.values:
            _fail(
                path,
                f"unknown value {text!r} for key {spec.key!r} ({spec.label}); "
                f"allowed: {', '.join(spec.values)}",
                spec.key,
                value,
            )
        return up
    if spec.kind == "hierarchical":
        up = text.upper()
        if not _HIERARCHICAL[spec.separator].match(up):
            _fail(
                path,
                f"value {text!r} for key {spec.key!r} ({spec.label}) is not a valid "
                f"code; examples: {', '.join(spec.examples)}",
                spec.key,
                value,
            )
        return up
    if spec.kind == "variant":
        m = _VARIANT.match(text)
        if m is None:
            _fail(
                path,
                f"value {text!r} for key {spec.key!r} ({spec.label}) is not "
                "[assembly:]chrom:pos:ref:alt, e.g. chr7:140753336:A:T",
                spec.key,
                value,
            )
            raise AssertionError
        chrom = m["chrom"].upper()
        chrom = "M" if chrom == "MT" else chrom
        body = f"chr{chrom}:{int(m['pos'])}:{m['ref'].upper()}:{m['alt'].upper()}"
        assembly = m["assembly"]
        return f"{_ASSEMBLIES[assembly.lower()]}:{body}" if assembly else body
    # free text (gene symbols, agents)
    norm = text.lower() if spec.case == "lower" else text.upper()
    if not norm or len(norm) > 100 or (spec.key == "oncofed:gene" and not _GENE.match(norm)):
        _fail(
            path,
            f"value {text!r} for key {spec.key!r} ({spec.label}) is not valid",
            spec.key,
            value,
        )
    return norm


def _number(spec: KeySpec, value: Any, path: str, raw: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        _fail(
            path,
            f"key {spec.key!r} ({spec.label}) takes a number, got {_show(raw)}",
            spec.key,
            _jsonable(raw),
        )
    try:
        number = float(value)
    except ValueError:
        _fail(
            path,
            f"key {spec.key!r} ({spec.label}) takes a number, got {_show(raw)}",
            spec.key,
            _jsonable(raw),
        )
        raise AssertionError from None
    if not math.isfinite(number) or abs(number) > 1e12:
        _fail(
            path,
            f"key {spec.key!r} ({spec.label}): {_show(raw)} is out of range",
            spec.key,
            _jsonable(raw),
        )
    return int(number) if number.is_integer() else number


def _normalise_number(spec: KeySpec, cond: Condition, path: str) -> Condition:
    value = cond.value
    if isinstance(value, dict):
        value = Range.model_validate(value)
    if isinstance(value, Range) and cond.type in ("LOWER_THAN", "GREATER_THAN"):
        # Samply Lens sends its range widget as LOWER_THAN {"max": n} / GREATER_THAN
        # {"min": n}: the bound the comparison names, the other one ignored.
        bound = value.max if cond.type == "LOWER_THAN" else value.min
        if bound is None:
            side = "max" if cond.type == "LOWER_THAN" else "min"
            _fail(
                path,
                f"{cond.type} on key {spec.key!r} ({spec.label}) with a range needs its "
                f"{side!r}, got {_show(value)}",
                spec.key,
                _jsonable(value),
            )
        return Condition(key=spec.key, type=cond.type, value=_number(spec, bound, path, value))
    if isinstance(value, Range) or cond.type == "BETWEEN":
        if not isinstance(value, Range):
            _fail(
                path,
                f"BETWEEN on key {spec.key!r} ({spec.label}) needs "
                f'{{"min": .., "max": ..}}, got {_show(value)}',
                spec.key,
                _jsonable(value),
            )
            raise AssertionError
        if cond.type not in ("BETWEEN", "EQUALS"):
            _fail(
                path,
                f"{cond.type} on key {spec.key!r} ({spec.label}) takes a number, got "
                f"{_show(value)}",
                spec.key,
                _jsonable(value),
            )
        lo = None if value.min is None else _number(spec, value.min, path, cond.value)
        hi = None if value.max is None else _number(spec, value.max, path, cond.value)
        if lo is None and hi is None:
            _fail(
                path,
                f"BETWEEN on key {spec.key!r} ({spec.label}) needs min or max",
                spec.key,
                _jsonable(value),
            )
        if lo is not None and hi is not None and lo > hi:
            _fail(
                path,
                f"key {spec.key!r} ({spec.label}): min {lo} is above max {hi} in {_show(value)}",
                spec.key,
                _jsonable(value),
            )
        return Condition(key=spec.key, type="BETWEEN", value=Range(min=lo, max=hi))
    if isinstance(value, list):
        _fail(
            path,
            f"{cond.type} on key {spec.key!r} ({spec.label}) takes one number, got {_show(value)}",
            spec.key,
            _jsonable(value),
        )
    return Condition(key=spec.key, type=cond.type, value=_number(spec, value, path, value))


def _jsonable(value: Any) -> Any:
    return value.model_dump(exclude_none=True) if isinstance(value, Range) else value


def _show(value: Any) -> str:
    return json.dumps(_jsonable(value), default=str)[:200]
