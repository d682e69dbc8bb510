"""Portal sessions: the browser holds an oncofed API token in an HttpOnly cookie.

Using the API token itself (rather than a second kind of session) means one place decides who
a caller is, one revocation (`oncofed hub user revoke-tokens`) ends both CLI and browser
sessions, and the audit log names the same user either way. The cookie is HttpOnly and
SameSite=Lax (Secure when the hub is served over https); every state-changing form carries a
CSRF token derived from the session token, which a page of another site cannot read.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from oncofed.hub.auth import Caller, lookup_token
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.routes.auth import PORTAL_TOKEN_DAYS

COOKIE = "oncofed_session"


class LoginRequired(Exception):
    """Raised by a page that needs a user; the portal answers with a redirect to /login."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class PortalDenied(Exception):
    """A logged-in user without the role a page needs: a 403 page that says which role."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def session_token(request: Request) -> str:
    return request.cookies.get(COOKIE, "")


def csrf_token(session: str) -> str:
    """A per-session secret for forms: only pages served to this session can embed it."""
    return hmac.new(session.encode(), b"oncofed-portal-csrf", hashlib.sha256).hexdigest()[:32]


def set_session(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=PORTAL_TOKEN_DAYS * 24 * 3600,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/")


async def optional_user(
    request: Request, ctx: Annotated[HubContext, Depends(hub_context)]
) -> Caller | None:
    token = session_token(request)
    if not token:
        return None
    return await run_in_threadpool(lookup_token, ctx, token)


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(target, safe='')}"


def user_with(*roles: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the logged-in user, who must hold one of `roles` (any user if none)."""

    async def dependency(
        request: Request, user: Annotated[Caller | None, Depends(optional_user)]
    ) -> Caller:
        if user is None:
            raise LoginRequired(login_url(request))
        if roles and not user.has(*roles):
            raise PortalDenied(
                f"This page needs the role {' or '.join(roles)}; you are signed in as "
                f"{user.username} ({', '.join(sorted(user.roles)) or 'no roles'}). "
                "Ask the hub admin for the role."
            )
        return user

    return dependency


async def check_csrf(request: Request) -> None:
    """Refuse a form post that did not come from a page this session was served."""
    form = await request.form()
    sent = str(form.get("csrf", ""))
    session = session_token(request)
    if not session or not hmac.compare_digest(sent, csrf_token(session)):
        raise HTTPException(
            403, "the form expired or came from another site; reload the page and try again"
        )
