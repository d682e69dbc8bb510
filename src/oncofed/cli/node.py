"""`oncofed node ...`: create, enrol and run a node, and pull from a PACS.

The hospital data manager's commands, on the node's directory. Loading data is the
`ingest` sub-group (`oncofed.cli.ingest`).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from oncofed.cli.common import (
    DEFAULT_NODE_DIR,
    NodeDir,
    console,
    fail,
    node_settings,
    refusing,
    serve,
)
from oncofed.cli.ingest import ingest_app, through_service

node_app = typer.Typer(help="Run and administer a node (one per provider).", no_args_is_help=True)
node_app.add_typer(ingest_app, name="ingest")


@node_app.command("init")
def node_init(
    name: Annotated[str, typer.Option(help="the node's name as the hub admin invited it")],
    directory: NodeDir = DEFAULT_NODE_DIR,
    provider_id: Annotated[
        str, typer.Option(help="short id prefixing pseudonyms (default: the name)")
    ] = "",
    host: str = "127.0.0.1",
    port: int = 8710,
) -> None:
    """Create a node: configuration, key pair, pseudonym secret, policy and store."""
    from oncofed.node.admin import NodeAdminError, init_node

    with refusing(NodeAdminError):
        settings = init_node(directory, name, provider_id, host, port)
    console.print(f"[green]node {name} created[/] in {directory}")
    console.print(f"  policy (refuses by default): {settings.resolve(settings.policy_file)}")
    console.print(f"  back up {settings.resolve(settings.secret_file)}: pseudonyms depend on it")
    console.print(f"  next: oncofed node enrol --dir {directory} --hub URL --token TOKEN")


@node_app.command("enrol")
def node_enrol(
    hub: Annotated[str, typer.Option(help="the hub's URL")],
    token: Annotated[str, typer.Option(help="the one-time token from the hub admin")],
    directory: NodeDir = DEFAULT_NODE_DIR,
) -> None:
    """Register this node's public key with a hub using a one-time token."""
    from oncofed.node.admin import NodeAdminError, enrol
    from oncofed.settings import ConfigError

    with refusing(NodeAdminError, ConfigError):
        settings = enrol(directory, hub, token)
    console.print(f"[green]enrolled[/] as {settings.node_id}; hub key {settings.hub_key_id} pinned")
    console.print(f"  start it with: oncofed node serve --dir {directory}")


@node_app.command("serve")
def node_serve(
    directory: NodeDir = DEFAULT_NODE_DIR,
    host: Annotated[str | None, typer.Option(help="override the configured address")] = None,
    port: Annotated[int | None, typer.Option(help="override the configured port")] = None,
    log_level: str = "info",
) -> None:
    """Run the node: its local API and the agent that connects out to the hub."""
    from oncofed.node.app import create_app

    settings = node_settings(directory)
    settings.host = host or settings.host
    settings.port = port or settings.port
    serve(create_app(settings), settings.host, settings.port, log_level)


@node_app.command("info")
def node_info(directory: NodeDir = DEFAULT_NODE_DIR) -> None:
    """What this node would tell the hub about itself."""
    from oncofed.node.context import NodeContext
    from oncofed.node.store import StoreBusyError
    from oncofed.node.tasks import node_summary

    settings = node_settings(directory)
    ctx = NodeContext.open(settings)
    try:
        console.print_json(json.dumps(node_summary(ctx)))
    except StoreBusyError as exc:
        import httpx

        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        try:  # the running service holds the store: ask it
            answer = httpx.get(f"http://{host}:{settings.port}/info", timeout=30)
            answer.raise_for_status()
        except httpx.HTTPError:
            raise fail(str(exc)) from exc
        console.print_json(answer.text)
    finally:
        ctx.close()


@node_app.command("pull")
def node_pull(
    directory: NodeDir = DEFAULT_NODE_DIR,
    dicomweb: Annotated[str | None, typer.Option(help="DICOMweb base URL of the PACS")] = None,
    dimse: Annotated[str | None, typer.Option(help="HOST:PORT of the PACS (C-FIND/C-MOVE)")] = None,
    aet: Annotated[str, typer.Option(help="this node's AE title")] = "ONCOFED",
    called_aet: Annotated[str, typer.Option(help="the PACS's AE title")] = "ORTHANC",
    receive_port: Annotated[int, typer.Option(help="port of our C-STORE receiver")] = 0,
    patient_id: Annotated[str | None, typer.Option(help="only this PatientID")] = None,
    study_date: Annotated[str | None, typer.Option(help="YYYYMMDD or YYYYMMDD-YYYYMMDD")] = None,
    modality: Annotated[str | None, typer.Option(help="only studies with this modality")] = None,
    study_uid: Annotated[str | None, typer.Option(help="only this StudyInstanceUID")] = None,
    progress: bool = True,
) -> None:
    """Pull studies from a PACS, de-identify and index them (through the running node
    service when it holds the store)."""
    from oncofed.node.ingest.commands import PullRequest, failed, pull_command
    from oncofed.node.store import StoreBusyError

    node_settings(directory)
    pull = PullRequest(
        dicomweb, dimse, aet, called_aet, receive_port, patient_id, study_date, modality, study_uid
    )
    try:
        report = pull_command(directory, pull, progress)
    except StoreBusyError as exc:
        report = through_service(directory, {"kind": "pull", "paths": ["-"], "pull": pull}, exc)
    except (ValueError, ConnectionError, OSError) as exc:
        raise fail(str(exc)) from exc
    if failed(report):  # the same status whether the node service ran it or not
        raise typer.Exit(1)
