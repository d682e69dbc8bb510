"""`oncofed catalogue ...`: the public dataset catalogue (Tier 1): refresh it from the
nodes, export it as DCAT-AP, harvest another FAIR Data Point."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from oncofed.cli.common import console, hub_client, hub_errors

catalogue_app = typer.Typer(help="The public dataset catalogue (Tier 1).", no_args_is_help=True)


@catalogue_app.command("refresh")
def catalogue_refresh(
    node: Annotated[list[str] | None, typer.Option(help="node name; all if none")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the nodes")] = 30.0,
    hub: Annotated[str | None, typer.Option(help="hub URL")] = None,
) -> None:
    """Ask the nodes to describe their datasets now (admin)."""
    with hub_errors():
        result = hub_client(hub).refresh_catalogue(node, timeout)
    table = Table("node", "status", "added", "updated", "withdrawn", "error")
    for name, e in result["nodes"].items():
        table.add_row(
            name,
            e["status"],
            *(str(e.get(k, "")) for k in ("added", "updated", "withdrawn")),
            e.get("error") or "",
        )
    console.print(table)


@catalogue_app.command("export")
def catalogue_export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file; stdout if none")
    ] = None,
    format_: Annotated[str, typer.Option("--format", help="ttl, jsonld or json")] = "ttl",
    hub: Annotated[str | None, typer.Option(help="hub URL")] = None,
) -> None:
    """Write the whole catalogue (EUCAIM DCAT-AP) as Turtle, JSON-LD or JSON."""
    with hub_errors():
        text = hub_client(hub).export_catalogue(format_)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"catalogue written to {output}")


@catalogue_app.command("harvest")
def catalogue_harvest(
    url: Annotated[str, typer.Argument(help="a FAIR Data Point (or DCAT catalogue) URL")],
    hub: Annotated[str | None, typer.Option(help="hub URL")] = None,
) -> None:
    """Import another FAIR Data Point's catalogue into this hub's (admin)."""
    with hub_errors():
        result = hub_client(hub).harvest_catalogue(url)
    for origin, counts in result["catalogues"].items():
        console.print(
            f"{origin}: {counts['added']} added, {counts['updated']} updated, "
            f"{counts['removed']} removed"
        )
    for problem in result["problems"]:
        console.print(f"[yellow]warning[/] {problem}")
