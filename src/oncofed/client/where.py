"""Search criteria written as people say them: ``diagnosis=lung cancer``, ``modality=CT``,
``gene=KRAS``, ``age=50..70``, turned into the EUCAIM AST the hub expects (STANDARDS §2).

Keys and values are matched against the hub's published vocabulary (``/api/vocabulary``),
so a criterion names a key by its code (``SNOMEDCT439401001``), its label (``Diagnosis``),
a word of its label (``modality``) or its short name (``gene`` for ``oncofed:gene``), and a
coded value by its code or its label. The CLI's ``--where`` and ``HubClient.search(where=)``
both come here, so that they read a criterion the same way and fail with the same advice.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

VOCABULARY_HINT = "run `oncofed search --vocabulary` to list every key and value"


class WhereError(ValueError):
    """A criterion that cannot be read: the message names it and what to write instead."""


def _norm(text: str) -> str:
    return re.sub(r"[\s_-]+", " ", text.strip().lower())


def _names(key: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The names a key answers to: exact ones (code, label, short name), then label words."""
    code = str(key["key"])
    exact = {_norm(code), _norm(str(key.get("label", "")))}
    short = code.split(":", 1)[1] if code.startswith("oncofed:") else ""
    if short:
        exact.add(_norm(short))
        if short.startswith("marker:"):
            exact.add(_norm(short.split(":", 1)[1]))
    words = {w for w in re.split(r"[^a-z0-9]+", _norm(str(key.get("label", "")))) if len(w) > 2}
    return exact, words


def find_key(vocabulary: dict[str, Any], name: str) -> dict[str, Any]:
    """The vocabulary entry ``name`` denotes, or a WhereError saying which ones it could be."""
    keys: list[dict[str, Any]] = list(vocabulary.get("keys", []))
    wanted = _norm(name)
    exact = [k for k in keys if wanted in _names(k)[0]]
    if len(exact) == 1:
        return exact[0]
    partial = exact or [k for k in keys if wanted in _names(k)[1]]
    if len(partial) == 1:
        return partial[0]
    if partial:
        options = ", ".join(f"{k['key']} ({k['label']})" for k in partial)
        raise WhereError(f"key {name!r} could mean {options}; write one of those")
    every = {n: k for k in keys for n in _names(k)[0]}
    close = difflib.get_close_matches(wanted, list(every), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(every[c]['label']) for c in close)}?" if close else ""
    raise WhereError(f"unknown search key {name!r}.{hint} ({VOCABULARY_HINT})")


def _code(key: dict[str, Any], value: str) -> list[str]:
    """The codes a value names (a label shared by several codes names them all)."""
    values: list[dict[str, str]] = list(key.get("values", []))
    wanted = _norm(value)
    by_code = [v["code"] for v in values if _norm(v["code"]) == wanted]
    if by_code:
        return by_code
    by_label = [v["code"] for v in values if _norm(v["label"]) == wanted]
    if by_label:
        return by_label
    labels = [v["label"] for v in values]
    close = difflib.get_close_matches(value.strip().lower(), [x.lower() for x in labels], n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(labels[:12]) + (" ..." if len(labels) > 12 else "")
    raise WhereError(
        f"{value!r} is not a value of {key['label']} ({key['key']}).{hint} "
        f"Allowed: {shown} ({VOCABULARY_HINT})"
    )


def _number(text: str, item: str) -> float | int:
    try:
        number = float(text)
    except ValueError as exc:
        raise WhereError(f"{item!r}: {text!r} is not a number") from exc
    return int(number) if number.is_integer() else number


def condition(vocabulary: dict[str, Any], item: str) -> dict[str, Any]:
    """One ``KEY=VALUE`` (``KEY!=VALUE`` for "has none") as an AST condition.

    ``a..b`` is a range and ``a,b`` a list (any of them); numbers also take ``KEY<a`` and
    ``KEY>a``."""
    match = re.fullmatch(r"\s*([^=!<>]+?)\s*(!=|=|<|>)\s*(.+?)\s*", item)
    if not match:
        raise WhereError(
            f'{item!r}: write KEY=VALUE, e.g. "diagnosis=lung cancer" or RID10311=RID10321 '
            f"({VOCABULARY_HINT})"
        )
    name, op, value = match.groups()
    key = find_key(vocabulary, name)
    if op in "<>":
        if key.get("value_type") != "number":
            raise WhereError(f"{item!r}: {key['label']} is not a number; write KEY=VALUE")
        value, op = op + value, "="
    negate = op == "!="
    types = set(key.get("types", []))
    if key.get("value_type") == "number":
        if ".." in value:
            low, _, high = value.partition("..")
            out: dict[str, Any] = {
                "type": "BETWEEN",
                "value": {"min": _number(low, item), "max": _number(high, item)},
            }
        elif value[:1] in "<>":
            out = {
                "type": "LOWER_THAN" if value[0] == "<" else "GREATER_THAN",
                "value": _number(value[1:], item),
            }
        else:
            out = {"type": "EQUALS", "value": _number(value, item)}
        if negate:
            if out["type"] != "EQUALS":
                raise WhereError(f"{item!r}: != takes a single value")
            out["type"] = "NOT_EQUALS"
        return {"key": key["key"], **out}
    parts = [p.strip() for p in value.split(",") if p.strip()]
    codes = [c for p in parts for c in _code(key, p)] if key.get("values") else parts
    codes = list(dict.fromkeys(codes))
    if negate:
        if len(codes) != 1:
            raise WhereError(f"{item!r}: != takes a single value")
        return {"key": key["key"], "type": "NOT_EQUALS", "value": codes[0]}
    if len(codes) == 1:
        return {"key": key["key"], "type": "EQUALS", "value": codes[0]}
    if "IN" not in types:
        raise WhereError(f"{item!r}: {key['label']} takes one value at a time")
    return {"key": key["key"], "type": "IN", "value": codes}


def criteria(vocabulary: dict[str, Any], where: str | Iterable[str]) -> dict[str, Any]:
    """Criteria AND-ed into one AST (a single string is one criterion)."""
    items = [where] if isinstance(where, str) else list(where)
    return {"operand": "AND", "children": [condition(vocabulary, i) for i in items]}


def as_tree(query: dict[str, Any]) -> dict[str, Any]:
    """A single condition (``{"key", "type", "value"}``) as the one-child tree the hub takes;
    a tree as it is."""
    if "operand" not in query and "key" in query:
        return {"operand": "AND", "children": [query]}
    return query
