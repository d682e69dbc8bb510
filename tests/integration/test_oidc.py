"""Log-in through an external OIDC provider over real HTTP: a second hub process (its
embedded issuer) stands in for Keycloak / Life Science Login. Also the issuer's own
guarantees: PKCE, single-use codes, exact redirect URIs, CSRF on the form, rate limiting."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from oncofed.hub.admin import add_user, open_hub
from oncofed.hub.identity.issuer import add_oidc_client, s256
from oncofed.local import LocalFederation
from tests.integration.test_negotiation import Hub, start_hub

pytestmark = pytest.mark.integration
CALLBACK = "http://127.0.0.1:8799/api/auth/oidc/callback"  # the in-process hub's URL


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A real hub process whose embedded issuer acts as the external provider."""
    fed = LocalFederation(tmp_path / "idp")
    fed.init_hub("identity provider")
    _, engine = open_hub(fed.hub.directory)
    carol = add_user(engine, "carol", ["researcher", "dac:node-1"])
    secret = add_oidc_client(engine, "oncofed-hub", [CALLBACK])
    add_oidc_client(engine, "public-app", ["http://127.0.0.1:9/cb"], confidential=False)
    engine.dispose()
    fed.start_hub()
    try:
        yield {"url": fed.hub.url, "secret": secret, "carol": carol}
    finally:
        fed.stop()


@pytest.fixture
def rp(tmp_path: Path, provider: dict[str, Any]) -> Iterator[Hub]:
    """The hub under test, configured to log users in at the provider."""
    (tmp_path / "secret").write_text(provider["secret"])
    yield from start_hub(
        tmp_path / "hub",
        oidc_issuer=provider["url"] + "/oidc",
        oidc_client_id="oncofed-hub",
        oidc_client_secret_file=str(tmp_path / "secret"),
    )


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def fields_of(page: str) -> dict[str, str]:
    return dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page))


def test_login_through_an_external_provider(rp: Hub, provider: dict[str, Any]) -> None:
    start = rp.client.get("/api/auth/oidc/login", follow_redirects=False)
    assert start.status_code == 302
    location = start.headers["location"]
    assert location.startswith(provider["url"] + "/oidc/authorize?")
    assert "code_challenge_method=S256" in location
    with httpx.Client() as browser:
        page = browser.get(location)
        assert page.status_code == 200 and page.headers["x-frame-options"] == "DENY"
        form = {**fields_of(page.text), "username": "carol", "password": "wrong"}
        assert browser.post(provider["url"] + "/oidc/authorize", data=form).status_code == 401
        form["password"] = provider["carol"]
        done = browser.post(provider["url"] + "/oidc/authorize", data=form)
        assert done.status_code == 303, done.text
        back = done.headers["location"]
    assert back.startswith(CALLBACK + "?")
    # Without the browser-binding cookie the callback is refused (login CSRF).
    path = urlsplit(back).path + "?" + urlsplit(back).query
    stranger = rp.client.get(path, cookies={"oncofed_oidc": "x"})
    assert stranger.status_code == 401
    # The refused attempt consumed the state: start again and finish properly.
    start = rp.client.get("/api/auth/oidc/login", follow_redirects=False)
    with httpx.Client() as browser:
        page = browser.get(start.headers["location"])
        form = {**fields_of(page.text), "username": "carol", "password": provider["carol"]}
        back = browser.post(provider["url"] + "/oidc/authorize", data=form).headers["location"]
    path = urlsplit(back).path + "?" + urlsplit(back).query
    result = rp.client.get(path)
    assert result.status_code == 200, result.text
    body = result.json()
    assert body["username"].startswith("carol@127.0.0.1:")
    assert body["roles"] == ["researcher", "dac", "dac:node-1"]
    me = rp.client.get("/api/me", headers={"authorization": f"Bearer {body['access_token']}"})
    assert set(me.json()["roles"]) == {"researcher", "dac", "dac:node-1"}
    # Replaying the callback (same state and code) fails.
    assert rp.client.get(path).status_code == 401
    actions = [(e["action"], e["decision"]) for e in rp.ctx.audit.entries()]
    assert ("auth.oidc_login", "allow") in actions and ("auth.oidc_login", "deny") in actions


def authorize(browser: httpx.Client, url: str, client_id: str, redirect: str, verifier: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect,
        "scope": "openid",
        "state": "s1",
        "nonce": "n1",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    page = browser.get(url + "/oidc/authorize", params=params)
    assert page.status_code == 200, page.text
    return page.text


def test_issuer_guards(provider: dict[str, Any]) -> None:
    url = provider["url"]
    discovery = httpx.get(url + "/oidc/.well-known/openid-configuration").json()
    assert discovery["issuer"] == url + "/oidc"
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    jwks = httpx.get(discovery["jwks_uri"]).json()
    assert jwks["keys"][0]["crv"] == "Ed25519"
    verifier = "v" * 50
    with httpx.Client() as browser:
        # An unregistered redirect URI is an error page, never a redirect.
        bad = browser.get(
            url + "/oidc/authorize",
            params={
                "client_id": "public-app",
                "redirect_uri": "https://evil.example/cb",
                "response_type": "code",
                "scope": "openid",
                "code_challenge": s256(verifier),
                "code_challenge_method": "S256",
            },
        )
        assert bad.status_code == 400 and "location" not in bad.headers
        # PKCE is mandatory.
        plain = browser.get(
            url + "/oidc/authorize",
            params={
                "client_id": "public-app",
                "redirect_uri": "http://127.0.0.1:9/cb",
                "response_type": "code",
                "scope": "openid",
            },
        )
        assert plain.status_code == 400 and "PKCE" in plain.text
        page = authorize(browser, url, "public-app", "http://127.0.0.1:9/cb", verifier)
        form = {**fields_of(page), "username": "carol", "password": provider["carol"]}
        # The form without its CSRF token (or from another browser) is refused.
        no_csrf = {k: v for k, v in form.items() if k != "csrf"}
        assert browser.post(url + "/oidc/authorize", data=no_csrf).status_code == 403
        with httpx.Client() as other:
            assert other.post(url + "/oidc/authorize", data=form).status_code == 403
        done = browser.post(url + "/oidc/authorize", data=form)
        code = parse_qs(urlsplit(done.headers["location"]).query)["code"][0]
        assert parse_qs(urlsplit(done.headers["location"]).query)["state"] == ["s1"]
    token_req = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": "public-app",
        "redirect_uri": "http://127.0.0.1:9/cb",
        "code_verifier": "w" * 50,
    }
    wrong = httpx.post(url + "/oidc/token", data=token_req)
    assert wrong.status_code == 400 and "PKCE" in wrong.json()["error_description"]
    # The failed attempt used the code up: a stolen code cannot be retried.
    token_req["code_verifier"] = verifier
    assert httpx.post(url + "/oidc/token", data=token_req).json()["error"] == "invalid_grant"


def test_issuer_tokens_and_userinfo_and_rate_limit(provider: dict[str, Any]) -> None:
    url, verifier = provider["url"], "x" * 60
    with httpx.Client() as browser:
        page = authorize(browser, url, "public-app", "http://127.0.0.1:9/cb", verifier)
        form = {**fields_of(page), "username": "carol", "password": provider["carol"]}
        done = browser.post(url + "/oidc/authorize", data=form)
        code = parse_qs(urlsplit(done.headers["location"]).query)["code"][0]
        tokens = httpx.post(
            url + "/oidc/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": "public-app",
                "redirect_uri": "http://127.0.0.1:9/cb",
                "code_verifier": verifier,
            },
        ).json()
        assert tokens["token_type"] == "Bearer"
        info = httpx.get(
            url + "/oidc/userinfo", headers={"authorization": f"Bearer {tokens['access_token']}"}
        ).json()
        assert info["sub"] == "carol"
        assert "urn:oncofed:role:dac:node-1" in info["eduperson_entitlement"]
        # The ID token is not an access token.
        refused = httpx.get(
            url + "/oidc/userinfo", headers={"authorization": f"Bearer {tokens['id_token']}"}
        )
        assert refused.status_code == 401
        # Wrong passwords: a few free, then each attempt waits longer; even the right
        # password waits out the delay, and then logs in (a delay, never a lock-out).
        form["password"] = "nope"
        codes = [browser.post(url + "/oidc/authorize", data=form).status_code for _ in range(7)]
        assert codes[:5] == [401] * 5 and 429 in codes[5:]
        form["password"] = provider["carol"]
        refused = browser.post(url + "/oidc/authorize", data=form)
        assert refused.status_code == 429 and "try again in" in refused.text
        time.sleep(4.1)
        assert browser.post(url + "/oidc/authorize", data=form).status_code == 303
