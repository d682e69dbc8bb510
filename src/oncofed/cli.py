"""The `oncofed` command. Thin: it parses, calls the library, and prints."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from oncofed import __version__
from oncofed.cli_common import console, err, fail, hub_client, hub_errors
from oncofed.cli_requests import beacon, request_app

app = typer.Typer(
    help="oncofed: federated infrastructure for cancer research data.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
hub_app = typer.Typer(help="Run and administer a hub (one per federation).", no_args_is_help=True)
hub_node_app = typer.Typer(help="Invite, list and revoke nodes.", no_args_is_help=True)
hub_user_app = typer.Typer(help="Local accounts of the hub.", no_args_is_help=True)
node_app = typer.Typer(help="Run and administer a node (one per provider).", no_args_is_help=True)
task_app = typer.Typer(help="Send tasks to nodes and read their results.", no_args_is_help=True)
ingest_app = typer.Typer(help="Load local data into the node's store.", no_args_is_help=True)
node_app.add_typer(ingest_app, name="ingest")
audit_app = typer.Typer(
    help="Verify and export the tamper-evident audit logs.", no_args_is_help=True
)
app.add_typer(hub_app, name="hub")
hub_app.add_typer(hub_node_app, name="node")
hub_app.add_typer(hub_user_app, name="user")
app.add_typer(node_app, name="node")
app.add_typer(task_app, name="task")
app.add_typer(audit_app, name="audit")
app.add_typer(request_app, name="request")
app.command("beacon")(beacon)


def _mount_synth() -> None:
    from oncofed.synth.cli import synth_command

    app.command("synth", help="Generate a deterministic synthetic federation (files).")(
        synth_command
    )


_mount_synth()

HubDir = Annotated[
    Path, typer.Option("--dir", envvar="ONCOFED_HUB_DIR", help="the hub's directory")
]
NodeDir = Annotated[
    Path, typer.Option("--dir", envvar="ONCOFED_NODE_DIR", help="the node's directory")
]
DEFAULT_HUB_DIR = Path(".oncofed/hub")
DEFAULT_NODE_DIR = Path(".oncofed/node")


def _serve(app_: Any, host: str, port: int, log_level: str) -> None:
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


@app.command()
def version() -> None:
    """Print the oncofed version."""
    console.print(__version__)


# -- hub ------------------------------------------------------------------------------------


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

    try:
        result = init_hub(directory, name, host, port, database_url, public_url)
    except AdminError as exc:
        raise fail(str(exc)) from exc
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

    try:
        settings = load_hub_settings(directory)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    settings.host = host or settings.host
    settings.port = port or settings.port
    _serve(create_app(settings), settings.host, settings.port, log_level)


def _open_hub(directory: Path) -> Any:
    from oncofed.hub.admin import open_hub
    from oncofed.settings import ConfigError

    try:
        return open_hub(directory)
    except ConfigError as exc:
        raise fail(str(exc)) from exc


@hub_node_app.command("add")
def hub_node_add(
    name: Annotated[str, typer.Argument(help="the node's name, e.g. de-berlin")],
    directory: HubDir = DEFAULT_HUB_DIR,
    hours: Annotated[int, typer.Option(help="how long the token is valid")] = 24,
) -> None:
    """Invite a node: print a one-time enrolment token for it."""
    from oncofed.hub.admin import AdminError, add_node

    settings, engine = _open_hub(directory)
    try:
        token = add_node(engine, name, hours)
    except AdminError as exc:
        raise fail(str(exc)) from exc
    console.print(f"enrolment token for [bold]{name}[/] (valid {hours} h, usable once):")
    console.print(token, soft_wrap=True)
    console.print(
        f"on the node: oncofed node enrol --hub {settings.url} --token {token}", soft_wrap=True
    )


@hub_node_app.command("list")
def hub_node_list(directory: HubDir = DEFAULT_HUB_DIR) -> None:
    """List the federation's nodes."""
    from oncofed.hub.admin import list_nodes

    _, engine = _open_hub(directory)
    _print_nodes(
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


@hub_node_app.command("revoke")
def hub_node_revoke(name: str, directory: HubDir = DEFAULT_HUB_DIR) -> None:
    """Revoke a node's key: the hub refuses it from now on."""
    from oncofed.hub.admin import AdminError, revoke_node

    _, engine = _open_hub(directory)
    try:
        revoke_node(engine, name)
    except AdminError as exc:
        raise fail(str(exc)) from exc
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

    _, engine = _open_hub(directory)
    try:
        password = add_user(engine, username, role)
    except AdminError as exc:
        raise fail(str(exc)) from exc
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

    _, engine = _open_hub(directory)
    try:
        secret = add_oidc_client(engine, client_id, redirect_uri, confidential=not public)
    except AdminError as exc:
        raise fail(str(exc)) from exc
    finally:
        engine.dispose()
    console.print(
        f"client {client_id} registered" + (f"; secret (shown once): {secret}" if secret else "")
    )


# -- node -----------------------------------------------------------------------------------


def _node_settings(directory: Path) -> Any:
    from oncofed.settings import ConfigError, load_node_settings

    try:
        return load_node_settings(directory)
    except ConfigError as exc:
        raise fail(str(exc)) from exc


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

    try:
        settings = init_node(directory, name, provider_id, host, port)
    except NodeAdminError as exc:
        raise fail(str(exc)) from exc
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

    try:
        settings = enrol(directory, hub, token)
    except (NodeAdminError, ConfigError) as exc:
        raise fail(str(exc)) from exc
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

    settings = _node_settings(directory)
    settings.host = host or settings.host
    settings.port = port or settings.port
    _serve(create_app(settings), settings.host, settings.port, log_level)


@node_app.command("info")
def node_info(directory: NodeDir = DEFAULT_NODE_DIR) -> None:
    """What this node would tell the hub about itself."""
    from oncofed.node.context import NodeContext
    from oncofed.node.store import StoreBusyError
    from oncofed.node.tasks import node_summary

    settings = _node_settings(directory)
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


def _after_ingest(directory: Path) -> None:
    """Ask the hub to refresh this node's catalogue entry (best effort)."""
    from oncofed.node.publish import request_refresh
    from oncofed.security.keys import SigningKey

    settings = _node_settings(directory)
    if settings.enrolled and not request_refresh(
        settings, SigningKey.load(settings.resolve(settings.key_file))
    ):
        err.print(
            "[yellow]note:[/] the hub could not be told to refresh the catalogue now; "
            "its schedule will catch up"
        )


def _ingest_inputs(directory: Path, paths: list[Path]) -> None:
    """Refuse before any work: a node directory that is not one, or inputs that are not there."""
    _node_settings(directory)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise fail(f"no such file or folder: {', '.join(missing)}")


@ingest_app.command("images")
def ingest_images(
    paths: Annotated[list[Path], typer.Argument(help="DICOM folders, files or zip archives")],
    directory: NodeDir = DEFAULT_NODE_DIR,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """De-identify DICOM files, store them and index them (idempotent, resumable)."""
    from oncofed.node.ingest.commands import images_command
    from oncofed.node.store import StoreBusyError

    _ingest_inputs(directory, paths)
    try:
        images_command(paths, directory, progress=progress)
    except StoreBusyError as exc:
        report = _through_service(directory, {"kind": "images", "paths": paths}, exc)
        if report.rejections:
            raise typer.Exit(1) from None
        return
    _after_ingest(directory)


def _through_service(directory: Path, job: dict[str, Any], busy: Exception) -> Any:
    """The store is held by the running node: hand the ingest to it and wait for its report.

    Uses the node's local admin API (loopback, `keys/admin.token`); without a running
    service that answers, the original "store is busy" error stands.
    """
    from dataclasses import asdict

    import httpx

    from oncofed.node.ingest.jobs import IngestJob, admin_token, report_from_json

    settings = _node_settings(directory)
    token = admin_token(settings)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    base = f"http://{host}:{settings.port}/api/admin/ingest"
    body = IngestJob.model_validate(
        {
            **{k: v for k, v in job.items() if v is not None and k != "pull"},
            **({"pull": asdict(job["pull"])} if "pull" in job else {}),
            "paths": [p if p == "-" else str(Path(p).resolve()) for p in job["paths"]],
            **{
                k: str(Path(job[k]).resolve())
                for k in ("mapping", "sample_map")
                if job.get(k) is not None
            },
        }
    ).model_dump(mode="json")
    if token is None:
        raise fail(str(busy))
    headers = {"authorization": f"Bearer {token}"}
    try:
        with httpx.Client(timeout=30, headers=headers) as client:
            r = client.post(base, json=body)
            if r.status_code != 202:
                raise fail(f"the running node refused the ingest: {r.status_code} {r.text[:300]}")
            state = r.json()
            err.print(f"the node service holds the store: it runs this ingest (job {state['id']})")
            with console.status("the running node is ingesting ...") as status:
                while state["state"] in ("queued", "running"):
                    time.sleep(0.5)
                    state = client.get(f"{base}/{state['id']}").json()
                    status.update(f"the running node is ingesting ... {state['seconds']:.0f} s")
    except httpx.HTTPError as exc:
        raise fail(f"{busy} (and the node service at {base} did not answer: {exc})") from exc
    if state["state"] != "done":
        raise fail(f"the ingest failed in the node service: {state.get('error')}")
    report = report_from_json(state["report"])
    console.print(report.table())
    return report


def _import_report(directory: Path, run: Callable[[], Any], job: dict[str, Any]) -> None:
    """Run a clinical/genomic importer (through the running node when it holds the store);
    exit 1 when any file was rejected."""
    from oncofed.node.ingest.common import RecordError
    from oncofed.node.store import StoreBusyError

    try:
        report = run()
    except RecordError as exc:
        raise fail(str(exc)) from exc
    except StoreBusyError as exc:
        report = _through_service(directory, job, exc)
    else:
        if report.ingested:
            _after_ingest(directory)
    if report.rejected:
        for outcome in report.rejected[:20]:
            err.print(f"[red]rejected[/] {outcome.detail}")
        raise typer.Exit(1)


Dataset = Annotated[
    str | None,
    typer.Option("--dataset", help="dataset (collection) id; default <provider>-clinical/-genomic"),
]
AccessLevel = Annotated[
    str | None,
    typer.Option(
        "--access-level", help="public | registered | controlled (Beacon granularity cap)"
    ),
]


@ingest_app.command("clinical")
def ingest_clinical(
    paths: Annotated[list[Path], typer.Argument(help="CSV files or the folder holding them")],
    mapping: Annotated[
        Path | None,
        typer.Option("--mapping", help="mapping YAML (default: mapping.yaml beside the CSVs)"),
    ] = None,
    directory: NodeDir = DEFAULT_NODE_DIR,
    dataset: Dataset = None,
    access_level: AccessLevel = None,
) -> None:
    """Import clinical CSV exports through a declarative mapping (one transaction per file)."""
    from oncofed.node.ingest.clinical_csv import clinical_command

    _ingest_inputs(directory, paths)
    _import_report(
        directory,
        lambda: clinical_command(paths, mapping, directory, dataset, access_level),
        {"kind": "clinical", "paths": paths, "mapping": mapping, "dataset": dataset,
         "access_level": access_level},
    )  # fmt: skip


@ingest_app.command("fhir")
def ingest_fhir(
    paths: Annotated[
        list[Path], typer.Argument(help="FHIR R4 (mCODE) JSON bundles, resources or folders")
    ],
    directory: NodeDir = DEFAULT_NODE_DIR,
    dataset: Dataset = None,
    access_level: AccessLevel = None,
) -> None:
    """Import FHIR R4 mCODE bundles (Patient, Condition, Observation, Procedure, Medication*)."""
    from oncofed.node.ingest.fhir import fhir_command

    _ingest_inputs(directory, paths)
    _import_report(
        directory,
        lambda: fhir_command(paths, directory, dataset, access_level),
        {"kind": "fhir", "paths": paths, "dataset": dataset, "access_level": access_level},
    )


@ingest_app.command("omop")
def ingest_omop(
    paths: Annotated[list[Path], typer.Argument(help="folders of OMOP CDM tables (CSV/TSV)")],
    directory: NodeDir = DEFAULT_NODE_DIR,
    dataset: Dataset = None,
    access_level: AccessLevel = None,
) -> None:
    """Import OMOP CDM exports (one all-or-nothing unit per folder)."""
    from oncofed.node.ingest.omop import omop_command

    _ingest_inputs(directory, paths)
    _import_report(
        directory,
        lambda: omop_command(paths, directory, dataset, access_level),
        {"kind": "omop", "paths": paths, "dataset": dataset, "access_level": access_level},
    )


@ingest_app.command("vcf")
def ingest_vcf(
    paths: Annotated[list[Path], typer.Argument(help="VCF / VCF.gz files or folders")],
    directory: NodeDir = DEFAULT_NODE_DIR,
    dataset: Dataset = None,
    sample_pattern: Annotated[
        str | None,
        typer.Option(
            "--sample-pattern", help="regex with a 'patient' group (default strips -T1/-N1)"
        ),
    ] = None,
    sample_map: Annotated[
        Path | None, typer.Option("--sample-map", help="two-column CSV: sample,patient")
    ] = None,
    assembly: Annotated[
        str | None, typer.Option("--assembly", help="GRCh38 | GRCh37 when the header does not say")
    ] = None,
    access_level: AccessLevel = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Import variant calls; samples become pseudonymised biosamples of their patients."""
    from oncofed.node.ingest.vcf import vcf_command

    _ingest_inputs(directory, paths)
    _import_report(
        directory,
        lambda: vcf_command(
            paths, directory, dataset, sample_pattern, sample_map, assembly, access_level, progress
        ),
        {"kind": "vcf", "paths": paths, "dataset": dataset, "sample_pattern": sample_pattern,
         "sample_map": sample_map, "assembly": assembly, "access_level": access_level},
    )  # fmt: skip


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
    from oncofed.node.ingest.commands import PullRequest, pull_command
    from oncofed.node.store import StoreBusyError

    _node_settings(directory)
    pull = PullRequest(
        dicomweb, dimse, aet, called_aet, receive_port, patient_id, study_date, modality, study_uid
    )
    try:
        pull_command(directory, pull, progress)
    except StoreBusyError as exc:
        report = _through_service(directory, {"kind": "pull", "paths": ["-"], "pull": pull}, exc)
        if report.rejections:
            raise typer.Exit(1) from None
    except (ValueError, ConnectionError, OSError) as exc:
        raise fail(str(exc)) from exc


# -- researcher -----------------------------------------------------------------------------


_client = hub_client


@app.command()
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


@app.command()
def logout(hub: Annotated[str | None, typer.Option(help="hub URL")] = None) -> None:
    """Revoke the saved API token at the hub and forget it here."""
    from oncofed.client.hub import HubError, credentials_path

    client = _client(hub)
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


@hub_user_app.command("revoke-tokens")
def hub_user_revoke_tokens(username: str, directory: HubDir = DEFAULT_HUB_DIR) -> None:
    """Revoke every API token of an account (a lost laptop, a departed user)."""
    from oncofed.hub.admin import AdminError, revoke_tokens

    _, engine = _open_hub(directory)
    try:
        count = revoke_tokens(engine, username)
    except AdminError as exc:
        raise fail(str(exc)) from exc
    console.print(f"{count} token(s) of {username} revoked")


def _print_nodes(rows: list[dict[str, Any]]) -> None:
    table = Table("name", "id", "status", "version", "last seen")
    for n in rows:
        table.add_row(
            n["name"],
            n["id"],
            n["status"],
            n.get("version") or "",
            n.get("last_seen_at") or "never",
        )
    console.print(table)


@app.command()
def nodes(hub: Annotated[str | None, typer.Option(help="hub URL")] = None) -> None:
    """List the federation's nodes (from the hub you are logged in to)."""
    from oncofed.client.hub import HubError

    try:
        _print_nodes(_client(hub).nodes())
    except HubError as exc:
        raise fail(exc.message) from exc


def print_task_results(view: dict[str, Any]) -> None:
    table = Table("node", "status", "result", title=f"task {view['id']} ({view['kind']})")
    for t in view["targets"]:
        colour = {
            "succeeded": "green",
            "timed_out": "yellow",
            "refused": "red",
            "failed": "red",
        }.get(t["status"], "white")
        if t["result"] is not None:
            summary = json.dumps(t["result"])
            summary = summary if len(summary) < 120 else summary[:117] + "..."
        else:
            summary = t["error"] or ""
        table.add_row(t["node_name"], f"[{colour}]{t['status']}[/]", summary)
    console.print(table)


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


@app.command()
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

    client = _client(hub)
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
        view = _client(hub).run(kind, parsed, node or None, ttl, wait)
    except HubError as exc:
        raise fail(exc.message) from exc
    if as_json:
        console.print_json(json.dumps(view))
    else:
        print_task_results(view)


@task_app.command("show")
def task_show(task_id: str, hub: Annotated[str | None, typer.Option()] = None) -> None:
    """Show a task's per-node status and results."""
    from oncofed.client.hub import HubError

    try:
        print_task_results(_client(hub).task(task_id))
    except HubError as exc:
        raise fail(exc.message) from exc


# -- audit ----------------------------------------------------------------------------------


def _audit_log(hub_dir: Path | None, node_dir: Path | None) -> Any:
    from oncofed.audit import AuditLog

    if (hub_dir is None) == (node_dir is None):
        raise fail("name one log: --hub-dir DIR or --node-dir DIR")
    if hub_dir is not None:
        _, engine = _open_hub(hub_dir)
        return AuditLog(engine)
    from oncofed.node.state import state_engine

    settings = _node_settings(node_dir)  # type: ignore[arg-type]
    return AuditLog(state_engine(settings.resolve(settings.state_file)))


@audit_app.command("verify")
def audit_verify(
    hub_dir: Annotated[Path | None, typer.Option(help="verify this hub's log")] = None,
    node_dir: Annotated[Path | None, typer.Option(help="verify this node's log")] = None,
) -> None:
    """Check the hash chain: report every edited, inserted or deleted entry."""
    log = _audit_log(hub_dir, node_dir)
    problems = log.verify()
    count = sum(1 for _ in log.entries())
    if problems:
        for p in problems:
            err.print(f"[red]entry {p.seq}[/]: {p.problem}")
        raise fail(f"audit log is NOT intact: {len(problems)} problem(s) in {count} entries", 2)
    console.print(f"[green]audit log intact[/]: {count} entries, chain verified")


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Argument(help="JSON Lines file to write")],
    hub_dir: Annotated[Path | None, typer.Option()] = None,
    node_dir: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Write the audit log as JSON Lines for an auditor."""
    count = _audit_log(hub_dir, node_dir).export(out)
    console.print(f"{count} entries written to {out}")


# -- synthetic data and demo ----------------------------------------------------------------


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="where the demo keeps its files")] = Path(
        "demo-data"
    ),
    nodes_: Annotated[int, typer.Option("--nodes", min=1, max=10)] = 3,
    patients: Annotated[int, typer.Option(help="synthetic patients per provider")] = 40,
    once: Annotated[bool, typer.Option(help="exit after the sample run (for tests)")] = False,
    fresh: Annotated[bool, typer.Option(help="delete an earlier demo directory first")] = True,
) -> None:
    """Start a hub and nodes on loopback with synthetic data and show the federation working."""
    from oncofed.demo import run_demo

    raise typer.Exit(run_demo(directory, nodes_, patients, once, fresh, console))


catalogue_app = typer.Typer(help="The public dataset catalogue (Tier 1).", no_args_is_help=True)
app.add_typer(catalogue_app, name="catalogue")


@catalogue_app.command("refresh")
def catalogue_refresh(
    node: Annotated[list[str] | None, typer.Option(help="node name; all if none")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the nodes")] = 30.0,
    hub: Annotated[str | None, typer.Option(help="hub URL")] = None,
) -> None:
    """Ask the nodes to describe their datasets now (admin)."""
    with hub_errors():
        result = _client(hub).refresh_catalogue(node, timeout)
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
        text = _client(hub).export_catalogue(format_)
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
        result = _client(hub).harvest_catalogue(url)
    for origin, counts in result["catalogues"].items():
        console.print(
            f"{origin}: {counts['added']} added, {counts['updated']} updated, "
            f"{counts['removed']} removed"
        )
    for problem in result["problems"]:
        console.print(f"[yellow]warning[/] {problem}")
