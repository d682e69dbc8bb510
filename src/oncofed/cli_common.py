"""What every `oncofed` command module shares: the consoles, one-line errors, the hub client.

Errors go to stderr as one `error:` line that is neither wrapped at the terminal's width
nor read as Rich markup (a message quoting a user's `[text]` must print as written).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

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


def hub_client(hub: str | None) -> HubClient:
    """A client for `hub`, or for the hub `oncofed login` saved when None."""
    from oncofed.client.hub import HubClient, HubError

    try:
        return HubClient.from_saved(hub)
    except HubError as exc:
        raise fail(exc.message) from exc
