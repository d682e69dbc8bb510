"""What a running hub holds: settings, database, signing key, audit log, channel."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from oncofed.audit import AuditLog
from oncofed.hub.channel import Channel
from oncofed.hub.login_delay import LoginDelay
from oncofed.hub.notify import Notifier
from oncofed.hub.search import SearchAdmission
from oncofed.security.keys import SigningKey
from oncofed.settings import HubSettings


@dataclass
class HubContext:
    settings: HubSettings
    engine: sa.Engine
    sessions: sessionmaker[Session]
    key: SigningKey
    audit: AuditLog
    channel: Channel
    notifier: Notifier
    search_admission: SearchAdmission
    logins: LoginDelay


def hub_context(request: Request) -> HubContext:
    ctx: HubContext = request.app.state.hub
    return ctx
