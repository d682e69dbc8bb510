"""`oncofed login` and `oncofed logout`: a researcher's API token for a hub, kept between
commands in the user's credentials file."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from oncofed.cli.common import console, fail, hub_client


def login(
    hub: Annotated[str, typer.Option(help="the hub's URL", envvar="ONCOFED_HUB")],
    username: Annotated[str, typer.Option(prompt=True)],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
) -> None:
    """Log in to a hub and keep the API token for later commands."""
    from oncofed.client.hub import HubClient, HubError

    client = HubClient(hub)
    try:
        token = client.login(username, password)
    except HubError as exc:
        raise fail(exc.message) from exc
    path = client.save_login(token)
    console.print(f"[green]logged in[/] to {hub} as {username}; token saved in {path}")


def logout(hub: Annotated[str | None, typer.Option(help="hub URL")] = None) -> None:
    """Revoke the saved API token at the hub and forget it here."""
    from oncofed.client.hub import HubError, credentials_path

    client = hub_client(hub)
    try:
        client.logout()
    except HubError as exc:
        raise fail(exc.message) from exc
    path = credentials_path()
    if path.exists():
        saved = json.loads(path.read_text())
        saved.get("hubs", {}).pop(client.url, None)
        path.write_text(json.dumps(saved, indent=2))
    console.print(f"logged out of {client.url}; the token is revoked")
