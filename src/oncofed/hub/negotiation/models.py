"""Database tables of access negotiation: requests, their resources, events, comments,
attachments, issued grants (visas), e-mail contacts and the notification outbox.

Tables are created by migration 0002; the classes share the hub's declarative `Base`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from oncofed.hub.models import Base


class Negotiation(Base):
    __tablename__ = "negotiation"
    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(200), index=True)
    title: Mapped[str] = mapped_column(sa.String(300), default="")
    state: Mapped[str] = mapped_column(sa.String(30), index=True)
    # Purpose text and GA4GH DUO codes, plus the EUCAIM form fields.
    form: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Where a discovery service handed the request over (Negotiator v3 `url`, `humanReadable`).
    source: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class NegotiationResource(Base):
    __tablename__ = "negotiation_resource"
    id: Mapped[int] = mapped_column(primary_key=True)
    negotiation_id: Mapped[str] = mapped_column(
        sa.ForeignKey("negotiation.id", ondelete="CASCADE"), index=True
    )
    resource_id: Mapped[str] = mapped_column(sa.String(200))  # the dataset id at the provider
    name: Mapped[str] = mapped_column(sa.String(300), default="")
    node_id: Mapped[str] = mapped_column(sa.ForeignKey("node.id"))
    node_name: Mapped[str] = mapped_column(sa.String(200))
    state: Mapped[str] = mapped_column(sa.String(60))
    conditions: Mapped[str] = mapped_column(sa.Text, default="")
    updated_at: Mapped[datetime]
    reminded_at: Mapped[datetime | None]


class NegotiationEventRow(Base):
    __tablename__ = "negotiation_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    negotiation_id: Mapped[str] = mapped_column(
        sa.ForeignKey("negotiation.id", ondelete="CASCADE"), index=True
    )
    resource_row: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    actor: Mapped[str] = mapped_column(sa.String(200))
    event: Mapped[str] = mapped_column(sa.String(60))
    from_state: Mapped[str] = mapped_column(sa.String(60))
    to_state: Mapped[str] = mapped_column(sa.String(60))
    note: Mapped[str] = mapped_column(sa.Text, default="")
    at: Mapped[datetime]


class NegotiationComment(Base):
    __tablename__ = "negotiation_comment"
    id: Mapped[int] = mapped_column(primary_key=True)
    negotiation_id: Mapped[str] = mapped_column(
        sa.ForeignKey("negotiation.id", ondelete="CASCADE"), index=True
    )
    author: Mapped[str] = mapped_column(sa.String(200))
    node_name: Mapped[str | None] = mapped_column(sa.String(200))  # addressed to one provider
    body: Mapped[str] = mapped_column(sa.Text)
    at: Mapped[datetime]


class NegotiationAttachment(Base):
    __tablename__ = "negotiation_attachment"
    id: Mapped[int] = mapped_column(primary_key=True)
    negotiation_id: Mapped[str] = mapped_column(
        sa.ForeignKey("negotiation.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(sa.String(300))
    content_type: Mapped[str] = mapped_column(sa.String(200))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(sa.String(64))
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)
    uploaded_by: Mapped[str] = mapped_column(sa.String(200))
    at: Mapped[datetime]


class VisaGrant(Base):
    """An issued ControlledAccessGrants visa. Only its claims are kept (never the token):
    Ed25519 signatures are deterministic, so the same claims re-sign to the same token."""

    __tablename__ = "visa_grant"
    jti: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(200), index=True)
    node_id: Mapped[str] = mapped_column(sa.String(64))
    dataset: Mapped[str] = mapped_column(sa.String(200))
    negotiation_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    claims: Mapped[dict[str, Any]]
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(sa.String(200))
    revoked_reason: Mapped[str | None] = mapped_column(sa.Text)


class Contact(Base):
    """E-mail address of an account (for notifications); filled by admins or OIDC claims."""

    __tablename__ = "contact"
    username: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320))


class OutboxMessage(Base):
    __tablename__ = "mail_outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    to_user: Mapped[str] = mapped_column(sa.String(200))
    to_addr: Mapped[str] = mapped_column(sa.String(320), default="")
    subject: Mapped[str] = mapped_column(sa.String(300))
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
