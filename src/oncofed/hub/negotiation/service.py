"""Access negotiation on the hub's database: every change in one transaction together with
its event row, its audit entry and the notifications it causes.

Who may do what (on top of the lifecycle tables):
- the researcher who owns a request edits it while it is a draft (or returned for
  resubmission), submits, starts, pauses, abandons and concludes it, and answers a DAC's
  access conditions;
- a hub admin reviews it (APPROVE / DECLINE) and may pause, abandon or conclude it, but never
  decides on a provider's resource: only that provider's DAC (role `dac:<node>`) does;
- DAC members and data holders (`data_holder:<node>`) of a provider see the requests that
  name their provider's datasets once submitted; others get 404, not 403, so request ids
  reveal nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from oncofed.hub.context import HubContext
from oncofed.hub.models import Node
from oncofed.hub.negotiation import lifecycle as lc
from oncofed.hub.negotiation.forms import (
    AccessForm,
    CommentRequest,
    NegotiationCreate,
    ResourceEventRequest,
    ResourceRef,
)
from oncofed.hub.negotiation.mail import dac_members, enqueue
from oncofed.hub.negotiation.models import (
    Negotiation,
    NegotiationAttachment,
    NegotiationComment,
    NegotiationEventRow,
    NegotiationResource,
    VisaGrant,
)
from oncofed.security.envelope import iso, utcnow
from oncofed.security.visas import sign_visa, visa_claims

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


class NegotiationError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Who:
    username: str
    roles: frozenset[str]

    @property
    def admin(self) -> bool:
        return "admin" in self.roles

    def dac_of(self, node_name: str) -> bool:
        return f"dac:{node_name}" in self.roles

    def holder_of(self, node_name: str) -> bool:
        return f"data_holder:{node_name}" in self.roles


# -- reading --------------------------------------------------------------------------------


def _resources(s: Session, nid: str) -> list[NegotiationResource]:
    return list(
        s.scalars(
            sa.select(NegotiationResource)
            .where(NegotiationResource.negotiation_id == nid)
            .order_by(NegotiationResource.id)
        )
    )


def _can_see(who: Who, neg: Negotiation, resources: list[NegotiationResource]) -> bool:
    if who.admin or neg.owner == who.username:
        return True
    if neg.state == lc.NegotiationState.DRAFT:
        return False
    return any(who.dac_of(r.node_name) or who.holder_of(r.node_name) for r in resources)


def _load(s: Session, who: Who, nid: str) -> tuple[Negotiation, list[NegotiationResource]]:
    neg = s.get(Negotiation, nid)
    resources = _resources(s, nid) if neg is not None else []
    if neg is None or not _can_see(who, neg, resources):
        raise NegotiationError(404, f"no access request {nid}")
    return neg, resources


def _view(s: Session, neg: Negotiation, resources: list[NegotiationResource]) -> dict[str, Any]:
    events = s.scalars(
        sa.select(NegotiationEventRow)
        .where(NegotiationEventRow.negotiation_id == neg.id)
        .order_by(NegotiationEventRow.id)
    )
    # The visas the request's grants issued: what a DAC member or admin revokes (by jti).
    grants = s.scalars(
        sa.select(VisaGrant).where(VisaGrant.negotiation_id == neg.id).order_by(VisaGrant.issued_at)
    )
    by_row = {r.id: r for r in resources}
    return {
        "id": neg.id,
        "title": neg.title,
        "owner": neg.owner,
        "state": neg.state,
        "allowed_events": lc.allowed_negotiation_events(neg.state),
        "form": neg.form,
        "missing": AccessForm.model_validate(neg.form).missing(),
        "source": neg.source,
        "created_at": iso(neg.created_at),
        "updated_at": iso(neg.updated_at),
        "resources": [
            {
                "row": r.id,
                "id": r.resource_id,
                "name": r.name,
                "provider": r.node_name,
                "state": r.state,
                "allowed_events": lc.allowed_resource_events(r.state),
                "conditions": r.conditions,
                "updated_at": iso(r.updated_at),
            }
            for r in resources
        ],
        "history": [
            {
                "at": iso(e.at),
                "actor": e.actor,
                "event": e.event,
                "resource_row": e.resource_row,
                # Which provider's dataset a resource event is about (None: the request).
                "provider": by_row[e.resource_row].node_name if e.resource_row in by_row else None,
                "dataset": by_row[e.resource_row].resource_id if e.resource_row in by_row else None,
                "from": e.from_state,
                "to": e.to_state,
                "note": e.note,
            }
            for e in events
        ],
        "visas": [
            {
                "jti": g.jti,
                "dataset": g.dataset,
                "provider": g.claims.get("oncofed", {}).get("node", ""),
                "subject": g.subject,
                "issued_at": iso(g.issued_at),
                "expires_at": iso(g.expires_at),
                "revoked_at": iso(g.revoked_at) if g.revoked_at else None,
                "revoked_reason": g.revoked_reason,
            }
            for g in grants
        ],
    }


def get(ctx: HubContext, who: Who, nid: str) -> dict[str, Any]:
    with ctx.sessions() as s:
        neg, resources = _load(s, who, nid)
        return _view(s, neg, resources)


def list_for(ctx: HubContext, who: Who) -> list[dict[str, Any]]:
    with ctx.sessions() as s:
        # Two queries, not one per request: the portal's lists and inbox call this often.
        by_negotiation: dict[str, list[NegotiationResource]] = {}
        for r in s.scalars(sa.select(NegotiationResource).order_by(NegotiationResource.id)):
            by_negotiation.setdefault(r.negotiation_id, []).append(r)
        out = []
        for neg in s.scalars(sa.select(Negotiation).order_by(Negotiation.created_at.desc())):
            resources = by_negotiation.get(neg.id, [])
            if _can_see(who, neg, resources):
                out.append(
                    {
                        "id": neg.id,
                        "title": neg.title,
                        "owner": neg.owner,
                        "state": neg.state,
                        "providers": sorted({r.node_name for r in resources}),
                        "updated_at": iso(neg.updated_at),
                    }
                )
        return out


# -- creating and editing ------------------------------------------------------------------


def _resolve_nodes(s: Session, refs: list[ResourceRef]) -> list[tuple[ResourceRef, Node]]:
    nodes = {n.name: n for n in s.scalars(sa.select(Node).where(Node.status == "enrolled"))}
    out = []
    for ref in refs:
        provider = ref.provider_name()
        if provider is None or provider not in nodes:
            known = ", ".join(sorted(nodes)) or "none enrolled yet"
            what = f"provider {provider!r} is not an enrolled node" if provider else "no provider"
            raise NegotiationError(
                422, f"resource {ref.id!r}: {what}; name one of the nodes ({known})"
            )
        out.append((ref, nodes[provider]))
    return out


def create(
    ctx: HubContext,
    who: Who,
    req: NegotiationCreate,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    now = utcnow()
    nid = f"neg-{secrets.token_hex(8)}"
    with ctx.sessions.begin() as s:
        pairs = _resolve_nodes(s, req.resources)
        seen = {(ref.id, node.id) for ref, node in pairs}
        if len(seen) != len(pairs):
            raise NegotiationError(422, "a resource is named twice")
        neg = Negotiation(
            id=nid,
            owner=who.username,
            title=req.title,
            state=lc.NegotiationState.DRAFT.value,
            form=req.form.model_dump(),
            source=source or {},
            created_at=now,
            updated_at=now,
        )
        s.add(neg)
        s.flush()
        for ref, node in pairs:
            s.add(
                NegotiationResource(
                    negotiation_id=nid,
                    resource_id=ref.id,
                    name=ref.name,
                    node_id=node.id,
                    node_name=node.name,
                    state=lc.ResourceState.SUBMITTED.value,
                    conditions="",
                    updated_at=now,
                )
            )
        ctx.audit.append(
            who.username,
            "negotiation.create",
            "info",
            target=nid,
            details={"datasets": [f"{n.name}:{r.id}" for r, n in pairs], **(source or {})},
            con=s.connection(),
        )
        s.flush()
        return _view(s, neg, _resources(s, nid))


def update_form(ctx: HubContext, who: Who, nid: str, form: AccessForm) -> dict[str, Any]:
    with ctx.sessions.begin() as s:
        neg, resources = _load(s, who, nid)
        if neg.owner != who.username:
            raise NegotiationError(403, "only the researcher who made the request edits it")
        returned = any(r.state == lc.ResourceState.RETURNED_FOR_RESUBMISSION for r in resources)
        if neg.state != lc.NegotiationState.DRAFT and not returned:
            raise NegotiationError(
                409,
                f"the request is {neg.state}; it can be edited only as a DRAFT or when a "
                "provider returned it for resubmission",
            )
        neg.form = form.model_dump()
        neg.updated_at = utcnow()
        ctx.audit.append(who.username, "negotiation.edit", "info", target=nid, con=s.connection())
        return _view(s, neg, resources)


# -- lifecycle ------------------------------------------------------------------------------


def _record(
    s: Session,
    nid: str,
    actor: str,
    event: str,
    from_state: str,
    to_state: str,
    note: str = "",
    resource_row: int | None = None,
) -> None:
    s.add(
        NegotiationEventRow(
            negotiation_id=nid,
            resource_row=resource_row,
            actor=actor,
            event=event,
            from_state=from_state,
            to_state=to_state,
            note=note,
            at=utcnow(),
        )
    )


def _deny(ctx: HubContext, who: Who, action: str, nid: str, message: str, status: int) -> None:
    ctx.audit.append(who.username, action, "deny", target=nid, reason=message)
    raise NegotiationError(status, message)


def fire(ctx: HubContext, who: Who, nid: str, event: str, note: str = "") -> dict[str, Any]:
    """Fire a negotiation-level event (SUBMIT, APPROVE, START, ...)."""
    problem: tuple[str, int] | None = None
    with ctx.sessions.begin() as s:
        neg, resources = _load(s, who, nid)
        # Order of checks: a known event (422), the caller's right to fire it (403), then
        # whether the lifecycle allows it now (409).
        try:
            ev = lc.NegotiationEvent(event)
        except ValueError:
            names = ", ".join(e.value for e in lc.NegotiationEvent)
            problem = (f"unknown negotiation event {event!r}; one of {names}", 422)
        else:
            roles = lc.NEGOTIATION_ACTORS[ev]
            as_owner = "owner" in roles and neg.owner == who.username
            as_admin = "admin" in roles and who.admin
            if not (as_owner or as_admin):
                whom = " or ".join(sorted(roles)).replace("owner", "the requesting researcher")
                problem = (f"only {whom} may {ev.value} this request", 403)
            else:
                try:
                    new_state = lc.negotiation_step(neg.state, ev)
                except lc.TransitionError as exc:
                    problem = (str(exc), 409)
                else:
                    missing = AccessForm.model_validate(neg.form).missing()
                    if ev == lc.NegotiationEvent.SUBMIT and missing:
                        problem = (f"fill in before submitting: {', '.join(missing)}", 422)
        if problem is None:
            old = neg.state
            neg.state = new_state.value
            neg.updated_at = utcnow()
            _record(s, nid, who.username, ev.value, old, new_state.value, note)
            ctx.audit.append(
                who.username,
                f"negotiation.{ev.value.lower()}",
                "allow",
                target=nid,
                reason=note,
                details={"from": old, "to": new_state.value},
                con=s.connection(),
            )
            _after_negotiation_event(ctx, s, neg, resources, ev, who)
            s.flush()
            return _view(s, neg, _resources(s, nid))
    _deny(ctx, who, f"negotiation.{event.lower()[:40]}", nid, *problem)
    raise AssertionError("unreachable")


def _after_negotiation_event(
    ctx: HubContext,
    s: Session,
    neg: Negotiation,
    resources: list[NegotiationResource],
    ev: lc.NegotiationEvent,
    who: Who,
) -> None:
    link = f"{ctx.settings.url}/requests/{neg.id}"
    if ev == lc.NegotiationEvent.SUBMIT:
        for admin in _admins(s):
            enqueue(s, admin, f"[oncofed] new access request {neg.id}", f"Review it: {link}\n")
    elif ev in (lc.NegotiationEvent.APPROVE, lc.NegotiationEvent.DECLINE):
        enqueue(
            s,
            neg.owner,
            f"[oncofed] access request {neg.id} {neg.state.lower()}",
            f"Your request '{neg.title}' is {neg.state}.\n{link}\n",
        )
    elif ev == lc.NegotiationEvent.START:
        # Contact each provider's DAC; a provider with no DAC member is unreachable.
        now = utcnow()
        for r in resources:
            members = dac_members(s, r.node_name)
            step = lc.ResourceEvent.CONTACT if members else lc.ResourceEvent.MARK_AS_UNREACHABLE
            old = r.state
            r.state = lc.resource_step(old, step).value
            r.updated_at = now
            _record(s, neg.id, "hub", step.value, old, r.state, resource_row=r.id)
            for m in members:
                enqueue(
                    s,
                    m,
                    f"[oncofed] access request {neg.id} for {r.node_name}",
                    f"{neg.owner} asks for dataset {r.resource_id} ('{neg.title}').\n"
                    f"Decide: {link}\n",
                )
    elif ev == lc.NegotiationEvent.ABANDON:
        _revoke_for(ctx, s, neg.id, who.username, "the access request was abandoned")


def _admins(s: Session) -> list[str]:
    from oncofed.hub.models import Account

    return sorted(
        a.username
        for a in s.scalars(sa.select(Account).where(Account.disabled.is_(False)))
        if "admin" in a.roles.get("roles", [])
    )


def resource_fire(
    ctx: HubContext, who: Who, nid: str, row: int, req: ResourceEventRequest
) -> dict[str, Any]:
    """Fire a resource-level event: a DAC decision, or the researcher's answer to one."""
    problem: tuple[str, int] | None = None
    with ctx.sessions.begin() as s:
        neg, resources = _load(s, who, nid)
        res = next((r for r in resources if r.id == row), None)
        if res is None:
            raise NegotiationError(404, f"request {nid} has no resource {row}")
        try:
            ev = lc.ResourceEvent(req.event)
        except ValueError:
            names = ", ".join(e.value for e in lc.ResourceEvent)
            problem = (f"unknown resource event {req.event!r}; one of {names}", 422)
        else:
            roles = lc.RESOURCE_ACTORS[ev]
            allowed = ("dac" in roles and who.dac_of(res.node_name)) or (
                "owner" in roles and neg.owner == who.username
            )
            if not allowed:
                whom = {
                    "dac": f"a DAC member of {res.node_name}",
                    "owner": "the requesting researcher",
                    "system": "the hub itself",
                }
                names = " or ".join(whom[r] for r in sorted(roles))
                problem = (f"only {names} may {ev.value} this resource", 403)
            elif neg.state != lc.NegotiationState.IN_PROGRESS:
                problem = (
                    f"the request is {neg.state}; providers decide only while it is IN_PROGRESS",
                    409,
                )
            else:
                try:
                    path = lc.resource_path(res.state, ev)
                except lc.TransitionError as exc:
                    problem = (str(exc), 409)
        if problem is None:
            # A one-step grant is recorded as the Negotiator's two transitions, each audited.
            for step in path:
                old = res.state
                res.state = lc.resource_step(old, step).value
                res.updated_at = utcnow()
                if step == lc.ResourceEvent.INDICATE_ACCESS_CONDITIONS:
                    res.conditions = req.conditions
                note = req.note if step == path[-1] else ""
                _record(s, nid, who.username, step.value, old, res.state, note, res.id)
                details: dict[str, Any] = {
                    "dataset": res.resource_id,
                    "node": res.node_name,
                    "from": old,
                    "to": res.state,
                }
                if step == lc.ResourceEvent.GRANT_ACCESS_TO_RESOURCE:
                    details["visa"] = _issue_visa(ctx, s, neg, res, who, req.grant_days)
                ctx.audit.append(
                    who.username,
                    f"negotiation.resource.{step.value.lower()}",
                    "allow",
                    target=nid,
                    reason=note,
                    details=details,
                    con=s.connection(),
                )
            to = neg.owner if who.username != neg.owner else None
            recipients = [to] if to else dac_members(s, res.node_name)
            for user in recipients:
                enqueue(
                    s,
                    user,
                    f"[oncofed] {res.node_name}/{res.resource_id}: {lc.state_words(res.state)}",
                    f"{who.username} {lc.event_words(ev.value)} ({res.node_name}/"
                    f"{res.resource_id}) on '{neg.title}'.\n{req.note}\n"
                    f"{ctx.settings.url}/requests/{nid}\n",
                )
            neg.updated_at = utcnow()
            s.flush()
            return _view(s, neg, _resources(s, nid))
    _deny(ctx, who, f"negotiation.resource.{req.event.lower()[:30]}", nid, *problem)
    raise AssertionError("unreachable")


# -- grants ----------------------------------------------------------------------------------


def _issue_visa(
    ctx: HubContext,
    s: Session,
    neg: Negotiation,
    res: NegotiationResource,
    who: Who,
    days: int | None,
) -> str:
    lifetime = timedelta(days=min(days or ctx.settings.visa_lifetime_days, 3650))
    claims = visa_claims(
        issuer=ctx.settings.url,
        subject=neg.owner,
        audience=res.node_id,
        dataset=res.resource_id,
        source=f"{ctx.settings.url}/providers/{res.node_name}/dac",
        lifetime=lifetime,
        extra={
            "node": res.node_name,
            "negotiation": neg.id,
            "duo": list(neg.form.get("duo_codes", [])),
            "conditions": res.conditions,
            "granted_by": who.username,
        },
    )
    s.add(
        VisaGrant(
            jti=claims["jti"],
            subject=neg.owner,
            node_id=res.node_id,
            dataset=res.resource_id,
            negotiation_id=neg.id,
            claims=claims,
            issued_at=utcnow(),
            expires_at=utcnow() + lifetime,
        )
    )
    return str(claims["jti"])


def visa_token(ctx: HubContext, claims: dict[str, Any]) -> str:
    return sign_visa(claims, ctx.key, jku=f"{ctx.settings.url}/api/hub/keys")


def my_visas(ctx: HubContext, who: Who) -> list[dict[str, Any]]:
    """The caller's valid visas, as signed tokens (re-signed from the stored claims)."""
    now = utcnow()
    with ctx.sessions() as s:
        rows = s.scalars(
            sa.select(VisaGrant)
            .where(
                VisaGrant.subject == who.username,
                VisaGrant.revoked_at.is_(None),
                VisaGrant.expires_at > now,
            )
            .order_by(VisaGrant.issued_at)
        )
        return [
            {
                "jti": g.jti,
                "dataset": g.dataset,
                "provider": g.claims.get("oncofed", {}).get("node", ""),
                "negotiation": g.negotiation_id,
                "expires_at": iso(g.expires_at),
                "visa": visa_token(ctx, g.claims),
            }
            for g in rows
        ]


def _revoke_for(ctx: HubContext, s: Session, nid: str, actor: str, reason: str) -> None:
    now = utcnow()
    for g in s.scalars(
        sa.select(VisaGrant).where(VisaGrant.negotiation_id == nid, VisaGrant.revoked_at.is_(None))
    ):
        g.revoked_at, g.revoked_by, g.revoked_reason = now, actor, reason
        ctx.audit.append(
            actor,
            "visa.revoke",
            "info",
            target=g.jti,
            reason=reason,
            details={"dataset": g.dataset, "subject": g.subject, "negotiation": nid},
            con=s.connection(),
        )


def revoke(ctx: HubContext, who: Who, jti: str, reason: str) -> dict[str, Any]:
    """Revoke one visa: a hub admin, or a DAC member of the visa's provider."""
    with ctx.sessions.begin() as s:
        g = s.get(VisaGrant, jti)
        node = str(g.claims.get("oncofed", {}).get("node", "")) if g else ""
        if g is None or not (who.admin or who.dac_of(node)):
            message = f"no visa {jti} that you may revoke"
        elif g.revoked_at is not None:
            return {"jti": jti, "revoked_at": iso(g.revoked_at)}
        else:
            g.revoked_at, g.revoked_by, g.revoked_reason = utcnow(), who.username, reason
            ctx.audit.append(
                who.username,
                "visa.revoke",
                "allow",
                target=jti,
                reason=reason,
                details={"dataset": g.dataset, "subject": g.subject, "node": node},
                con=s.connection(),
            )
            enqueue(
                s,
                g.subject,
                f"[oncofed] your access to {node}/{g.dataset} was revoked",
                f"Reason: {reason}\n",
            )
            return {"jti": jti, "revoked_at": iso(g.revoked_at)}
    _deny(ctx, who, "visa.revoke", jti, message, 404)
    raise AssertionError("unreachable")


def revoked_ids(ctx: HubContext) -> list[str]:
    """Revoked visas that have not yet expired (an expired visa is refused anyway)."""
    with ctx.sessions() as s:
        return list(
            s.scalars(
                sa.select(VisaGrant.jti).where(
                    VisaGrant.revoked_at.is_not(None), VisaGrant.expires_at > utcnow()
                )
            )
        )


# -- comments and attachments ---------------------------------------------------------------


def add_comment(ctx: HubContext, who: Who, nid: str, req: CommentRequest) -> dict[str, Any]:
    with ctx.sessions.begin() as s:
        neg, resources = _load(s, who, nid)
        providers = {r.node_name for r in resources}
        if req.provider is not None and req.provider not in providers:
            raise NegotiationError(422, f"the request names no dataset at {req.provider!r}")
        speaks_for = who.admin or who.username == neg.owner
        if req.provider is not None and not (
            speaks_for or who.dac_of(req.provider) or who.holder_of(req.provider)
        ):
            raise NegotiationError(
                403, f"only the researcher or {req.provider}'s DAC may write to {req.provider}"
            )
        if neg.state in lc.FINAL_NEGOTIATION_STATES:
            raise NegotiationError(409, f"the request is {neg.state}; comments are closed")
        comment = NegotiationComment(
            negotiation_id=nid,
            author=who.username,
            node_name=req.provider,
            body=req.body,
            at=utcnow(),
        )
        s.add(comment)
        ctx.audit.append(
            who.username,
            "negotiation.comment",
            "info",
            target=nid,
            details={"provider": req.provider},
            con=s.connection(),
        )
        if who.username != neg.owner:
            recipients = [neg.owner]
        else:
            targets = [req.provider] if req.provider else sorted(providers)
            recipients = sorted({m for p in targets for m in dac_members(s, p)})
        for user in recipients:
            enqueue(
                s,
                user,
                f"[oncofed] new comment on access request {nid}",
                f"{who.username} wrote:\n\n{req.body}\n\n{ctx.settings.url}/requests/{nid}\n",
            )
        s.flush()
        return {"id": comment.id, "author": who.username, "at": iso(comment.at)}


def _reads(who: Who, neg: Negotiation, c: NegotiationComment) -> bool:
    """A comment addressed to one provider is between the researcher and that provider:
    other providers' DAC members and data holders do not see it."""
    if c.node_name is None or who.admin or who.username in (neg.owner, c.author):
        return True
    return who.dac_of(c.node_name) or who.holder_of(c.node_name)


def comments(ctx: HubContext, who: Who, nid: str) -> list[dict[str, Any]]:
    with ctx.sessions() as s:
        neg, _ = _load(s, who, nid)
        return [
            {
                "id": c.id,
                "author": c.author,
                "provider": c.node_name,
                "body": c.body,
                "at": iso(c.at),
            }
            for c in s.scalars(
                sa.select(NegotiationComment)
                .where(NegotiationComment.negotiation_id == nid)
                .order_by(NegotiationComment.id)
            )
            if _reads(who, neg, c)
        ]


def add_attachment(
    ctx: HubContext, who: Who, nid: str, filename: str, content_type: str, data: bytes
) -> dict[str, Any]:
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise NegotiationError(413, "an attachment may have at most 10 MB")
    name = filename.replace("\\", "/").rsplit("/", 1)[-1][:300] or "attachment"
    with ctx.sessions.begin() as s:
        neg, _ = _load(s, who, nid)
        if neg.owner != who.username:
            raise NegotiationError(403, "only the requesting researcher attaches documents")
        if neg.state in lc.FINAL_NEGOTIATION_STATES:
            raise NegotiationError(409, f"the request is {neg.state}; it takes no attachments")
        att = NegotiationAttachment(
            negotiation_id=nid,
            filename=name,
            content_type=content_type[:200] or "application/octet-stream",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            data=data,
            uploaded_by=who.username,
            at=utcnow(),
        )
        s.add(att)
        s.flush()
        ctx.audit.append(
            who.username,
            "negotiation.attach",
            "info",
            target=nid,
            details={"file": name, "sha256": att.sha256, "size": len(data)},
            con=s.connection(),
        )
        return {"id": att.id, "filename": name, "size": len(data), "sha256": att.sha256}


def attachments(ctx: HubContext, who: Who, nid: str) -> list[dict[str, Any]]:
    with ctx.sessions() as s:
        _load(s, who, nid)
        rows = s.execute(
            sa.select(
                NegotiationAttachment.id,
                NegotiationAttachment.filename,
                NegotiationAttachment.size,
                NegotiationAttachment.sha256,
                NegotiationAttachment.content_type,
            ).where(NegotiationAttachment.negotiation_id == nid)
        )
        return [dict(r._mapping) for r in rows]


def attachment(ctx: HubContext, who: Who, nid: str, att_id: int) -> NegotiationAttachment:
    with ctx.sessions() as s:
        _load(s, who, nid)
        att = s.get(NegotiationAttachment, att_id)
        if att is None or att.negotiation_id != nid:
            raise NegotiationError(404, f"no attachment {att_id}")
        return att
