"""The portal's pages without a browser: who may see what, CSRF, sessions, and the access
request lifecycle driven through plain HTML forms (what a user without JavaScript does)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from fastapi.testclient import TestClient

from oncofed.hub.portal.login_pages import safe_next
from oncofed.hub.portal.session import COOKIE
from tests.integration.test_negotiation import FORM, Hub, start_hub

pytestmark = pytest.mark.integration

PUBLIC = ["/", "/catalogue", "/catalogue?q=lung&modality=CT", "/login", "/static/portal.css"]
ANY_USER = ["/requests", "/inbox", "/dashboard"]
RESEARCHER = ["/cohort", "/requests/new"]
ADMIN = ["/admin/audit"]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from start_hub(tmp_path / "hub")


def browser(hub: Hub, user: str | None = None) -> TestClient:
    """A client with its own cookie jar, logged in through the form when `user` is given."""
    client = TestClient(hub.client.app, follow_redirects=False)
    if user is not None:
        r = client.post(
            "/login", data={"username": user, "password": hub.passwords[user], "next": "/"}
        )
        assert r.status_code == 303, r.text
    return client


def csrf(client: TestClient, path: str = "/requests") -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(path).text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def test_who_may_see_which_page(hub: Hub) -> None:
    anonymous = browser(hub)
    for path in PUBLIC:
        assert anonymous.get(path).status_code == 200, path
    for path in ANY_USER + RESEARCHER + ADMIN:
        r = anonymous.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next="), path
    holder = browser(hub, "holder1")
    for path in ANY_USER:
        assert holder.get(path).status_code == 200, path
    for path in RESEARCHER + ADMIN:
        r = holder.get(path)
        assert r.status_code == 403, path
        assert "needs the role" in r.text and "Ask the hub admin" in r.text
    alice = browser(hub, "alice")
    for path in ANY_USER + RESEARCHER:
        assert alice.get(path).status_code == 200, path
    assert alice.get("/admin/audit").status_code == 403
    admin = browser(hub, "admin")
    for path in ANY_USER + RESEARCHER + ADMIN:
        assert admin.get(path).status_code == 200, path


def test_session_cookie_csrf_and_logout(hub: Hub) -> None:
    alice = browser(hub, "alice")
    cookie = alice.cookies.get(COOKIE)
    assert cookie
    # A form post without the page's CSRF token is refused, and changes nothing.
    r = alice.post("/cohort/save", data={"q": "", "name": "x"})
    assert r.status_code == 403 and "reload the page" in r.text
    r = alice.post("/cohort/save", data={"q": "", "name": "x", "csrf": "0" * 32})
    assert r.status_code == 403
    # The session cookie is an API token: the API accepts it as a bearer token too.
    assert (
        hub.client.get("/api/me", headers={"authorization": f"Bearer {cookie}"}).json()["username"]
        == "alice"
    )
    # Logging out revokes it at the hub.
    r = alice.post("/logout", data={"csrf": csrf(alice)})
    assert r.status_code == 303
    assert (
        hub.client.get("/api/me", headers={"authorization": f"Bearer {cookie}"}).status_code == 401
    )
    stale = TestClient(hub.client.app, follow_redirects=False, cookies={COOKIE: cookie})
    assert stale.get("/requests").status_code == 303
    # Wrong password: the page says so, with the status a client can read.
    r = browser(hub).post("/login", data={"username": "alice", "password": "nope"})
    assert r.status_code == 401 and "wrong username or password" in r.text


def test_pages_carry_a_strict_content_security_policy(hub: Hub) -> None:
    page = browser(hub).get("/catalogue")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "app;dur=" in page.headers["server-timing"]
    # Nothing in the portal's own markup needs an exception to it: no inline handlers.
    for path in ("/", "/catalogue", "/login"):
        assert not re.search(r"\son[a-z]+=", browser(hub).get(path).text), path


def test_login_redirect_stays_on_this_hub() -> None:
    assert safe_next("/cohort?q=1") == "/cohort?q=1"
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"):
        assert safe_next(evil) == "/"


def test_cohort_builder_without_javascript(hub: Hub) -> None:
    alice = browser(hub, "alice")
    token = csrf(alice, "/cohort")
    r = alice.post(
        "/cohort/add",
        data={
            "csrf": token,
            "q": "",
            "key": "SNOMEDCT263495000",
            "type": "EQUALS",
            "value": "SNOMEDCT248152002",
            "group": "new",
        },
    )
    assert r.status_code == 303
    q = parse_qs(urlsplit(r.headers["location"]).query)["q"][0]
    r = alice.post(
        "/cohort/add",
        data={
            "csrf": token,
            "q": q,
            "key": "SNOMEDCT423493009",
            "type": "BETWEEN",
            "min": "40",
            "max": "",
            "group": "0",
        },
    )
    q = parse_qs(urlsplit(r.headers["location"]).query)["q"][0]
    page = alice.get(f"/cohort?{r.headers['location'].split('?', 1)[1]}").text
    assert "Sex is female and Age at diagnosis at least 40 years" in page
    ast = json.loads(q)
    assert ast["operand"] == "OR" and len(ast["children"][0]["children"]) == 2
    # A bad value is refused on the page, naming the criterion and what to do.
    r = alice.post(
        "/cohort/add",
        data={
            "csrf": token,
            "q": q,
            "key": "SNOMEDCT423493009",
            "type": "BETWEEN",
            "min": "forty",
            "group": "0",
        },
    )
    assert r.status_code == 422 and "Age at diagnosis: the lower bound must be a number" in r.text
    # Remove the first criterion; then save and open the saved query by its link.
    r = alice.post("/cohort/remove", data={"csrf": token, "q": q, "group": "0", "index": "0"})
    q2 = parse_qs(urlsplit(r.headers["location"]).query)["q"][0]
    assert "SNOMEDCT263495000" not in q2 and "SNOMEDCT423493009" in q2
    r = alice.post("/cohort/save", data={"csrf": token, "q": q2, "name": "over forty"})
    shared = parse_qs(urlsplit(r.headers["location"]).query)["shared"][0]
    bob = browser(hub, "bob")
    page = bob.get(f"/cohort?saved={shared}").text
    assert "over forty" in page and "Age at diagnosis at least 40 years" in page
    # Only its owner deletes it.
    assert (
        bob.post(f"/cohort/saved/{shared}/delete", data={"csrf": csrf(bob, "/cohort")}).status_code
        == 403
    )
    assert alice.post(f"/cohort/saved/{shared}/delete", data={"csrf": token}).status_code == 303
    assert bob.get(f"/cohort?saved={shared}").status_code == 404
    # A query pasted as JSON is validated before it is kept.
    r = alice.post("/cohort/json", data={"csrf": token, "q": "", "ast": '{"operand": "XOR"}'})
    assert r.status_code == 422 and "not valid" in r.text
    # Running a search needs no JavaScript either: the result page follows the task.
    r = alice.post("/cohort/run", data={"csrf": token, "q": q2})
    assert r.status_code == 303 and "run=" in r.headers["location"]
    page = alice.get(r.headers["location"]).text
    assert "providers answered" in page
    run_id = parse_qs(urlsplit(r.headers["location"]).query)["run"][0]
    # Another researcher cannot follow it.
    assert bob.get(f"/cohort/runs/{run_id}/events").status_code == 404


def form_fields(extra: dict[str, object]) -> dict[str, object]:
    return {
        **{k: v for k, v in FORM.items() if k != "duo_codes"},
        "duo_codes": FORM["duo_codes"],
        **extra,
    }


def test_catalogue_access_url_opens_the_request_form(hub: Hub) -> None:
    """DCAT distributions point at /negotiation/new?dataset=&provider= (STANDARDS §5)."""
    anonymous = browser(hub)
    r = anonymous.get("/negotiation/new?dataset=lung-ct&provider=node-1")
    assert r.status_code == 303
    assert r.headers["location"] == "/requests/new?resource=node-1%3Alung-ct"
    alice = browser(hub, "alice")
    page = alice.get(r.headers["location"]).text
    assert 'name="resource" value="node-1:lung-ct" checked' in page


def test_access_request_through_forms(hub: Hub) -> None:
    alice = browser(hub, "alice")
    token = csrf(alice, "/requests/new")
    # Submitting with a missing field keeps the draft and says what is missing.
    r = alice.post(
        "/requests",
        data={
            "csrf": token,
            "title": "Prostate MRI",
            "resource": ["node-1:ds-a", "node-2:ds-b"],
            "purpose": "only this",
            "action": "submit",
        },
    )
    assert r.status_code == 422 and "fill in before submitting" in r.text
    # ... in the form's own words: the labels, not the field keys (issue 15).
    alert = r.text.split('role="alert">', 1)[1].split("</div>", 1)[0]
    assert alert.startswith("Saved as a draft, not submitted yet: fill in before submitting:")
    assert "Ethics approval (committee, number, date)" in alert and "GA4GH DUO" in alert
    assert "ethics_approval" not in alert and "duo_codes" not in alert
    assert r.text.count('value="submit"') == 1 and "Submit request" in r.text
    nid = re.search(r"/requests/(neg-[0-9a-f]+)", r.text).group(1)  # type: ignore[union-attr]
    r = alice.post(
        f"/requests/{nid}/form", data={"csrf": token, **form_fields({"action": "submit"})}
    )
    assert r.status_code == 303
    assert "submitted" in alice.get(f"/requests/{nid}").text
    # Not the researcher's to approve: the page shows no such button and the post is refused.
    page = alice.get(f"/requests/{nid}").text
    assert 'value="APPROVE"' not in page
    r = alice.post(f"/requests/{nid}/event", data={"csrf": token, "event": "APPROVE"})
    assert r.status_code == 403 and "only admin may APPROVE" in r.text
    admin = browser(hub, "admin")
    admin_token = csrf(admin)
    for event in ("APPROVE", "START"):
        r = admin.post(f"/requests/{nid}/event", data={"csrf": admin_token, "event": event})
        assert r.status_code == 303, r.text
    # The DAC of node-1 sees only node-1's decision in the inbox, and makes it there.
    dac = browser(hub, "dac1")
    inbox = dac.get("/inbox").text
    assert "Awaiting your decision (1)" in inbox and "node-2" not in inbox.split("Awaiting")[1]
    row = re.search(rf"/requests/{nid}/resources/(\d+)/event", inbox).group(1)  # type: ignore[union-attr]
    dac_token = csrf(dac, "/inbox")
    # A grant is one step for the DAC, and the page says what happened (issue 15).
    r = dac.post(
        f"/requests/{nid}/resources/{row}/event",
        data={
            "csrf": dac_token,
            "event": "GRANT_ACCESS_TO_RESOURCE",
            "note": "ok",
            "back": "inbox",
        },
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/inbox"), r.text
    inbox = dac.get(r.headers["location"]).text
    assert "Awaiting your decision (0)" in inbox
    assert "Access granted: alice now holds a visa for ds-a at node-1" in inbox
    # The researcher sees "granted", and a history that names the provider.
    page = alice.get(f"/requests/{nid}").text
    assert 'data-resource-state="node-1">granted' in page
    assert "resource made available" not in page
    history = page.split('class="history"')[1]
    assert re.search(r"<strong>dac1</strong> granted access for <strong>node-1</strong>", history)
    assert re.search(r"<strong>hub</strong> asked the provider\S* data access committee for "
                     r"<strong>node-2</strong>", history)  # fmt: skip
    # A document attached in the portal is on the request page for the DAC (issue 15).
    pdf = b"%PDF-1.4 ethics approval EC-2024-117\n"
    r = alice.post(
        f"/requests/{nid}/attachments",
        data={"csrf": token},
        files={"file": ("ethics approval.pdf", pdf, "application/pdf")},
    )
    assert r.status_code == 303 and r.headers["location"].endswith("done=attached#documents")
    dac_page = dac.get(f"/requests/{nid}").text
    link = re.search(
        rf'href="(/requests/{nid}/attachments/\d+)" download>ethics approval.pdf', dac_page
    )
    assert link, dac_page.split('id="documents"')[1][:500]
    assert 'name="file"' not in dac_page  # only the researcher attaches
    got = dac.get(link.group(1))
    assert got.content == pdf and got.headers["content-type"] == "application/octet-stream"
    assert browser(hub, "bob").get(link.group(1)).status_code == 404
    r = alice.post(f"/requests/{nid}/attachments", data={"csrf": token})
    assert r.status_code == 422 and "choose a file to attach" in r.text
    grants = alice.get("/requests").text
    assert "Your access grants" in grants and "ds-a" in grants and "eyJ" in grants  # a JWT
    r = alice.post(f"/requests/{nid}/comments", data={"csrf": token, "body": "Thank you!"})
    assert r.status_code == 303
    assert "Thank you!" in alice.get(f"/requests/{nid}").text
    # The grant's visa is listed on the request; node-1's DAC may revoke it, the researcher
    # may not, and a revocation needs a reason.
    page = alice.get(f"/requests/{nid}").text
    jti = re.search(r'data-visa="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert "Visas issued" in page and "Revoke this visa" not in page
    r = alice.post(f"/requests/{nid}/visas/{jti}/revoke", data={"csrf": token, "reason": "x"})
    assert r.status_code == 404 and "that you may revoke" in r.text
    assert "Revoke this visa" in dac.get(f"/requests/{nid}").text
    revoke = f"/requests/{nid}/visas/{jti}/revoke"
    r = dac.post(revoke, data={"csrf": dac_token, "reason": " "})
    assert r.status_code == 422 and "reason" in r.text
    r = dac.post(revoke, data={"csrf": dac_token, "reason": "consent withdrawn"})
    assert r.status_code == 303 and r.headers["location"].endswith("done=revoked#visas")
    page = dac.get(r.headers["location"]).text
    assert "Visa revoked" in page and "consent withdrawn" in page
    assert "Revoke this visa" not in page
    revoked = hub.client.get("/api/visas/revoked").json()["token"]  # hub-signed, for nodes
    assert jti in json.dumps(jwt.decode(revoked, options={"verify_signature": False}))
    # Someone with no part in the request gets 404, as in the API.
    assert browser(hub, "bob").get(f"/requests/{nid}").status_code == 404


def test_audit_view_and_chain_check(hub: Hub) -> None:
    admin = browser(hub, "admin")
    page = admin.get("/admin/audit?decision=allow").text
    assert "auth.login" in page
    assert "The chain is intact" in admin.get("/admin/audit?verify=true").text
    # Tampering is shown, not hidden.
    with hub.ctx.engine.begin() as con:
        con.exec_driver_sql("UPDATE audit_entry SET reason = 'edited' WHERE seq = 1")
    page = admin.get("/admin/audit?verify=true").text
    assert "NOT intact" in page and "content was changed" in page


def test_help_page_and_unknown_addresses(hub: Hub) -> None:
    """Issue 15: a help page, unknown pages in the portal's look (JSON stays for programs),
    and menus that offer each role only what it may open."""
    anonymous = browser(hub)
    page = anonymous.get("/help")
    assert page.status_code == 200
    for words in ("Tier 2", "&lt; 10", "Noise", "DUO", "fewer than 10 studies"):
        assert words in page.text, words
    html = {"accept": "text/html,application/xhtml+xml"}
    r = anonymous.get("/no-such-page", headers=html)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "Page not found" in r.text and "There is no page at /no-such-page" in r.text
    assert 'href="/help"' in r.text  # the portal's own navigation
    assert anonymous.get("/no-such-page").json() == {"detail": "Not Found"}
    assert anonymous.get("/api/no-such-thing", headers=html).json() == {"detail": "Not Found"}
    # A DAC member is offered no cohort explorer (it would refuse them); a researcher is.
    assert 'href="/cohort"' not in browser(hub, "dac1").get("/requests").text
    assert 'href="/cohort"' in browser(hub, "alice").get("/requests").text
