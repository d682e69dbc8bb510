"""`oncofed search`: count matching patients across the federation (Tier 2), or list the
search vocabulary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from oncofed.cli.common import console, fail, hub_client


def _criteria(where: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs as an AND of conditions; `a..b` is a range, `a,b` a list."""
    children: list[dict[str, Any]] = []
    for item in where:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise fail(f"--where {item!r}: write KEY=VALUE (e.g. RID10311=RID10312)")
        condition: dict[str, Any]
        if ".." in value:
            low, _, high = value.partition("..")
            try:
                condition = {
                    "key": key,
                    "type": "BETWEEN",
                    "value": {"min": float(low), "max": float(high)},
                }
            except ValueError as exc:
                raise fail(f"--where {item!r}: a range is NUMBER..NUMBER") from exc
        elif "," in value:
            condition = {"key": key, "type": "IN", "value": value.split(",")}
        else:
            condition = {"key": key, "type": "EQUALS", "value": value}
        children.append(condition)
    return {"operand": "AND", "children": children}


def print_search(result: dict[str, Any]) -> None:
    from oncofed.client.render import search_table

    console.print(search_table(result))


def search(
    where: Annotated[
        list[str] | None,
        typer.Option(
            help="criterion KEY=VALUE (repeat; AND-ed); VALUE a..b is a range, a,b a list"
        ),
    ] = None,
    ast: Annotated[str | None, typer.Option(help="a full EUCAIM AST as JSON, or @FILE")] = None,
    node: Annotated[list[str] | None, typer.Option(help="node name (repeat); all if none")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the nodes")] = 10,
    show_vocabulary: Annotated[
        bool, typer.Option("--vocabulary", help="list the search keys and values, then exit")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print raw JSON")] = False,
    hub: Annotated[str | None, typer.Option(help="hub URL")] = None,
) -> None:
    """Count matching patients across the federation, per provider and dataset."""
    from oncofed.client.hub import HubError

    client = hub_client(hub)
    try:
        if show_vocabulary:
            vocab = client.vocabulary()
            table = Table("key", "label", "type", "values")
            for k in vocab.get("keys", []):
                values = ", ".join(
                    f"{v['code']} ({v['label']})" if isinstance(v, dict) else str(v)
                    for v in k.get("values", [])
                )
                table.add_row(
                    k["key"],
                    k["label"],
                    k.get("value_type", ""),
                    values or k.get("unit", "") or k.get("description", ""),
                )
            console.print(table)
            return
        if ast:
            text = Path(ast[1:]).read_text() if ast.startswith("@") else ast
            try:
                query = json.loads(text)
            except json.JSONDecodeError as exc:
                raise fail(f"--ast is not valid JSON: {exc}") from exc
        else:
            query = _criteria(where or [])
        result = client.search(query, node or None, timeout)
    except HubError as exc:
        raise fail(exc.message) from exc
    except OSError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        console.print_json(json.dumps(result))
    else:
        print_search(result)
