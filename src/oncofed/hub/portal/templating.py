"""Rendering portal pages: one Jinja environment, and what every page needs to know."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from oncofed import __version__
from oncofed.hub.auth import Caller
from oncofed.hub.context import HubContext
from oncofed.hub.negotiation import lifecycle as lc
from oncofed.hub.portal.session import csrf_token, session_token

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


def _when(value: Any) -> str:
    """A timestamp as people read it: '3 min ago' for recent ones, else the UTC date."""
    if value is None or value == "":
        return "never"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - value).total_seconds()
    if 0 <= seconds < 60:
        return "just now"
    if 0 <= seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if 0 <= seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return str(value.strftime("%Y-%m-%d %H:%M UTC"))


def _state_class(state: str) -> str:
    s = state.upper()
    if any(w in s for w in ("DECLINED", "ABANDONED", "UNAVAILABLE", "NOT_MADE", "UNREACHABLE")):
        return "bad"
    if any(w in s for w in ("FAILED", "TIMED_OUT", "REFUSED", "REVOKED")):
        return "bad"
    if any(w in s for w in ("MADE_AVAILABLE", "APPROVED", "SUCCEEDED", "ENROLLED", "CONCLUDED")):
        return "good"
    if any(w in s for w in ("AVAILABLE", "CONDITIONS_MET", "IN_PROGRESS")):
        return "good"
    return "wait"


def _words(value: str) -> str:
    return value.replace("_", " ").lower()


# A node's status in a task, as a researcher reads it (the API keeps the channel's names).
STATUS_WORDS = {
    "pending": "waiting",
    "claimed": "working",
    "succeeded": "answered",
    "failed": "failed",
    "timed_out": "no answer in time",
    "refused": "refused by its policy",
}


def _status_words(value: str) -> str:
    return STATUS_WORDS.get(value, _words(value))


templates.env.filters["when"] = _when
templates.env.filters["state_words"] = lc.state_words
templates.env.filters["event_words"] = lc.event_words
templates.env.filters["status_words"] = _status_words
templates.env.filters["state_class"] = _state_class
templates.env.filters["words"] = _words
templates.env.globals["urlencode"] = urlencode


# Notices a redirect asks for (`?done=saved`): fixed texts, never text from the address.
NOTICES = {
    "saved": "Saved. Share the link below with colleagues.",
    "deleted": "Deleted.",
    "edited": "Saved: the catalogue shows your changes now.",
    "created": "Draft created. Fill in what is missing, then submit.",
    "updated": "Changes saved.",
    "commented": "Comment added.",
    "attached": "Document attached: the providers' data access committees can read it here.",
    "revoked": "Visa revoked: nodes refuse it from their next revocation list (within a minute).",
}


def render(
    request: Request,
    ctx: HubContext,
    name: str,
    user: Caller | None,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    if not values.get("flash"):
        values["flash"] = NOTICES.get(request.query_params.get("done", ""), "")
    session = session_token(request)
    roles = user.roles if user else frozenset()
    page = {
        "request": request,
        "hub_name": ctx.settings.name,
        "version": __version__,
        "user": user,
        "is_admin": "admin" in roles,
        "is_researcher": bool(user and user.has("researcher")),
        "dac_of": sorted(r.split(":", 1)[1] for r in roles if r.startswith("dac:")),
        "csrf": csrf_token(session) if session and user else "",
        "path": request.url.path,
        **values,
    }
    return templates.TemplateResponse(request, name, page, status_code=status_code)
