"""Access requests in the portal: the researcher's requests, a request's page with the
actions this viewer may take, and the DAC inbox. Every action goes through the negotiation
service, so the lifecycle, the role checks and the audit are the API's own."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from oncofed.hub.auth import Caller
from oncofed.hub.catalogue import service as catalogue
from oncofed.hub.channel import ChannelError
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.negotiation import lifecycle as lc
from oncofed.hub.negotiation import service
from oncofed.hub.negotiation.forms import (
    DUO_TERMS,
    PRIMARY_DUO,
    TEXT_FIELDS,
    AccessForm,
    CommentRequest,
    NegotiationCreate,
    ResourceEventRequest,
    ResourceRef,
    RevokeRequest,
)
from oncofed.hub.negotiation.service import NegotiationError, Who
from oncofed.hub.portal.session import check_csrf, user_with
from oncofed.hub.portal.templating import render
from oncofed.hub.search import combine
from oncofed.hub.search_runs import search_view
from oncofed.security.http import DbId

router = APIRouter(include_in_schema=False)
Ctx = Annotated[HubContext, Depends(hub_context)]
AnyUser = Annotated[Caller, Depends(user_with())]
Csrf = Annotated[None, Depends(check_csrf)]

FIELD_LABELS = {
    "purpose": "Purpose",
    "hypothesis": "Hypothesis",
    "objectives": "Objectives",
    "methods": "Methods",
    "team": "Team",
    "funding": "Funding",
    "ethics_approval": "Ethics approval (committee, number, date)",
}
EVENT_LABELS = {
    "SUBMIT": "Submit for review",
    "APPROVE": "Approve",
    "DECLINE": "Decline",
    "START": "Start: contact the providers",
    "PAUSE": "Pause",
    "UNPAUSE": "Resume",
    "ABANDON": "Abandon",
    "CONCLUDE": "Conclude",
    "RETURN_FOR_RESUBMISSION": "Return for resubmission",
    "RESUBMIT": "Resubmit",
    "MARK_AS_CHECKING_AVAILABILITY": "Checking availability",
    "MARK_AS_AVAILABLE": "Available, decide later",
    "MARK_AS_UNAVAILABLE": "Unavailable",
    "MARK_AS_CURRENTLY_UNAVAILABLE_BUT_WILLING_TO_COLLECT": "Unavailable, willing to collect",
    "INDICATE_ACCESS_CONDITIONS": "Set access conditions",
    "ACCEPT_ACCESS_CONDITIONS": "Accept the conditions",
    "DECLINE_ACCESS_CONDITIONS": "Decline the conditions",
    "MARK_AS_NOT_MADE_AVAILABLE": "Do not make available",
    "GRANT_ACCESS_TO_RESOURCE": "Grant access",
}
# What the page says after an event: what happened and what comes next (fixed texts filled
# from the stored request, never from the address).
EVENT_NOTICES = {
    "SUBMIT": "Submitted for review: a hub reviewer approves it, then each provider's data "
    "access committee decides.",
    "APPROVE": "Approved. Start it to ask the providers' data access committees.",
    "DECLINE": "Declined; {owner} has been told.",
    "START": "Started: each provider's data access committee has been asked to decide.",
    "PAUSE": "Paused: the providers cannot decide until it is resumed.",
    "UNPAUSE": "Resumed: the providers can decide again.",
    "ABANDON": "Withdrawn; any visas it issued are revoked.",
    "CONCLUDE": "Concluded.",
    "GRANT_ACCESS_TO_RESOURCE": "Access granted: {owner} now holds a visa for {dataset} at "
    "{provider}, which {provider}'s node checks itself.",
    "MARK_AS_AVAILABLE": "{dataset} at {provider} marked available: grant access or set "
    "conditions next.",
    "MARK_AS_UNAVAILABLE": "{dataset} at {provider} marked not available; {owner} has been told.",
    "MARK_AS_CURRENTLY_UNAVAILABLE_BUT_WILLING_TO_COLLECT": "{dataset} at {provider}: not "
    "available yet, willing to collect; {owner} has been told.",
    "MARK_AS_CHECKING_AVAILABILITY": "{provider} is checking availability; {owner} has been told.",
    "MARK_AS_NOT_MADE_AVAILABLE": "Access to {dataset} at {provider} refused; {owner} has been "
    "told.",
    "INDICATE_ACCESS_CONDITIONS": "Conditions for {dataset} at {provider} sent to {owner}.",
    "ACCEPT_ACCESS_CONDITIONS": "Conditions accepted for {dataset} at {provider}: its data "
    "access committee can now grant access.",
    "DECLINE_ACCESS_CONDITIONS": "Conditions declined for {dataset} at {provider}.",
    "RETURN_FOR_RESUBMISSION": "Returned to {owner} for changes ({dataset} at {provider}).",
    "RESUBMIT": "Resubmitted to {provider}'s data access committee.",
}


def event_notice(params: Any, neg: dict[str, Any]) -> str:
    """The notice for ``?done=ev-EVENT[&row=N]`` on this request ('' for anything else)."""
    done = str(params.get("done", ""))
    text = EVENT_NOTICES.get(done.removeprefix("ev-")) if done.startswith("ev-") else None
    if text is None:
        return ""
    row = str(params.get("row", ""))
    res = next((r for r in neg["resources"] if str(r["row"]) == row), None)
    if res is None and "{provider}" in text:
        return ""
    return text.format(
        owner=neg["owner"],
        provider=res["provider"] if res else "",
        dataset=(res["name"] or res["id"]) if res else "",
    )


def _done(event: str, row: int | None = None) -> str:
    """The ``done`` query of a redirect after `event` (only events the notices know)."""
    if event not in EVENT_NOTICES:
        return "done=updated"
    return f"done=ev-{event}" + (f"&row={row}" if row is not None else "")


# Events that end something: their buttons look different and ask for a note.
# Where a request waits for the hub's reviewer (an admin): approve or decline, then start.
REVIEW_STATES = {lc.NegotiationState.SUBMITTED, lc.NegotiationState.APPROVED}
# The step that moves a request forward: drawn as the main button.
PRIMARY = {
    "SUBMIT",
    "APPROVE",
    "START",
    "RESUBMIT",
    "GRANT_ACCESS_TO_RESOURCE",
    "ACCEPT_ACCESS_CONDITIONS",
    "UNPAUSE",
}
GRAVE = {
    "DECLINE",
    "ABANDON",
    "MARK_AS_UNAVAILABLE",
    "MARK_AS_NOT_MADE_AVAILABLE",
    "DECLINE_ACCESS_CONDITIONS",
}


def who(user: Caller) -> Who:
    return Who(user.username, user.roles)


def negotiation_actions(user: Caller, neg: dict[str, Any]) -> list[str]:
    out = []
    for event in neg["allowed_events"]:
        roles = lc.NEGOTIATION_ACTORS[lc.NegotiationEvent(event)]
        if ("owner" in roles and neg["owner"] == user.username) or (
            "admin" in roles and "admin" in user.roles
        ):
            out.append(event)
    return out


def resource_actions(user: Caller, neg: dict[str, Any], res: dict[str, Any]) -> list[str]:
    if neg["state"] != lc.NegotiationState.IN_PROGRESS:
        return []
    out = []
    for event in res["allowed_events"]:
        roles = lc.RESOURCE_ACTORS[lc.ResourceEvent(event)]
        if ("dac" in roles and f"dac:{res['provider']}" in user.roles) or (
            "owner" in roles and neg["owner"] == user.username
        ):
            out.append(event)
    return out


async def _call(fn: Any, *args: Any) -> Any:
    return await run_in_threadpool(fn, *args)


@router.get("/requests", response_class=HTMLResponse)
async def my_requests(request: Request, ctx: Ctx, user: AnyUser) -> Response:
    rows = await _call(service.list_for, ctx, who(user))
    mine = [r for r in rows if r["owner"] == user.username]
    others = [r for r in rows if r["owner"] != user.username]
    grants = await _call(service.my_visas, ctx, who(user))
    return render(
        request,
        ctx,
        "requests.html",
        user,
        title="Access requests",
        mine=mine,
        others=others,
        grants=grants,
    )


def _form_from(form: Any) -> AccessForm:
    names = (*TEXT_FIELDS, "ethics_approval")
    data: dict[str, Any] = {f: str(form.get(f, "")).strip() for f in names}
    data["duo_codes"] = [str(c) for c in form.getlist("duo_codes")]
    return AccessForm.model_validate(data)


DUO_NEEDED = "Data use: one primary purpose (GA4GH DUO)"


def _in_words(message: str) -> str:
    """The hub's "fill in before submitting: a, b" with the labels the page shows."""
    head, found, fields = message.partition("fill in before submitting:")
    if not found:
        return message
    end = "." if fields.rstrip().endswith(".") else ""
    fields = re.sub(r"duo_codes \([^)]*\)", "duo_codes", fields.rstrip().rstrip("."))
    names = [
        DUO_NEEDED if key.strip() == "duo_codes" else FIELD_LABELS.get(key.strip(), key.strip())
        for key in fields.split(",")
    ]
    return f"{head}fill in before submitting: {'; '.join(names)}{end}"


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{FIELD_LABELS.get(str(e['loc'][-1]), str(e['loc'][-1]))}: {e['msg']}"
        for e in exc.errors()
    )


def _local_dataset_id(provider: str, identifier: str) -> str:
    """A catalogue record of this hub's own nodes is identified as ``provider:dataset``; a
    search result and a request name the dataset alone (with the provider beside it)."""
    return identifier.removeprefix(f"{provider}:")


async def _candidates(request: Request, ctx: HubContext, user: Caller) -> list[dict[str, Any]]:
    """The datasets a new request is about: from a cohort result, a dataset page, or all.

    From a cohort result, a dataset whose count was released is ticked; one whose count the
    node withheld (fewer than its minimum) may hold no matching patient at all, so it is
    offered unticked with that said. Each dataset is listed once."""
    params = request.query_params
    out: list[dict[str, Any]] = []
    run_id = params.get("run", "")
    if run_id:
        try:
            if await _call(ctx.channel.owner, run_id) == user.username:
                result = combine(await search_view(ctx, run_id))
                for c in result["collections"]:
                    released = c.get("subjects_count") is not None and c["subjects_count"] > 0
                    below = c.get("subjects_count_below")
                    out.append(
                        {
                            "provider": c["provider"],
                            "id": _local_dataset_id(c["provider"], str(c["id"])),
                            "name": c["name"],
                            "checked": released,
                            "note": f"{c['subjects_count']:,} matching patients"
                            if released
                            else f"may match (fewer than {below} patients)"
                            if below
                            else "no matching patients",
                        }
                    )
        except ChannelError:
            pass
    for ref in params.getlist("resource"):
        provider, _, dataset = ref.partition(":")
        if provider and dataset:
            out.append({"provider": provider, "id": dataset, "name": dataset, "checked": True})
    chosen = {(c["provider"], c["id"]) for c in out}
    for r in await _call(catalogue.list_records, ctx):
        dataset = _local_dataset_id(r.provider, r.identifier)
        if not r.origin and (r.provider, dataset) not in chosen:
            chosen.add((r.provider, dataset))
            out.append({"provider": r.provider, "id": dataset, "name": r.title, "checked": False})
    for c in out:
        c["value"] = f"{c['provider']}:{c['id']}"
    return out


def _new_page(
    request: Request,
    ctx: HubContext,
    user: Caller,
    candidates: list[dict[str, Any]],
    status_code: int = 200,
    error: str = "",
    title: str = "",
    form: AccessForm | None = None,
) -> Response:
    return render(
        request,
        ctx,
        "request_new.html",
        user,
        status_code,
        title="New access request",
        error=error,
        candidates=candidates,
        req_title=title or request.query_params.get("title", ""),
        form=form or AccessForm(),
        labels=FIELD_LABELS,
        duo_terms=DUO_TERMS,
        primary_duo=PRIMARY_DUO,
    )


@router.get("/negotiation/new")
async def from_catalogue(dataset: str = "", provider: str = "") -> Response:
    """The access URL the DCAT export gives each distribution (STANDARDS §5): the form of a
    new request for that dataset (after logging in)."""
    query = urlencode({"resource": f"{provider}:{dataset}"} if dataset and provider else {})
    return RedirectResponse(f"/requests/new?{query}" if query else "/requests/new", 303)


@router.get("/requests/new", response_class=HTMLResponse)
async def new_request(
    request: Request, ctx: Ctx, user: Annotated[Caller, Depends(user_with("researcher"))]
) -> Response:
    return _new_page(request, ctx, user, await _candidates(request, ctx, user))


@router.post("/requests", response_class=HTMLResponse)
async def create_request(
    request: Request,
    ctx: Ctx,
    user: Annotated[Caller, Depends(user_with("researcher"))],
    _: Csrf,
) -> Response:
    form = await request.form()
    chosen = [str(v) for v in form.getlist("resource")]
    title = str(form.get("title", "")).strip()
    candidates = [
        {
            "provider": p,
            "id": d,
            "name": str(form.get(f"name:{p}:{d}", d)),
            "checked": True,
            "value": f"{p}:{d}",
        }
        for p, _, d in (v.partition(":") for v in chosen)
    ]
    try:
        access = _form_from(form)
    except ValidationError as exc:
        return _new_page(request, ctx, user, candidates, 422, _errors(exc), title)
    if not chosen:
        return _new_page(
            request, ctx, user, candidates, 422, "choose at least one dataset", title, access
        )
    try:
        req = NegotiationCreate(
            title=title or "Access request",
            resources=[
                ResourceRef(id=c["id"], name=c["name"], provider=c["provider"]) for c in candidates
            ],
            form=access,
        )
        neg = await _call(service.create, ctx, who(user), req)
    except ValidationError as exc:
        return _new_page(request, ctx, user, candidates, 422, _errors(exc), title, access)
    except NegotiationError as exc:
        return _new_page(request, ctx, user, candidates, exc.status, exc.message, title, access)
    if form.get("action") == "submit":
        try:
            await _call(service.fire, ctx, who(user), neg["id"], "SUBMIT", "")
        except NegotiationError as exc:
            message = f"Saved as a draft, not submitted yet: {exc.message}."
            return await _detail(request, ctx, user, neg["id"], exc.status, message)
        return RedirectResponse(f"/requests/{neg['id']}?{_done('SUBMIT')}", status_code=303)
    return RedirectResponse(f"/requests/{neg['id']}?done=created", status_code=303)


async def _detail(
    request: Request,
    ctx: HubContext,
    user: Caller,
    nid: str,
    status_code: int = 200,
    error: str = "",
) -> Response:
    try:
        neg = await _call(service.get, ctx, who(user), nid)
        comments = await _call(service.comments, ctx, who(user), nid)
        documents = await _call(service.attachments, ctx, who(user), nid)
    except NegotiationError as exc:
        return render(
            request, ctx, "error.html", user, exc.status, title="Not found", message=exc.message
        )
    for res in neg["resources"]:
        res["actions"] = resource_actions(user, neg, res)
    caller = who(user)
    for visa in neg["visas"]:  # the test service.revoke applies
        visa["revocable"] = visa["revoked_at"] is None and (
            caller.admin or caller.dac_of(visa["provider"])
        )
    return render(
        request,
        ctx,
        "request.html",
        user,
        status_code,
        title=neg["title"],
        error=_in_words(error),
        flash="" if error else event_notice(request.query_params, neg),
        neg=neg,
        actions=negotiation_actions(user, neg),
        comments=comments,
        documents=documents,
        may_attach=neg["owner"] == user.username
        and neg["state"] not in lc.FINAL_NEGOTIATION_STATES,
        editable=neg["owner"] == user.username and neg["state"] == lc.NegotiationState.DRAFT,
        form=AccessForm.model_validate(neg["form"]),
        labels=FIELD_LABELS,
        event_labels=EVENT_LABELS,
        grave=GRAVE,
        primary=PRIMARY,
        duo_terms=DUO_TERMS,
        primary_duo=PRIMARY_DUO,
    )


@router.get("/requests/{nid}", response_class=HTMLResponse)
async def request_page(request: Request, nid: str, ctx: Ctx, user: AnyUser) -> Response:
    return await _detail(request, ctx, user, nid)


async def _act(
    request: Request,
    ctx: HubContext,
    user: Caller,
    nid: str,
    action: Callable[[Any], Awaitable[None]],
    done: str,
) -> Response:
    """Run one change of a request from its form; on refusal, the request page again with
    the reason (and the status the API would give), else back to where the user was."""
    form = await request.form()
    try:
        await action(form)
    except ValidationError as exc:
        return await _detail(request, ctx, user, nid, 422, _errors(exc))
    except NegotiationError as exc:
        return await _detail(request, ctx, user, nid, exc.status, exc.message)
    return RedirectResponse(done, status_code=303)


@router.post("/requests/{nid}/form", response_class=HTMLResponse)
async def edit_form(request: Request, nid: str, ctx: Ctx, user: AnyUser, _: Csrf) -> Response:
    async def action(form: Any) -> None:
        await _call(service.update_form, ctx, who(user), nid, _form_from(form))
        if form.get("action") == "submit":
            await _call(service.fire, ctx, who(user), nid, "SUBMIT", "")

    submit = (await request.form()).get("action") == "submit"
    done = _done("SUBMIT") if submit else "done=updated"
    return await _act(request, ctx, user, nid, action, f"/requests/{nid}?{done}")


@router.post("/requests/{nid}/event", response_class=HTMLResponse)
async def event(request: Request, nid: str, ctx: Ctx, user: AnyUser, _: Csrf) -> Response:
    async def action(form: Any) -> None:
        event, note = str(form.get("event", "")), str(form.get("note", ""))[:10_000]
        await _call(service.fire, ctx, who(user), nid, event, note)

    done = _done(str((await request.form()).get("event", "")))
    return await _act(request, ctx, user, nid, action, f"/requests/{nid}?{done}")


@router.post("/requests/{nid}/resources/{row}/event", response_class=HTMLResponse)
async def resource_event(
    request: Request, nid: str, row: DbId, ctx: Ctx, user: AnyUser, _: Csrf
) -> Response:
    async def action(form: Any) -> None:
        days = str(form.get("grant_days", "")).strip()
        req = ResourceEventRequest(
            event=str(form.get("event", "")),
            note=str(form.get("note", "")),
            conditions=str(form.get("conditions", "")),
            grant_days=days or None,  # validated by the model: 1 to 3650 days
        )
        await _call(service.resource_fire, ctx, who(user), nid, row, req)

    form = await request.form()
    query = _done(str(form.get("event", "")), row)
    if form.get("back", "") == "inbox":
        done = f"/inbox?{query}&request={quote(nid)}"
    else:
        done = f"/requests/{nid}?{query}"
    return await _act(request, ctx, user, nid, action, done)


@router.post("/requests/{nid}/visas/{jti}/revoke", response_class=HTMLResponse)
async def revoke_visa(
    request: Request, nid: str, jti: str, ctx: Ctx, user: AnyUser, _: Csrf
) -> Response:
    """A DAC member of the visa's provider, or an admin, withdraws a grant (with a reason,
    which the researcher is sent); nodes refuse the visa from their next revocation list."""

    async def action(form: Any) -> None:
        req = RevokeRequest(reason=str(form.get("reason", "")).strip())
        await _call(service.revoke, ctx, who(user), jti, req.reason)

    return await _act(request, ctx, user, nid, action, f"/requests/{nid}?done=revoked#visas")


@router.post("/requests/{nid}/attachments", response_class=HTMLResponse)
async def attach(request: Request, nid: str, ctx: Ctx, user: AnyUser, _: Csrf) -> Response:
    """The researcher adds a document (the ethics approval, a protocol) for the DACs."""

    async def action(form: Any) -> None:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise NegotiationError(422, "choose a file to attach")
        data = await upload.read(service.MAX_ATTACHMENT_BYTES + 1)
        await _call(
            service.add_attachment,
            ctx,
            who(user),
            nid,
            upload.filename,
            upload.content_type or "application/octet-stream",
            data,
        )

    return await _act(request, ctx, user, nid, action, f"/requests/{nid}?done=attached#documents")


@router.get("/requests/{nid}/attachments/{att_id}")
async def download(request: Request, nid: str, att_id: int, ctx: Ctx, user: AnyUser) -> Response:
    """A document of the request, for whoever may see the request (as the API's download:
    never shown inline by the browser)."""
    try:
        att = await _call(service.attachment, ctx, who(user), nid, att_id)
    except NegotiationError as exc:
        return render(
            request, ctx, "error.html", user, exc.status, title="Not found", message=exc.message
        )
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in att.filename)
    return Response(
        att.data,
        media_type="application/octet-stream",
        headers={"content-disposition": f'attachment; filename="{safe}"'},
    )


@router.post("/requests/{nid}/comments", response_class=HTMLResponse)
async def comment(request: Request, nid: str, ctx: Ctx, user: AnyUser, _: Csrf) -> Response:
    async def action(form: Any) -> None:
        provider = str(form.get("provider", "")) or None
        req = CommentRequest(body=str(form.get("body", "")), provider=provider)
        await _call(service.add_comment, ctx, who(user), nid, req)

    done = f"/requests/{nid}?done=commented#comments"
    return await _act(request, ctx, user, nid, action, done)


@router.get("/inbox", response_class=HTMLResponse)
async def inbox(
    request: Request,
    ctx: Ctx,
    user: Annotated[Caller, Depends(user_with())],
) -> Response:
    """What waits for this user's decision: providers' DAC steps, and (admins) reviews."""
    rows = await _call(service.list_for, ctx, who(user))
    waiting: list[dict[str, Any]] = []
    reviews: list[dict[str, Any]] = []
    decided: list[dict[str, Any]] = []
    mine = {r.split(":", 1)[1] for r in user.roles if r.startswith("dac:")}
    for row in rows:
        review = "admin" in user.roles and row["state"] in REVIEW_STATES
        if row["owner"] == user.username or not (review or mine & set(row["providers"])):
            continue  # nothing for this user to decide: skip loading it
        neg = await _call(service.get, ctx, who(user), row["id"])
        if review:
            reviews.append({"neg": neg, "actions": negotiation_actions(user, neg)})
        for res in neg["resources"]:
            if f"dac:{res['provider']}" not in user.roles:
                continue
            res["actions"] = resource_actions(user, neg, res)
            item = {"neg": neg, "res": res}
            (waiting if res["actions"] else decided).append(item)
    decided_neg = next(
        (
            item["neg"]
            for item in waiting + decided
            if item["neg"]["id"] == request.query_params.get("request")
        ),
        None,
    )
    return render(
        request,
        ctx,
        "inbox.html",
        user,
        title="DAC inbox",
        flash=event_notice(request.query_params, decided_neg) if decided_neg else "",
        waiting=waiting,
        reviews=reviews,
        decided=decided[:50],
        event_labels=EVENT_LABELS,
        grave=GRAVE,
        primary=PRIMARY,
    )
