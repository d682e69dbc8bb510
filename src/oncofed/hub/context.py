"""What a running hub holds: settings, database, signing key, audit log, channel."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from oncofed.hub.analysis.runs import AnalysisRuns


def _analysis_runs() -> AnalysisRuns:
    from oncofed.hub.analysis.runs import AnalysisRuns

    return AnalysisRuns()


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
    # Tier 3: analysis runs driven by this hub process (issue 19).
    analyses: AnalysisRuns = field(default_factory=_analysis_runs)


def hub_context(request: Request) -> HubContext:
    ctx: HubContext = request.app.state.hub
    return ctx
