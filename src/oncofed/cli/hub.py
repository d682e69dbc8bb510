"""`oncofed hub ...`: create, run and administer a hub (its nodes, accounts and OIDC clients).

The federation operator's commands. They work on the hub's directory directly (no API
token needed), so they run on the hub's host.
"""

from __future__ import annotations

from typing import Annotated

import typer

from oncofed.cli.common import DEFAULT_HUB_DIR, HubDir, console, open_hub, refusing, serve
from oncofed.client.render import nodes_table

hub_app = typer.Typer(help="Run and administer a hub (one per federation).", no_args_is_help=True)
hub_node_app = typer.Typer(help="Invite, list and revoke nodes.", no_args_is_help=True)
hub_user_app = typer.Typer(help="Local accounts of the hub.", no_args_is_help=True)
hub_app.add_typer(hub_node_app, name="node")
hub_app.add_typer(hub_user_app, name="user")


@hub_app.command("init")
def hub_init(
    directory: HubDir = DEFAULT_HUB_DIR,
    name: Annotated[str, typer.Option(help="the federation's name")] = "oncofed hub",
    host: str = "127.0.0.1",
    port: int = 8700,
    database_url: Annotated[
        str,
        typer.Option(help="PostgreSQL URL (postgresql+psycopg://...); default: SQLite in --dir"),
    ] = "",
    public_url: Annotated[str, typer.Option(help="the URL nodes and users reach")] = "",
) -> None:
    """Create a hub: configuration, signing key, database and the admin account."""
    from oncofed.hub.admin import AdminError, init_hub

    with refusing(AdminError):
        result = init_hub(directory, name, host, port, database_url, public_url)
    console.print(f"[green]hub created[/] in {directory}")
    console.print(
        f"  admin account: [bold]admin[/]  password: [bold]{result.admin_password}[/]"
        "  (shown once; store it safely)"
    )
    console.print(f"  admin API token saved to {directory / 'admin.token'}")
    console.print(f"  start it with: oncofed hub serve --dir {directory}")


@hub_app.command("serve")
def hub_serve(
    directory: HubDir = DEFAULT_HUB_DIR,
    host: Annotated[str | None, typer.Option(help="override the configured address")] = None,
    port: Annotated[int | None, typer.Option(help="override the configured port")] = None,
    log_level: str = "info",
) -> None:
    """Run the hub service."""
    from oncofed.hub.app import create_app
    from oncofed.settings import ConfigError, load_hub_settings

    with refusing(ConfigError):
        settings = load_hub_settings(directory)
    settings.host = host or settings.host
    settings.port = port or settings.port
    serve(create_app(settings), settings.host, settings.port, log_level)


@hub_node_app.command("add")
def hub_node_add(
    name: Annotated[str, typer.Argument(help="the node's name, e.g. de-berlin")],
    directory: HubDir = DEFAULT_HUB_DIR,
    hours: Annotated[int, typer.Option(help="how long the token is valid")] = 24,
) -> None:
    """Invite a node: print a one-time enrolment token for it."""
    from oncofed.hub.admin import AdminError, add_node

    settings, engine = open_hub(directory)
    with refusing(AdminError):
        token = add_node(engine, name, hours)
    console.print(f"enrolment token for [bold]{name}[/] (valid {hours} h, usable once):")
    console.print(token, soft_wrap=True)
    console.print(
        f"on the node: oncofed node enrol --hub {settings.url} --token {token}", soft_wrap=True
    )


@hub_node_app.command("list")
def hub_node_list(directory: HubDir = DEFAULT_HUB_DIR) -> None:
    """List the federation's nodes."""
    from oncofed.hub.admin import list_nodes

    _, engine = open_hub(directory)
    console.print(
        nodes_table(
            [
                {
                    "name": n.name,
                    "id": n.id,
                    "status": n.status,
                    "version": n.version,
                    "last_seen_at": n.last_seen_at.isoformat(timespec="seconds")
                    if n.last_seen_at
                    else None,
                }
                for n in list_nodes(engine)
            ]
        )
    )


@hub_node_app.command("revoke")
def hub_node_revoke(name: str, directory: HubDir = DEFAULT_HUB_DIR) -> None:
    """Revoke a node's key: the hub refuses it from now on."""
    from oncofed.hub.admin import AdminError, revoke_node

    _, engine = open_hub(directory)
    with refusing(AdminError):
        revoke_node(engine, name)
    console.print(f"node {name} revoked")


@hub_user_app.command("add")
def hub_user_add(
    username: str,
    role: Annotated[
        list[str], typer.Option(help="admin, researcher, or per node: data_holder:NODE, dac:NODE")
    ],
    directory: HubDir = DEFAULT_HUB_DIR,
) -> None:
    """Create a local account with a generated password."""
    from oncofed.hub.admin import AdminError, add_user

    _, engine = open_hub(directory)
    with refusing(AdminError):
        password = add_user(engine, username, role)
    console.print(f"account {username} created; password: [bold]{password}[/] (shown once)")


@hub_app.command("oidc-client")
def hub_oidc_client(
    client_id: str,
    redirect_uri: Annotated[list[str], typer.Option("--redirect-uri")],
    public: Annotated[bool, typer.Option(help="PKCE-only client, no secret")] = False,
    directory: HubDir = DEFAULT_HUB_DIR,
) -> None:
    """Register a client of the hub's embedded OIDC issuer (its secret is shown once)."""
    from oncofed.hub.admin import AdminError
    from oncofed.hub.identity.issuer import add_oidc_client

    _, engine = open_hub(directory)
    try:
        with refusing(AdminError):
            secret = add_oidc_client(engine, client_id, redirect_uri, confidential=not public)
    finally:
        engine.dispose()
    console.print(
        f"client {client_id} registered" + (f"; secret (shown once): {secret}" if secret else "")
    )


@hub_user_app.command("revoke-tokens")
def hub_user_revoke_tokens(username: str, directory: HubDir = DEFAULT_HUB_DIR) -> None:
    """Revoke every API token of an account (a lost laptop, a departed user)."""
    from oncofed.hub.admin import AdminError, revoke_tokens

    _, engine = open_hub(directory)
    with refusing(AdminError):
        count = revoke_tokens(engine, username)
    console.print(f"{count} token(s) of {username} revoked")
