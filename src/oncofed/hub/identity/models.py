"""Tables of the embedded OIDC issuer (clients, authorisation codes) and of external log-in
(pending log-ins, linked external identities). Created by migration 0002."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from oncofed.hub.models import Base


class OidcClient(Base):
    __tablename__ = "oidc_client"
    client_id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    secret_hash: Mapped[str | None] = mapped_column(sa.String(64))  # None: public (PKCE) client
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    redirect_uris: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"uris": [...]}
    created_at: Mapped[datetime]


class OidcCode(Base):
    __tablename__ = "oidc_code"
    code_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(sa.String(100))
    username: Mapped[str] = mapped_column(sa.String(200))
    redirect_uri: Mapped[str] = mapped_column(sa.String(1000))
    scope: Mapped[str] = mapped_column(sa.String(500), default="openid")
    nonce: Mapped[str | None] = mapped_column(sa.String(200))
    code_challenge: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class OidcLogin(Base):
    """A log-in through an external provider that is under way (state → PKCE verifier)."""

    __tablename__ = "oidc_login"
    state_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    browser_hash: Mapped[str] = mapped_column(sa.String(64))
    nonce: Mapped[str] = mapped_column(sa.String(200))
    code_verifier: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ExternalIdentity(Base):
    __tablename__ = "external_identity"
    issuer: Mapped[str] = mapped_column(sa.String(500), primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(200))
    last_login_at: Mapped[datetime]
