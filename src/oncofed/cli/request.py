"""`oncofed request ...`: access requests (the Negotiator v3 lifecycle), DAC decisions,
comments, attachments and visas, from the command line.

Thin, as every `oncofed.cli` module: it parses, calls `HubClient`, and prints the tables of
`oncofed.client.render`. The hub decides who may do what; its refusals (an illegal
transition, a wrong role, an unknown id) come out as one line on stderr and exit code 1.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from oncofed.cli.common import AsJson, HubUrl, console, fail, hub_client, hub_errors
from oncofed.hub.negotiation.lifecycle import NEGOTIATION_ACTORS, RESOURCE_ACTORS

request_app = typer.Typer(
    help="Access requests: create, submit and follow them; DAC decisions; your visas.",
    no_args_is_help=True,
)


RequestId = Annotated[str, typer.Argument(help="the request's id, e.g. neg-0123456789abcdef")]


def _events_by(actors: dict[Any, frozenset[str]], role: str) -> str:
    return ", ".join(str(e) for e, who in actors.items() if role in who)


REQUEST_EVENT_HELP = (
    f"the requesting researcher: {_events_by(NEGOTIATION_ACTORS, 'owner')}; "
    f"hub admins: {_events_by(NEGOTIATION_ACTORS, 'admin')}"
)
RESOURCE_EVENT_HELP = (
    f"DAC members of the resource's provider: {_events_by(RESOURCE_ACTORS, 'dac')}; "
    f"the requesting researcher: {_events_by(RESOURCE_ACTORS, 'owner')}"
)


def _print_json(value: Any) -> None:
    console.print_json(json.dumps(value))


def _event_name(event: str) -> str:
    return event.strip().upper().replace("-", "_")


# -- the access form ----------------------------------------------------------------------

TitleOpt = Annotated[str, typer.Option(help="a short title of the request")]
PurposeOpt = Annotated[str | None, typer.Option(help="the research purpose")]
DuoOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--duo",
        help="a GA4GH DUO code (repeat); one primary purpose is needed, e.g. DUO:0000006 "
        "(health/medical research) or DUO:0000042 (general research use)",
    ),
]
HypothesisOpt = Annotated[str | None, typer.Option(help="the hypothesis")]
ObjectivesOpt = Annotated[str | None, typer.Option(help="the objectives")]
MethodsOpt = Annotated[str | None, typer.Option(help="the methods")]
TeamOpt = Annotated[str | None, typer.Option(help="the team (names, roles)")]
FundingOpt = Annotated[str | None, typer.Option(help="the funding")]
EthicsOpt = Annotated[
    str | None, typer.Option("--ethics-approval", help="ethics committee, number and date")
]
FormFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--form",
        help="a JSON file of form fields (purpose, duo_codes, hypothesis, objectives, "
        "methods, team, funding, ethics_approval); the options above override it",
    ),
]


# The form's fields, each the name of its command parameter (`create`, `edit`).
FORM_FIELDS = (
    "purpose",
    "duo_codes",
    "hypothesis",
    "objectives",
    "methods",
    "team",
    "funding",
    "ethics_approval",
)


def _form(
    base: dict[str, Any],
    form_file: Path | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """The access form: `base`, then the --form file, then the FORM_FIELDS among `options`
    (a command's parameters) that were given."""
    form = dict(base)
    if form_file is not None:
        try:
            loaded = json.loads(form_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise fail(f"--form {form_file}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise fail(f"--form {form_file}: expected a JSON object of form fields")
        form.update(loaded)
    form.update({k: options[k] for k in FORM_FIELDS if options.get(k) is not None})
    return form


def _resources(datasets: list[str]) -> list[dict[str, str]]:
    out = []
    for item in datasets:
        provider, sep, dataset = item.partition(":")
        if not sep or not provider.strip() or not dataset.strip():
            raise fail(f"--dataset {item!r}: write NODE:DATASET_ID, e.g. node-1:p1-cohort")
        out.append({"provider": provider.strip(), "id": dataset.strip()})
    return out


def _next_steps(view: dict[str, Any]) -> None:
    if view["state"] == "DRAFT" and view.get("missing"):
        console.print(f"  missing before it can be submitted: {escape(', '.join(view['missing']))}")
        console.print(f"  fill them in: oncofed request edit {view['id']} --purpose ... ")
    elif view["state"] == "DRAFT":
        console.print(f"  submit it: oncofed request event {view['id']} SUBMIT")


@request_app.command("create")
def create(
    title: TitleOpt,
    dataset: Annotated[
        list[str],
        typer.Option(
            help="NODE:DATASET_ID, a dataset at a provider (node name), e.g. node-1:p1-cohort "
            "(repeat for each)"
        ),
    ],
    purpose: PurposeOpt = None,
    duo_codes: DuoOpt = None,
    hypothesis: HypothesisOpt = None,
    objectives: ObjectivesOpt = None,
    methods: MethodsOpt = None,
    team: TeamOpt = None,
    funding: FundingOpt = None,
    ethics_approval: EthicsOpt = None,
    form_file: FormFileOpt = None,
    submit: Annotated[bool, typer.Option("--submit", help="submit it for review at once")] = False,
    as_json: AsJson = False,
    hub: HubUrl = None,
) -> None:
    """Request access to datasets (researchers).

    The request starts as a DRAFT that only you see; every form field is needed to submit
    it (--submit does so at once)."""
    form = _form({}, form_file, locals())
    resources = _resources(dataset)
    client = hub_client(hub)
    with hub_errors():
        view = client.create_access_request(title, resources, form)
    if submit:
        with hub_errors(f"request {view['id']} was created as a DRAFT but not submitted: "):
            view = client.request_event(view["id"], "SUBMIT")
    if as_json:
        _print_json(view)
        return
    console.print(f"request [bold]{view['id']}[/] created: {view['state']}")
    console.print(
        "  datasets: " + ", ".join(escape(f"{r['provider']}/{r['id']}") for r in view["resources"])
    )
    _next_steps(view)


@request_app.command("edit")
def edit(
    request_id: RequestId,
    purpose: PurposeOpt = None,
    duo_codes: DuoOpt = None,
    hypothesis: HypothesisOpt = None,
    objectives: ObjectivesOpt = None,
    methods: MethodsOpt = None,
    team: TeamOpt = None,
    funding: FundingOpt = None,
    ethics_approval: EthicsOpt = None,
    form_file: FormFileOpt = None,
    as_json: AsJson = False,
    hub: HubUrl = None,
) -> None:
    """Change the access form of your DRAFT request.

    Also possible while a provider has returned it for resubmission. Fields not given keep
    their values."""
    client = hub_client(hub)
    with hub_errors():
        current = client.access_request(request_id)
        form = _form(current.get("form") or {}, form_file, locals())
        view = client.edit_access_form(request_id, form)
    if as_json:
        _print_json(view)
        return
    console.print(f"request [bold]{view['id']}[/] form saved ({view['state']})")
    _next_steps(view)


@request_app.command("list")
def list_requests(as_json: AsJson = False, hub: HubUrl = None) -> None:
    """The requests you may see, with each requested resource's state.

    Your own; as a DAC member or data holder, the submitted ones naming your node's
    datasets; every one, as a hub admin."""
    from oncofed.client.render import requests_table

    client = hub_client(hub)
    with hub_errors():
        views = [client.access_request(r["id"]) for r in client.access_requests()]
    if as_json:
        _print_json(views)
    elif not views:
        console.print("no access requests that you may see")
    else:
        console.print(requests_table(views))


@request_app.command("show")
def show(request_id: RequestId, as_json: AsJson = False, hub: HubUrl = None) -> None:
    """A request: its form, its resources and their states, its history and comments."""
    from oncofed.client.render import (
        comments_table,
        request_history_table,
        request_resources_table,
        request_table,
        request_visas_table,
    )

    client = hub_client(hub)
    with hub_errors():
        view = client.access_request(request_id)
        comments = client.comments(request_id)
    if as_json:
        _print_json({**view, "comments": comments})
        return
    console.print(request_table(view))
    console.print(request_resources_table(view))
    console.print(request_history_table(view))
    if view.get("visas"):
        console.print(request_visas_table(view))
    if comments:
        console.print(comments_table(comments))
    else:
        console.print("no comments")


@request_app.command("event")
def event(
    request_id: RequestId,
    event: Annotated[str, typer.Argument(help=REQUEST_EVENT_HELP)],
    note: Annotated[str, typer.Option("--note", "--reason", help="why (kept in the history)")] = "",
    as_json: AsJson = False,
    hub: HubUrl = None,
) -> None:
    """Move a request through its lifecycle (SUBMIT, APPROVE, START ...).

    SUBMIT it for review, APPROVE or DECLINE it (hub admins), START it (its providers' DACs
    are contacted), PAUSE, UNPAUSE, CONCLUDE or ABANDON it (abandoning revokes its visas)."""
    from oncofed.client.render import request_resources_table

    name = _event_name(event)
    client = hub_client(hub)
    with hub_errors(f"{name} on {request_id}: "):
        view = client.request_event(request_id, name, note)
    if as_json:
        _print_json(view)
        return
    fired = [h for h in view["history"] if h["event"] == name and h["resource_row"] is None]
    before = f"{fired[-1]['from']} -> " if fired else ""
    console.print(f"request [bold]{view['id']}[/]: {before}{view['state']}")
    if name == "START":
        console.print(request_resources_table(view))


@request_app.command("decide")
def decide(
    request_id: RequestId,
    row: Annotated[
        int,
        typer.Argument(
            help="the resource's row, as `oncofed request show` lists it: the hub's number of "
            "that dataset within this request (not the dataset id)"
        ),
    ],
    event: Annotated[str, typer.Argument(help=RESOURCE_EVENT_HELP)],
    note: Annotated[
        str, typer.Option("--reason", "--note", help="why (kept in the history, sent on)")
    ] = "",
    conditions: Annotated[
        str, typer.Option(help="the access conditions, with INDICATE_ACCESS_CONDITIONS")
    ] = "",
    grant_days: Annotated[
        int | None,
        typer.Option(help="the visa's lifetime in days, with GRANT_ACCESS_TO_RESOURCE"),
    ] = None,
    as_json: AsJson = False,
    hub: HubUrl = None,
) -> None:
    """Decide on one requested resource (its provider's DAC members).

    The requesting researcher answers access conditions or resubmits with it too. A grant
    (GRANT_ACCESS_TO_RESOURCE) issues a visa to the researcher."""
    name = _event_name(event)
    client = hub_client(hub)
    with hub_errors(f"{name} on {request_id} row {row}: "):
        view = client.resource_event(request_id, row, name, note, conditions, grant_days)
    if as_json:
        _print_json(view)
        return
    res = next(r for r in view["resources"] if r["row"] == row)
    fired = [h for h in view["history"] if h["resource_row"] == row and h["event"] == name]
    before = f"{fired[-1]['from']} -> " if fired else ""
    console.print(
        f"request [bold]{view['id']}[/], {escape(res['provider'] + '/' + res['id'])} "
        f"(row {row}): {before}{res['state']}"
    )
    if res["state"] == "RESOURCE_MADE_AVAILABLE":
        console.print(f"  a visa for it was issued to {view['owner']}")


@request_app.command("comment")
def comment(
    request_id: RequestId,
    text: Annotated[str, typer.Argument(help="the comment")],
    provider: Annotated[
        str | None, typer.Option(help="address only this provider's DAC (a node name)")
    ] = None,
    hub: HubUrl = None,
) -> None:
    """Comment on a request (its author, its providers' DACs, hub admins)."""
    client = hub_client(hub)
    with hub_errors(f"comment on {request_id}: "):
        added = client.add_comment(request_id, text, provider)
    whom = f"{provider}'s DAC" if provider else "everyone on it"
    console.print(f"comment {added['id']} added to request [bold]{request_id}[/] (to {whom})")


@request_app.command("attach")
def attach(
    request_id: RequestId,
    path: Annotated[Path, typer.Argument(help="the document, e.g. the ethics approval (≤ 10 MB)")],
    hub: HubUrl = None,
) -> None:
    """Attach a document to your request (its author)."""
    if not path.is_file():
        raise fail(f"no such file: {path}")
    client = hub_client(hub)
    with hub_errors(f"attaching {path.name} to {request_id}: "):
        added = client.attach(request_id, path)
    console.print(
        f"attachment {added['id']} ({escape(added['filename'])}, {added['size']} bytes) "
        f"added to request [bold]{request_id}[/]"
    )


@request_app.command("attachments")
def attachments(request_id: RequestId, as_json: AsJson = False, hub: HubUrl = None) -> None:
    """The documents attached to a request."""
    from oncofed.client.render import attachments_table

    client = hub_client(hub)
    with hub_errors():
        listed = client.attachments(request_id)
    if as_json:
        _print_json(listed)
    elif not listed:
        console.print("no attachments")
    else:
        console.print(attachments_table(listed))


@request_app.command("download")
def download(
    request_id: RequestId,
    attachment_id: Annotated[int, typer.Argument(help="as `oncofed request attachments` lists")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file to write (default: its name)")
    ] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
    hub: HubUrl = None,
) -> None:
    """Save an attached document; an existing file is kept unless --force."""
    client = hub_client(hub)
    with hub_errors():
        listed = {a["id"]: a for a in client.attachments(request_id)}
        if attachment_id not in listed:
            raise fail(f"request {request_id} has no attachment {attachment_id}")
        data = client.download_attachment(request_id, attachment_id)
    if hashlib.sha256(data).hexdigest() != listed[attachment_id]["sha256"]:
        raise fail(f"attachment {attachment_id} arrived altered (sha256 differs); not saved")
    name = Path(str(listed[attachment_id]["filename"])).name or f"attachment-{attachment_id}"
    target = output or Path(name)
    if target.exists() and not force:
        raise fail(f"{target} exists; choose another --output or pass --force")
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data)
    partial.replace(target)  # never a half-written file under the real name
    console.print(f"{escape(str(target))}: {len(data)} bytes")


@request_app.command("revoke-visa")
def revoke_visa(
    jti: Annotated[str, typer.Argument(help="the visa's id, as `oncofed request show` lists it")],
    reason: Annotated[str, typer.Option(help="why (kept in the audit log, mailed to the holder)")],
    hub: HubUrl = None,
) -> None:
    """Revoke a visa (hub admins, or DAC members of its provider); nodes refuse it within a
    minute."""
    client = hub_client(hub)
    with hub_errors(f"revoking visa {jti}: "):
        result = client.revoke_visa(jti, reason)
    console.print(f"visa {escape(jti)} revoked at {result['revoked_at']}")


@request_app.command("visas")
def visas(as_json: AsJson = False, hub: HubUrl = None) -> None:
    """Your valid visas (ControlledAccessGrants): dataset, provider, expiry, conditions."""
    from oncofed.client.render import visas_table

    client = hub_client(hub)
    with hub_errors():
        granted = client.visas()
    if as_json:
        _print_json({"visas": granted})
    elif not granted:
        console.print("no valid visas: none granted yet, or all expired or revoked")
    else:
        console.print(visas_table(granted))
