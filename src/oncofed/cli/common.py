"""What every `oncofed` command module shares: the consoles, one-line errors, the hub client,
and the options and openers of the hub's and node's directories.

Errors go to stderr as one `error:` line that is neither wrapped at the terminal's width
nor read as Rich markup (a message quoting a user's `[text]` must print as written).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from oncofed.client.hub import HubClient

console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` as an error and return the exit to raise (`raise fail(...)`)."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def hub_errors(context: str = "") -> Iterator[None]:
    """The hub's refusals as `fail` lines (its message says what is wrong)."""
    from oncofed.client.hub import HubError

    try:
        yield
    except HubError as exc:
        raise fail(f"{context}{' '.join(exc.message.split())}") from exc


@contextmanager
def refusing(*errors: type[Exception]) -> Iterator[None]:
    """The library's own errors of these types (their message says what to do) as `fail`
    lines."""
    try:
        yield
    except errors as exc:
        raise fail(str(exc)) from exc


def hub_client(hub: str | None) -> HubClient:
    """A client for `hub`, or for the hub `oncofed login` saved when None."""
    from oncofed.client.hub import HubClient, HubError

    try:
        return HubClient.from_saved(hub)
    except HubError as exc:
        raise fail(exc.message) from exc


# -- what the hub and node command groups share ---------------------------------------------

HubDir = Annotated[
    Path, typer.Option("--dir", envvar="ONCOFED_HUB_DIR", help="the hub's directory")
]
NodeDir = Annotated[
    Path, typer.Option("--dir", envvar="ONCOFED_NODE_DIR", help="the node's directory")
]
DEFAULT_HUB_DIR = Path(".oncofed/hub")
DEFAULT_NODE_DIR = Path(".oncofed/node")
HubUrl = Annotated[
    str | None, typer.Option(help="hub URL (default: the one `oncofed login` saved)")
]
AsJson = Annotated[bool, typer.Option("--json", help="print raw JSON")]


def serve(app_: Any, host: str, port: int, log_level: str) -> None:
    """Run a hub or node ASGI app in the foreground until Ctrl-C."""
    import uvicorn

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        app_,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def open_hub(directory: Path) -> Any:
    """The hub's settings and database engine, or a one-line error naming what is wrong."""
    from oncofed.hub.admin import open_hub as _open
    from oncofed.settings import ConfigError

    with refusing(ConfigError):
        return _open(directory)


def node_settings(directory: Path) -> Any:
    """The node's settings, or a one-line error naming what is wrong."""
    from oncofed.settings import ConfigError, load_node_settings

    with refusing(ConfigError):
        return load_node_settings(directory)
