"""`oncofed nodes` and `oncofed task ...`: the federation's nodes, and tasks sent to them
by kind with each node's status and result (for operators and for kinds without a command
of their own)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from oncofed.cli.common import console, fail, hub_client
from oncofed.client.render import nodes_table, task_table

task_app = typer.Typer(help="Send tasks to nodes and read their results.", no_args_is_help=True)


def nodes(hub: Annotated[str | None, typer.Option(help="hub URL")] = None) -> None:
    """List the federation's nodes (from the hub you are logged in to)."""
    from oncofed.client.hub import HubError

    try:
        console.print(nodes_table(hub_client(hub).nodes()))
    except HubError as exc:
        raise fail(exc.message) from exc


@task_app.command("run")
def task_run(
    kind: Annotated[str, typer.Argument(help="task kind, e.g. node.info")],
    node: Annotated[list[str] | None, typer.Option(help="node name (repeat); all if none")] = None,
    body: Annotated[str, typer.Option(help="task body as JSON")] = "{}",
    wait: Annotated[float, typer.Option(help="seconds to wait for results")] = 30,
    ttl: Annotated[int | None, typer.Option(help="task deadline in seconds")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print raw JSON")] = False,
    hub: Annotated[str | None, typer.Option(help="hub URL")] = None,
) -> None:
    """Send a task to nodes and show each node's status and result."""
    from oncofed.client.hub import HubError

    try:
        parsed = json.loads(body)
    except json.JSONDecodeError as exc:
        raise fail(f"--body is not valid JSON: {exc}") from exc
    try:
        view = hub_client(hub).run(kind, parsed, node or None, ttl, wait)
    except HubError as exc:
        raise fail(exc.message) from exc
    if as_json:
        console.print_json(json.dumps(view))
    else:
        console.print(task_table(view))


@task_app.command("show")
def task_show(task_id: str, hub: Annotated[str | None, typer.Option()] = None) -> None:
    """Show a task's per-node status and results."""
    from oncofed.client.hub import HubError

    try:
        console.print(task_table(hub_client(hub).task(task_id)))
    except HubError as exc:
        raise fail(exc.message) from exc
