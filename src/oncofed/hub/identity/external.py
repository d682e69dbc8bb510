"""Log-in through an external OpenID Connect provider (Keycloak, Life Science Login, or a
second oncofed hub's embedded issuer), configured by `oidc_issuer` in hub.toml.

Authorization code flow with PKCE (S256), `state` bound to the browser by a cookie, `nonce`
checked in the ID token. The ID token is verified against the provider's JWKS (asymmetric
algorithms only: never `none` or HS*), for our client id and the configured issuer. Roles
come from the `oidc_roles_claim` claim (`eduperson_entitlement` by default) as values
`<oidc_entitlement_prefix><role>`; they are refreshed at every log-in, since the provider
is their source of truth. The callback answers with an oncofed API token, as password
log-in does.
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

import httpx
import jwt
import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from oncofed.hub.admin import AdminError, create_api_token, normalise_roles
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.identity.issuer import s256
from oncofed.hub.identity.models import ExternalIdentity, OidcLogin
from oncofed.hub.models import Account
from oncofed.hub.negotiation.models import Contact
from oncofed.hub.portal.session import set_session
from oncofed.security.envelope import utcnow
from oncofed.security.secrets_ import same_secret, token_hash

router = APIRouter(prefix="/api/auth/oidc", tags=["auth"])
Ctx = Annotated[HubContext, Depends(hub_context)]
BROWSER_COOKIE = "oncofed_oidc"
LOGIN_SECONDS = 600
ALLOWED_ALGS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
TOKEN_DAYS = 7


class ExternalLoginError(Exception):
    pass


def _configured(ctx: HubContext) -> str:
    issuer = ctx.settings.oidc_issuer.rstrip("/")
    if not issuer or not ctx.settings.oidc_client_id:
        raise HTTPException(
            404,
            "no external OIDC provider is configured (oidc_issuer, oidc_client_id in hub.toml);"
            " log in with a password at /api/auth/token",
        )
    return issuer


def redirect_uri(ctx: HubContext) -> str:
    return ctx.settings.url.rstrip("/") + "/api/auth/oidc/callback"


def _discover(ctx: HubContext, issuer: str, cache: dict[str, Any]) -> dict[str, Any]:
    hit = cache.get(issuer)
    if hit and time.monotonic() - hit[0] < 3600:
        return dict(hit[1])
    response = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=15)
    response.raise_for_status()
    meta = dict(response.json())
    if meta.get("issuer", "").rstrip("/") != issuer:
        raise ExternalLoginError(f"the provider says it is {meta.get('issuer')!r}, not {issuer!r}")
    cache[issuer] = (time.monotonic(), meta)
    return meta


def _cache(request: Request) -> dict[str, Any]:
    cache: dict[str, Any] | None = getattr(request.app.state, "oidc_discovery", None)
    if cache is None:
        cache = request.app.state.oidc_discovery = {}
    return cache


def _begin(ctx: HubContext, browser: str) -> tuple[str, str, str]:
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    now = utcnow()
    with ctx.sessions.begin() as s:
        s.execute(sa.delete(OidcLogin).where(OidcLogin.expires_at < now))
        s.add(
            OidcLogin(
                state_hash=token_hash(state),
                browser_hash=token_hash(browser),
                nonce=nonce,
                code_verifier=verifier,
                created_at=now,
                expires_at=now + timedelta(seconds=LOGIN_SECONDS),
            )
        )
    return state, nonce, verifier


@router.get("/login")
async def login(request: Request, ctx: Ctx) -> RedirectResponse:
    """Start a log-in at the external provider (redirects the browser there)."""
    issuer = _configured(ctx)
    try:
        meta = await run_in_threadpool(_discover, ctx, issuer, _cache(request))
    except (httpx.HTTPError, ValueError, ExternalLoginError) as exc:
        raise HTTPException(502, f"the OIDC provider {issuer} is not reachable: {exc}") from exc
    browser = secrets.token_urlsafe(32)
    state, nonce, verifier = await run_in_threadpool(_begin, ctx, browser)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": ctx.settings.oidc_client_id,
            "redirect_uri": redirect_uri(ctx),
            "scope": ctx.settings.oidc_scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        }
    )
    response = RedirectResponse(f"{meta['authorization_endpoint']}?{query}", 302)
    response.set_cookie(
        BROWSER_COOKIE,
        browser,
        max_age=LOGIN_SECONDS,
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back to us
        secure=ctx.settings.url.startswith("https://"),
        path="/api/auth/oidc",
    )
    return response


def _take_login(ctx: HubContext, state: str, browser: str) -> OidcLogin:
    with ctx.sessions.begin() as s:
        row = s.get(OidcLogin, token_hash(state))
        if row is None:
            raise ExternalLoginError("unknown or already used log-in state: start again")
        s.delete(row)  # single use
        if row.expires_at <= utcnow():
            raise ExternalLoginError("the log-in took too long: start again")
        if not browser or not same_secret(row.browser_hash, token_hash(browser)):
            raise ExternalLoginError("this log-in was started in another browser")
        s.expunge(row)
        return row


def _secret(ctx: HubContext) -> str:
    path = ctx.settings.oidc_client_secret_file
    return ctx.settings.resolve(path).read_text().strip() if path else ""


def _verify_id_token(
    ctx: HubContext, meta: dict[str, Any], id_token: str, nonce: str
) -> dict[str, Any]:
    header = jwt.get_unverified_header(id_token)
    if header.get("alg") not in ALLOWED_ALGS:
        raise ExternalLoginError(f"ID token algorithm {header.get('alg')!r} refused")
    keys = httpx.get(meta["jwks_uri"], timeout=15).json().get("keys", [])
    matching = [k for k in keys if header.get("kid") in (None, k.get("kid"))]
    if not matching:
        raise ExternalLoginError("the ID token is signed by a key the provider does not publish")
    jwk = jwt.PyJWK(matching[0])
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            jwk.key,
            algorithms=[header["alg"]],
            audience=ctx.settings.oidc_client_id,
            issuer=meta["issuer"],
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            leeway=60,
        )
    except jwt.PyJWTError as exc:
        raise ExternalLoginError(f"ID token refused: {exc}") from exc
    if not same_secret(str(claims.get("nonce", "")), nonce):
        raise ExternalLoginError("ID token nonce does not match this log-in")
    return claims


def _roles(ctx: HubContext, claims: dict[str, Any]) -> list[str]:
    values = claims.get(ctx.settings.oidc_roles_claim, [])
    values = [values] if isinstance(values, str) else values
    prefix = ctx.settings.oidc_entitlement_prefix
    roles: list[str] = []
    for value in values if isinstance(values, list) else []:
        if isinstance(value, str) and value.startswith(prefix):
            try:
                roles += normalise_roles([value[len(prefix) :]])
            except AdminError:
                continue  # an entitlement we do not know grants nothing
    return list(dict.fromkeys(roles))


def _account_for(ctx: HubContext, issuer: str, claims: dict[str, Any], roles: list[str]) -> str:
    now = utcnow()
    subject = str(claims["sub"])
    with ctx.sessions.begin() as s:
        link = s.get(ExternalIdentity, (issuer, subject))
        if link is None:
            host = urlsplit(issuer).netloc
            base = str(claims.get("preferred_username") or subject)[:120]
            name = f"{base}@{host}"[:190]
            taken = s.scalar(sa.select(Account).where(Account.username == name))
            if taken is not None:
                name = f"{name}-{secrets.token_hex(3)}"
            s.add(
                Account(username=name, password_hash=None, roles={"roles": roles}, created_at=now)
            )
            link = ExternalIdentity(
                issuer=issuer, subject=subject, username=name, last_login_at=now
            )
            s.add(link)
        else:
            link.last_login_at = now
            account = s.scalar(sa.select(Account).where(Account.username == link.username))
            if account is None or account.disabled:
                raise ExternalLoginError("this account is disabled at the hub")
            account.roles = {"roles": roles}
        email = claims.get("email")
        if isinstance(email, str) and "@" in email:
            contact = s.get(Contact, link.username)
            if contact is None:
                s.add(Contact(username=link.username, email=email[:320]))
            else:
                contact.email = email[:320]
        return link.username


def _finish(
    ctx: HubContext, cache: dict[str, Any], code: str, state: str, browser: str
) -> dict[str, Any]:
    issuer = _configured(ctx)
    pending = _take_login(ctx, state, browser)
    meta = _discover(ctx, issuer, cache)
    response = httpx.post(
        meta["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri(ctx),
            "client_id": ctx.settings.oidc_client_id,
            "client_secret": _secret(ctx),
            "code_verifier": pending.code_verifier,
        },
        headers={"accept": "application/json"},
        timeout=15,
    )
    if response.status_code != 200:
        raise ExternalLoginError(f"the provider refused the code: {response.text[:300]}")
    tokens = response.json()
    claims = _verify_id_token(ctx, meta, str(tokens.get("id_token", "")), pending.nonce)
    if ctx.settings.oidc_roles_claim not in claims and meta.get("userinfo_endpoint"):
        info = httpx.get(
            meta["userinfo_endpoint"],
            headers={"authorization": f"Bearer {tokens.get('access_token', '')}"},
            timeout=15,
        )
        if info.status_code == 200 and info.json().get("sub") == claims["sub"]:
            claims = {**info.json(), **claims}
    roles = _roles(ctx, claims)
    username = _account_for(ctx, issuer, claims, roles)
    token = create_api_token(ctx.engine, username, name=f"oidc:{issuer}", days=TOKEN_DAYS)
    ctx.audit.append(
        username, "auth.oidc_login", "allow", issuer, "", {"sub": claims["sub"], "roles": roles}
    )
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": TOKEN_DAYS * 24 * 3600,
        "username": username,
        "roles": roles,
    }


@router.get("/callback")
async def callback(
    request: Request, ctx: Ctx, code: str = "", state: str = "", error: str = ""
) -> Any:
    """The provider sends the browser back here. A browser (Accept: text/html) is logged in
    to the portal with a session cookie; a CLI or script gets the API token as JSON."""
    if error:
        raise HTTPException(401, f"the OIDC provider refused the log-in: {error[:200]}")
    browser = request.cookies.get(BROWSER_COOKIE, "")
    try:
        result: dict[str, Any] = await run_in_threadpool(
            _finish, ctx, _cache(request), code, state, browser
        )
    except (ExternalLoginError, httpx.HTTPError, ValueError, KeyError, jwt.PyJWTError) as exc:
        await run_in_threadpool(
            ctx.audit.append, "?", "auth.oidc_login", "deny", ctx.settings.oidc_issuer, str(exc)
        )
        raise HTTPException(401, f"OIDC log-in failed: {exc}") from exc
    if "text/html" in request.headers.get("accept", ""):
        response = RedirectResponse("/", status_code=303)
        set_session(response, result["access_token"], ctx.settings.url.startswith("https://"))
        return response
    return result
