"""The hub's embedded OpenID Connect issuer (authorization code flow with PKCE).

The default identity provider for the demo, the tests and small federations: local accounts
(argon2id passwords) log in at `/oidc/authorize`; clients registered by the hub admin get an
ID token and an access token signed with the hub's Ed25519 key (alg EdDSA, served at
`/oidc/jwks`). Roles travel in the `eduperson_entitlement` claim as
`<oidc_entitlement_prefix><role>` (e.g. `urn:oncofed:role:dac:node-1`), the form Life
Science Login uses, so an external provider can stand in for this one without changes.

Security: PKCE S256 is required of every client, redirect URIs must match a registered one
exactly (an error is never redirected to an unregistered URI), codes are single use and live
60 s, the log-in form carries a CSRF token (double submit, SameSite=Strict cookie), failed
log-ins are rate limited, and secrets are compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import secrets
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import jwt
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from oncofed.hub.admin import AdminError
from oncofed.hub.context import HubContext, hub_context
from oncofed.hub.db import sessions
from oncofed.hub.identity.models import OidcClient, OidcCode
from oncofed.hub.models import Account
from oncofed.hub.negotiation.models import Contact
from oncofed.hub.routes.auth import _dummy_hash, client_address  # shared with password log-in
from oncofed.security.envelope import utcnow
from oncofed.security.secrets_ import new_token, same_secret, token_hash, verify_password

router = APIRouter(prefix="/oidc", tags=["oidc"])
Ctx = Annotated[HubContext, Depends(hub_context)]
CSRF_COOKIE = "oncofed_csrf"
CODE_SECONDS = 60
TOKEN_SECONDS = 300
AT_TYP = "at+jwt"


def issuer_url(ctx: HubContext) -> str:
    return ctx.settings.url.rstrip("/") + "/oidc"


def add_oidc_client(
    engine: sa.Engine, client_id: str, redirect_uris: list[str], confidential: bool = True
) -> str | None:
    """Register a client of the embedded issuer; returns its secret (shown once) or None."""
    if not client_id or not all(c.isalnum() or c in "-_." for c in client_id):
        raise AdminError("a client id uses letters, digits, '-', '_' or '.'")
    if not redirect_uris or not all(u.startswith(("https://", "http://")) for u in redirect_uris):
        raise AdminError("give at least one absolute http(s) redirect URI")
    secret = new_token("ofc") if confidential else None
    with sessions(engine).begin() as s:
        if s.get(OidcClient, client_id) is not None:
            raise AdminError(f"an OIDC client {client_id!r} exists already")
        s.add(
            OidcClient(
                client_id=client_id,
                secret_hash=token_hash(secret) if secret else None,
                name=client_id,
                redirect_uris={"uris": redirect_uris},
                created_at=utcnow(),
            )
        )
    return secret


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@router.get("/.well-known/openid-configuration")
async def discovery(ctx: Ctx) -> dict[str, Any]:
    iss = issuer_url(ctx)
    return {
        "issuer": iss,
        "authorization_endpoint": f"{iss}/authorize",
        "token_endpoint": f"{iss}/token",
        "userinfo_endpoint": f"{iss}/userinfo",
        "jwks_uri": f"{iss}/jwks",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "client_secret_basic",
            "none",
        ],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "eduperson_entitlement"],
        "claims_supported": ["sub", "preferred_username", "email", "eduperson_entitlement"],
    }


@router.get("/jwks")
async def jwks(ctx: Ctx) -> dict[str, Any]:
    return {"keys": [{**ctx.key.public.to_jwk(), "alg": "EdDSA"}]}


# -- authorize -------------------------------------------------------------------------------

AUTH_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
)


def _client(ctx: HubContext, client_id: str) -> OidcClient | None:
    with ctx.sessions() as s:
        return s.get(OidcClient, client_id)


def _check_request(ctx: HubContext, p: dict[str, str]) -> str | None:
    """None when the request may proceed; otherwise the error to show (never redirected)."""
    client = _client(ctx, p.get("client_id", ""))
    if client is None:
        return "unknown client_id"
    if p.get("redirect_uri", "") not in client.redirect_uris.get("uris", []):
        return "redirect_uri is not registered for this client"
    if p.get("response_type") != "code":
        return "only response_type=code is supported"
    if "openid" not in p.get("scope", "").split():
        return "scope must include openid"
    if p.get("code_challenge_method") != "S256" or len(p.get("code_challenge", "")) < 43:
        return "PKCE is required: code_challenge with code_challenge_method=S256"
    return None


def _form(p: dict[str, str], csrf: str, error: str = "") -> str:
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{html.escape(p.get(k, ""), quote=True)}">'
        for k in AUTH_PARAMS
    )
    err = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>oncofed log-in</title>"
        "</head><body><main><h1>Log in to oncofed</h1>"
        f"{err}<form method=post action=authorize>{hidden}"
        f'<input type="hidden" name="csrf" value="{html.escape(csrf, quote=True)}">'
        '<label>Username <input name="username" autocomplete="username" required></label>'
        '<label>Password <input name="password" type="password" '
        'autocomplete="current-password" required></label>'
        "<button type=submit>Log in</button></form></main></body></html>"
    )


def _page(body: str, csrf: str, status: int = 200) -> HTMLResponse:
    response = HTMLResponse(
        body,
        status,
        headers={
            "cache-control": "no-store",
            "x-frame-options": "DENY",
            # No form-action: browsers apply it to the redirect back to the client.
            "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
            "referrer-policy": "no-referrer",
        },
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/oidc", max_age=1800
    )
    return response


@router.get("/authorize")
async def authorize_page(request: Request, ctx: Ctx) -> Response:
    p = {k: request.query_params.get(k, "") for k in AUTH_PARAMS}
    error = await run_in_threadpool(_check_request, ctx, p)
    if error:
        return HTMLResponse(f"<!doctype html><p>{html.escape(error)}</p>", 400)
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    return _page(_form(p, csrf), csrf)


def _authenticate(ctx: HubContext, username: str, password: str) -> Account | None:
    with ctx.sessions() as s:
        account = s.scalar(sa.select(Account).where(Account.username == username))
    if account is None or account.disabled or not account.password_hash:
        verify_password(_dummy_hash(), password)
        return None
    return account if verify_password(account.password_hash, password) else None


def _issue_code(ctx: HubContext, p: dict[str, str], username: str) -> str:
    code = secrets.token_urlsafe(32)
    now = utcnow()
    with ctx.sessions.begin() as s:
        s.add(
            OidcCode(
                code_hash=token_hash(code),
                client_id=p["client_id"],
                username=username,
                redirect_uri=p["redirect_uri"],
                scope=p.get("scope", "openid"),
                nonce=p.get("nonce") or None,
                code_challenge=p["code_challenge"],
                created_at=now,
                expires_at=now + timedelta(seconds=CODE_SECONDS),
            )
        )
    return code


@router.post("/authorize")
async def authorize_submit(
    request: Request,
    ctx: Ctx,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    form = await request.form()
    p = {k: str(form.get(k, "")) for k in AUTH_PARAMS}
    error = await run_in_threadpool(_check_request, ctx, p)
    if error:
        return HTMLResponse(f"<!doctype html><p>{html.escape(error)}</p>", 400)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not csrf or not same_secret(cookie, csrf):
        await run_in_threadpool(
            ctx.audit.append, username, "oidc.login", "deny", p["client_id"], "CSRF check failed"
        )
        raise HTTPException(403, "the log-in form expired or was not ours: reload it")
    address = client_address(request)
    wait = await run_in_threadpool(ctx.logins.wait, username, address)
    if wait > 0:
        await run_in_threadpool(
            ctx.audit.append, username, "oidc.login", "deny", p["client_id"], "rate limited"
        )
        message = f"Too many failed log-ins; try again in {math.ceil(wait)} s."
        return _page(_form(p, cookie, message), cookie, 429)
    account = await run_in_threadpool(_authenticate, ctx, username, password)
    if account is None:
        await run_in_threadpool(ctx.logins.fail, username, address)
        await run_in_threadpool(
            ctx.audit.append,
            username,
            "oidc.login",
            "deny",
            p["client_id"],
            "wrong username or password",
        )
        return _page(_form(p, cookie, "Wrong username or password."), cookie, 401)
    await run_in_threadpool(ctx.logins.succeed, username, address)
    code = await run_in_threadpool(_issue_code, ctx, p, account.username)
    await run_in_threadpool(
        ctx.audit.append, account.username, "oidc.login", "allow", p["client_id"]
    )
    query = {"code": code, **({"state": p["state"]} if p["state"] else {})}
    sep = "&" if "?" in p["redirect_uri"] else "?"
    return RedirectResponse(f"{p['redirect_uri']}{sep}{urlencode(query)}", 303)


# -- token and userinfo ----------------------------------------------------------------------


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def _claims_for(ctx: HubContext, s: Any, username: str) -> dict[str, Any]:
    account = s.scalar(sa.select(Account).where(Account.username == username))
    if account is None or account.disabled:
        raise OAuthError("invalid_grant", "the account is disabled")
    prefix = ctx.settings.oidc_entitlement_prefix
    claims: dict[str, Any] = {
        "preferred_username": account.username,
        "eduperson_entitlement": [prefix + r for r in account.roles.get("roles", [])],
    }
    contact = s.get(Contact, username)
    if contact is not None:
        claims["email"] = contact.email
    return claims


def _exchange(
    ctx: HubContext, form: dict[str, str], basic: tuple[str, str] | None
) -> dict[str, Any]:
    if form.get("grant_type") != "authorization_code":
        raise OAuthError("unsupported_grant_type", "only authorization_code is supported")
    client_id, secret = (
        basic if basic else (form.get("client_id", ""), form.get("client_secret", ""))
    )
    now = utcnow()
    # Consume the code in its own transaction first, so that a failed exchange (wrong PKCE
    # verifier, wrong redirect URI) still uses it up: a stolen code gets one try.
    with ctx.sessions.begin() as s:
        client = s.get(OidcClient, client_id)
        if client is None:
            raise OAuthError("invalid_client", "unknown client", 401)
        if client.secret_hash is not None and not same_secret(
            client.secret_hash, token_hash(secret or "")
        ):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        code = s.get(OidcCode, token_hash(form.get("code", "")))
        if code is None or code.client_id != client_id:
            raise OAuthError("invalid_grant", "unknown authorization code")
        used = s.execute(
            sa.update(OidcCode)
            .where(OidcCode.code_hash == code.code_hash, OidcCode.used_at.is_(None))
            .values(used_at=now)
        )
        s.expunge(code)
    if getattr(used, "rowcount", 0) != 1:
        raise OAuthError("invalid_grant", "the authorization code was already used")
    if code.expires_at <= now:
        raise OAuthError("invalid_grant", "the authorization code has expired")
    if form.get("redirect_uri", "") != code.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization")
    if not same_secret(s256(form.get("code_verifier", "")), code.code_challenge):
        raise OAuthError("invalid_grant", "PKCE verification failed")
    with ctx.sessions() as s:
        extra = _claims_for(ctx, s, code.username)
    scope, nonce, username = code.scope, code.nonce, code.username
    iss, iat = issuer_url(ctx), int(now.timestamp())
    headers = {"kid": ctx.key.kid}
    id_claims = {
        "iss": iss,
        "sub": username,
        "aud": client_id,
        "iat": iat,
        "exp": iat + TOKEN_SECONDS,
        "auth_time": iat,
        **({"nonce": nonce} if nonce else {}),
        **extra,
    }
    at_claims = {
        "iss": iss,
        "sub": username,
        "aud": f"{iss}/userinfo",
        "client_id": client_id,
        "scope": scope,
        "iat": iat,
        "exp": iat + TOKEN_SECONDS,
        "jti": secrets.token_hex(16),
    }
    return {
        "access_token": jwt.encode(
            at_claims, ctx.key.private_key, algorithm="EdDSA", headers={**headers, "typ": AT_TYP}
        ),
        "id_token": jwt.encode(id_claims, ctx.key.private_key, algorithm="EdDSA", headers=headers),
        "token_type": "Bearer",
        "expires_in": TOKEN_SECONDS,
        "scope": scope,
    }


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(value).decode().partition(":")
    except ValueError:
        return None
    from urllib.parse import unquote

    return unquote(client_id), unquote(secret)


@router.post("/token")
async def token(request: Request, ctx: Ctx) -> JSONResponse:
    form = {k: str(v) for k, v in (await request.form()).items()}
    try:
        body = await run_in_threadpool(_exchange, ctx, form, _basic(request))
    except OAuthError as exc:
        await run_in_threadpool(
            ctx.audit.append,
            form.get("client_id", "?"),
            "oidc.token",
            "deny",
            "",
            exc.description,
        )
        return JSONResponse(
            {"error": exc.error, "error_description": exc.description},
            exc.status,
            headers={"cache-control": "no-store"},
        )
    return JSONResponse(body, headers={"cache-control": "no-store", "pragma": "no-cache"})


def _userinfo(ctx: HubContext, access_token: str) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        if jwt.get_unverified_header(access_token).get("typ") != AT_TYP:
            raise OAuthError("invalid_token", "not an access token", 401)
        iss = issuer_url(ctx)
        claims = jwt.decode(
            access_token,
            Ed25519PublicKey.from_public_bytes(ctx.key.public.raw),
            algorithms=["EdDSA"],
            audience=f"{iss}/userinfo",
            issuer=iss,
        )
    except jwt.PyJWTError as exc:
        raise OAuthError("invalid_token", f"access token refused: {exc}", 401) from exc
    with ctx.sessions() as s:
        return {"sub": claims["sub"], **_claims_for(ctx, s, str(claims["sub"]))}


@router.get("/userinfo")
async def userinfo(request: Request, ctx: Ctx) -> JSONResponse:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer" or not value:
            raise OAuthError("invalid_token", "Bearer access token missing", 401)
        body = await run_in_threadpool(_userinfo, ctx, value.strip())
    except OAuthError as exc:
        return JSONResponse(
            {"error": exc.error, "error_description": exc.description},
            exc.status,
            headers={"WWW-Authenticate": f'Bearer error="{exc.error}"'},
        )
    return JSONResponse(body)
