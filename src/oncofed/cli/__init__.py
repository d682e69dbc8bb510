"""The `oncofed` command: one Typer sub-app or command per module, each thin (parse, call
the library, print with the shared tables of `oncofed.client.render`).

Modules by who meets them first: `demo` (and the generator's `synth`), `session` (login,
logout), `search`, `beacon`, `request`, `catalogue`, `task` (nodes, tasks by kind), then
the operators' `hub`, `node` with its `ingest` sub-group, and `audit`. A new command group
is a new module here with its Typer app, added to `app` below and to `COMMAND_ORDER`.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from oncofed import __version__
from oncofed.cli.analyse import analyse_app
from oncofed.cli.audit import audit_app
from oncofed.cli.beacon import beacon
from oncofed.cli.catalogue import catalogue_app
from oncofed.cli.common import console
from oncofed.cli.demo import demo
from oncofed.cli.hub import hub_app
from oncofed.cli.learn import learn_app
from oncofed.cli.node import node_app
from oncofed.cli.request import request_app
from oncofed.cli.search import search
from oncofed.cli.session import login, logout
from oncofed.cli.task import nodes, task_app

# `oncofed --help` lists commands in the order a new user meets them: try the demo, log in,
# find and count, ask for access, analyse; then what operators run.
COMMAND_ORDER = (
    "demo",
    "synth",
    "login",
    "logout",
    "search",
    "beacon",
    "catalogue",
    "request",
    "analyse",
    "learn",
    "nodes",
    "task",
    "hub",
    "node",
    "audit",
    "version",
)


class _Ordered(TyperGroup):
    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: rank.get(n, len(rank)))


app = typer.Typer(
    cls=_Ordered,
    help="oncofed: federated infrastructure for cancer research data.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.command()
def version() -> None:
    """Print the oncofed version."""
    console.print(__version__)


def _mount() -> None:
    from oncofed.synth.cli import synth_command

    app.command()(demo)
    app.command("synth", help="Generate a deterministic synthetic federation (files).")(
        synth_command
    )
    app.command()(login)
    app.command()(logout)
    app.command()(search)
    app.command("beacon")(beacon)
    app.add_typer(catalogue_app, name="catalogue")
    app.add_typer(analyse_app, name="analyse")
    app.add_typer(request_app, name="request")
    app.command()(nodes)
    app.add_typer(task_app, name="task")
    app.add_typer(learn_app, name="learn")
    app.add_typer(hub_app, name="hub")
    app.add_typer(node_app, name="node")
    app.add_typer(audit_app, name="audit")


_mount()

__all__ = ["app"]
