"""Notifications by e-mail: queued in the `mail_outbox` table inside the transaction that
caused them, delivered by a background job over SMTP, or, when no SMTP server is configured,
written to the hub's log outbox (`mail-outbox.log` in the hub directory, JSON lines).

Reminders go to a provider's DAC that has not answered a request for
`negotiation_reminder_seconds`.
"""

from __future__ import annotations

import json
import logging
import smtplib
from datetime import timedelta
from email.message import EmailMessage

import sqlalchemy as sa
from sqlalchemy.orm import Session

from oncofed.hub.context import HubContext
from oncofed.hub.models import Account
from oncofed.hub.negotiation.lifecycle import AWAITING_DAC, NegotiationState
from oncofed.hub.negotiation.models import (
    Contact,
    Negotiation,
    NegotiationResource,
    OutboxMessage,
)
from oncofed.security.envelope import iso, utcnow

log = logging.getLogger("oncofed.hub.mail")
OUTBOX_FILE = "mail-outbox.log"


def dac_members(s: Session, node_name: str) -> list[str]:
    """Usernames holding the role `dac:<node>` (DAC members of that provider)."""
    wanted = f"dac:{node_name}"
    return sorted(
        a.username
        for a in s.scalars(sa.select(Account).where(Account.disabled.is_(False)))
        if wanted in a.roles.get("roles", [])
    )


def enqueue(s: Session, to_user: str, subject: str, body: str) -> None:
    contact = s.get(Contact, to_user)
    s.add(
        OutboxMessage(
            to_user=to_user,
            to_addr=contact.email if contact else "",
            subject=subject[:300],
            body=body,
            created_at=utcnow(),
        )
    )


def _send_smtp(ctx: HubContext, msg: OutboxMessage) -> None:
    st = ctx.settings
    email = EmailMessage()
    email["From"] = st.smtp_from or f"oncofed@{st.host}"
    email["To"] = msg.to_addr
    email["Subject"] = msg.subject
    email.set_content(msg.body)
    with smtplib.SMTP(st.smtp_host, st.smtp_port, timeout=30) as smtp:
        if st.smtp_starttls:
            smtp.starttls()
        password_file = st.resolve(st.smtp_password_file) if st.smtp_password_file else None
        if st.smtp_user and password_file is not None:
            smtp.login(st.smtp_user, password_file.read_text().strip())
        smtp.send_message(email)


def deliver_pending(ctx: HubContext, limit: int = 100) -> int:
    """Send (or write to the log outbox) queued messages; returns how many went out."""
    with ctx.sessions.begin() as s:
        pending = list(
            s.scalars(
                sa.select(OutboxMessage)
                .where(OutboxMessage.sent_at.is_(None), OutboxMessage.error.is_(None))
                .order_by(OutboxMessage.id)
                .limit(limit)
            )
        )
        sent = 0
        for msg in pending:
            try:
                if ctx.settings.smtp_host and msg.to_addr:
                    _send_smtp(ctx, msg)
                else:
                    line = {
                        "at": iso(utcnow()),
                        "to_user": msg.to_user,
                        "to": msg.to_addr,
                        "subject": msg.subject,
                        "body": msg.body,
                    }
                    path = ctx.settings.resolve(OUTBOX_FILE)
                    with path.open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps(line, sort_keys=True) + "\n")
                msg.sent_at = utcnow()
                sent += 1
            except (OSError, smtplib.SMTPException) as exc:
                msg.error = f"{type(exc).__name__}: {exc}"[:2000]
                log.warning("mail to %s failed: %s", msg.to_user, msg.error)
        return sent


def send_reminders(ctx: HubContext) -> int:
    """Remind DACs that owe an answer; at most once per reminder period per resource."""
    period = timedelta(seconds=ctx.settings.negotiation_reminder_seconds)
    now = utcnow()
    count = 0
    with ctx.sessions.begin() as s:
        rows = s.execute(
            sa.select(NegotiationResource, Negotiation)
            .join(Negotiation, Negotiation.id == NegotiationResource.negotiation_id)
            .where(
                Negotiation.state == NegotiationState.IN_PROGRESS.value,
                NegotiationResource.state.in_([st.value for st in AWAITING_DAC]),
            )
        ).all()
        for res, neg in rows:
            last = max(res.updated_at, res.reminded_at or res.updated_at)
            if now - last < period:
                continue
            members = dac_members(s, res.node_name)
            for user in members:
                enqueue(
                    s,
                    user,
                    f"[oncofed] reminder: access request {neg.id} awaits your decision",
                    f"The request '{neg.title}' by {neg.owner} for dataset {res.resource_id} "
                    f"at {res.node_name} has been {res.state} since {iso(res.updated_at)}.\n"
                    f"Please decide: {ctx.settings.url}/requests/{neg.id}\n",
                )
            res.reminded_at = now
            ctx.audit.append(
                "hub",
                "negotiation.reminder",
                "info",
                target=neg.id,
                details={"resource": res.resource_id, "node": res.node_name, "to": members},
                con=s.connection(),
            )
            count += 1
    return count


async def mail_loop(ctx: HubContext, interval: float = 2.0) -> None:
    """Background job of the hub: deliver queued mail, send reminders when due."""
    import asyncio

    from fastapi.concurrency import run_in_threadpool

    reminder_every = max(1.0, min(60.0, ctx.settings.negotiation_reminder_seconds / 2))
    since_reminders = reminder_every
    while True:
        try:
            if since_reminders >= reminder_every:
                await run_in_threadpool(send_reminders, ctx)
                since_reminders = 0.0
            await run_in_threadpool(deliver_pending, ctx)
        except Exception:  # keep going; the error is in the log
            log.exception("mail job failed")
        await asyncio.sleep(interval)
        since_reminders += interval
