"""The portal in a real browser, as its users go through it: a visitor searches the catalogue,
a researcher builds a cohort query and sees counts from three nodes, saves it and requests
access from the result; the hub admin approves and starts the request; the providers' DAC
member grants access from the inbox; the researcher sees the state change."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.browser.conftest import PASSWORDS, Portal, Shots

pytestmark = pytest.mark.timeout(300)


def new_page(browser: Any, portal: Portal) -> Any:
    context = browser.new_context(base_url=portal.url, viewport={"width": 1366, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.js_errors = errors
    # Nothing may come from the internet (hospital networks are offline): every request
    # that leaves the hub is recorded and refused.
    external: list[str] = []

    def only_local(route: Any) -> None:
        url = route.request.url
        if url.startswith(portal.url) or url.startswith("data:"):
            route.continue_()
        else:
            external.append(url)
            route.abort()

    page.route("**/*", only_local)
    page.external = external
    return page


def log_in(page: Any, username: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def log_out(page: Any) -> None:
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("link", name="Log in").wait_for()


def unlabelled_controls(page: Any) -> list[str]:
    """Form controls a screen reader could not name (no label, no aria-label)."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
          .filter(e => e.type !== 'hidden' && !e.closest('[hidden]'))
          .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
          .map(e => e.outerHTML.slice(0, 120))"""
    )
    return found


def test_catalogue_search_and_dataset_page(browser: Any, portal: Portal, shots: Shots) -> None:
    from playwright.sync_api import expect

    page = new_page(browser, portal)
    page.goto("/")
    expect(
        page.get_by_role("heading", name="Find cancer data across the federation")
    ).to_be_visible()
    expect(page.locator("svg.chart")).to_have_count(1)
    shots(page, "home")
    page.get_by_label("Search the catalogue").fill("cohort")
    page.get_by_role("button", name="Search the catalogue").click()
    expect(page.locator("#result-count")).to_contain_text("3 datasets")
    shots(page, "catalogue search")
    # A facet narrows the results (JavaScript submits the form on tick).
    page.get_by_role("group", name="Provider").get_by_label("node-2").check()
    expect(page.locator("#result-count")).to_contain_text("1 dataset")
    assert "provider=node-2" in page.url
    # The reloaded page gives the keyboard focus back to the box just ticked.
    expect(page.get_by_role("group", name="Provider").get_by_label("node-2")).to_be_focused()
    page.get_by_role("link", name="node-2 cohort").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("node-2 cohort")
    expect(page.get_by_role("row", name="Individuals")).to_contain_text(re.compile(r"\d"))
    shots(page, "dataset page")
    assert unlabelled_controls(page) == []
    # Keyboard: the first Tab reaches the skip link, which moves focus to the content.
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    # The API documentation renders from the package's own Swagger UI assets.
    page.goto("/docs")
    expect(page.get_by_text("/api/search", exact=True).first).to_be_visible()
    assert page.js_errors == []
    assert page.external == []


def test_data_holder_edits_the_description(browser: Any, portal: Portal, shots: Shots) -> None:
    from playwright.sync_api import expect

    page = new_page(browser, portal)
    log_in(page, "hana", PASSWORDS["hana"])
    page.goto("/catalogue/node-1:p1-cohort")
    page.get_by_label("Description", exact=True).fill("Lung and breast CT from our oncology unit.")
    page.get_by_label("Keywords (comma-separated)").fill("lung, CT, screening")
    # The country from a list (issue 15: "Germany" was cut to "GER" and kept), and no
    # placeholder sentence pre-filled as a collection method.
    expect(page.get_by_label("Collection method")).to_have_value("")
    page.get_by_label("Country").select_option(label="Germany (DEU)")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    expect(page.locator(".meta").first).to_contain_text("DEU")
    expect(page.locator(".prose").first).to_have_text("Lung and breast CT from our oncology unit.")
    shots(page, "dataset edited")
    # Another provider's dataset offers no edit form to this holder.
    page.goto("/catalogue/node-2:p2-cohort")
    expect(page.get_by_role("heading", name="Edit the description")).to_have_count(0)


def test_cohort_request_approve_grant(browser: Any, portal: Portal, shots: Shots) -> None:
    from playwright.sync_api import expect

    # -- the researcher builds a query and sees each provider's count ----------------------
    page = new_page(browser, portal)
    page.goto("/cohort")
    assert "/login" in page.url  # the explorer needs an account
    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password").fill(PASSWORDS["rita"])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/cohort")
    shots(page, "cohort explorer empty")
    page.get_by_label("Criterion").select_option(label="Sex")
    # Values are ticks with a filter box (issue 15: a narrow Ctrl-click list).
    page.get_by_label("Filter the values").fill("fem")
    expect(page.get_by_label("male", exact=True)).to_be_hidden()
    page.get_by_label("female", exact=True).check()
    page.get_by_role("button", name="Add criterion").click()
    expect(page.locator(".chip.criterion")).to_have_text([re.compile(r"Sex is female\s*\u00d7")])
    # The reloaded page's script (deferred) must be listening before the next choice; on a
    # busy machine the chips show before it runs.
    page.wait_for_load_state("load")
    page.get_by_label("Criterion").select_option(label="Age at diagnosis")
    page.get_by_label("In", exact=True).select_option(label="group 1 (AND)")
    page.get_by_label("Comparison").select_option(label="between")
    page.get_by_label("From / value (years)").fill("30")
    page.get_by_label("To (years)").fill("90")
    page.get_by_role("button", name="Add criterion").click()
    expect(page.locator(".chip.criterion")).to_have_count(2)
    expect(page.locator(".describe")).to_contain_text(
        "Sex is female and Age at diagnosis between 30 and 90 years"
    )
    assert unlabelled_controls(page) == []
    page.get_by_role("button", name="Count patients at every provider").click()
    results = page.locator("#results")
    expect(results).to_contain_text("3 of 3 providers answered")
    for node in ("node-1", "node-2", "node-3"):
        row = results.get_by_role("row", name=node)
        expect(row).to_contain_text("answered")
        count = row.locator("td.num").first.inner_text()
        assert count.replace(",", "").isdigit() and int(count.replace(",", "")) > 0, count
    expect(results.locator("svg.chart rect.bar")).to_have_count(3)
    shots(page, "cohort counts from three nodes")

    # -- save and share -------------------------------------------------------------------
    page.get_by_label("Name").fill("Women 30-90")
    page.get_by_role("button", name="Save query").click()
    share = page.get_by_label("Share link").input_value()
    assert "/cohort?saved=" in share
    # Saving keeps the results on screen, and what is shown downloads as CSV (issue 15).
    expect(page.locator("#results")).to_contain_text("3 of 3 providers answered")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download these counts (CSV)").click()
    rows = Path(download.value.path()).read_text().splitlines()
    assert rows[0].startswith("provider,status,dataset,dataset_name,patients,patients_fewer_than")
    assert [r.split(",")[0] for r in rows[1:]] == ["node-1", "node-2", "node-3"]
    page.goto(share)
    expect(page.get_by_role("status")).to_contain_text("Women 30-90")
    expect(page.locator(".chip.criterion")).to_have_count(2)

    # -- access request from the result -----------------------------------------------------
    page.get_by_role("button", name="Count patients at every provider").click()
    expect(page.locator("#results")).to_contain_text("3 of 3 providers answered")
    expect(page.locator("#results")).to_contain_text("Datasets that matched (3)")
    page.get_by_role("link", name="Request access to these datasets").click()
    # Each dataset once, ticked because its count was released (issue 15: the catalogue's
    # copy used to be listed again, unticked, under a doubled provider prefix).
    boxes = page.locator('input[name="resource"]')
    expect(boxes).to_have_count(3)
    for i in range(3):
        expect(boxes.nth(i)).to_be_checked()
        assert boxes.nth(i).get_attribute("value") == f"node-{i + 1}:p{i + 1}-cohort"
    page.get_by_label("Title").fill("Female lung cancer imaging study")
    for field, text in {
        "Purpose": "Train a nodule detector on female patients.",
        "Hypothesis": "Sex-specific models detect nodules earlier.",
        "Objectives": "Compare detection AUC across sexes.",
        "Methods": "Federated training at the providers; only model updates leave.",
        "Team": "Rita (PI), two PhD students.",
        "Funding": "Horizon Europe grant 101000000.",
        "Ethics approval (committee, number, date)": "CEIm Valencia, 2026/042, 2026-10-01",
    }.items():
        page.get_by_label(field, exact=True).fill(text)
    page.get_by_label("health or medical or biomedical research (HMB)").check()
    shots(page, "access request form")
    page.get_by_role("button", name="Submit request").click()
    expect(page.locator("#request-state")).to_have_text("submitted")
    expect(page.get_by_role("status")).to_contain_text("Submitted for review")
    request_url = page.url.split("?")[0]
    shots(page, "request submitted")
    # The ethics approval, attached on the page, for the DACs to read (issue 15).
    page.get_by_label(
        "Attach a document (ethics approval, protocol; at most 10 MB)"
    ).set_input_files(
        files=[{"name": "ethics.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 x"}]
    )
    page.get_by_role("button", name="Attach", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Document attached")
    expect(page.locator("#documents")).to_contain_text("ethics.pdf")
    log_out(page)

    # -- the hub admin approves and starts it ------------------------------------------------
    log_in(page, "admin", portal.admin_password)
    page.goto(request_url)
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#request-state")).to_have_text("approved")
    page.get_by_role("button", name="Start: contact the providers").click()
    expect(page.locator("#request-state")).to_have_text("in progress")
    expect(page.get_by_role("status")).to_contain_text(
        "each provider's data access committee has been asked to decide"
    )
    page.goto("/dashboard")
    expect(page.get_by_role("row", name="node-1")).to_contain_text("online")
    shots(page, "federation dashboard")
    page.goto("/admin/audit?action=negotiation.")
    expect(page.locator("table.audit")).to_contain_text("negotiation.approve")
    page.get_by_role("link", name="Verify the chain").click()
    expect(page.get_by_role("status")).to_contain_text("The chain is intact")
    shots(page, "audit log")
    log_out(page)

    # -- the DAC member decides from the inbox ----------------------------------------------
    log_in(page, "dora", PASSWORDS["dora"])
    page.goto("/inbox")
    expect(page.get_by_role("heading", name="Awaiting your decision (3)")).to_be_visible()
    shots(page, "dac inbox")
    # One step: "Grant access" is there from the start (issue 15), and says what it did.
    item = page.locator(".inbox-item").filter(has_text="node-1").first
    item.get_by_label("Note to the researcher (optional)").fill(
        "Approved by the DAC on 2026-11-22."
    )
    item.get_by_role("button", name="Grant access").click()
    expect(page.get_by_role("heading", name="Awaiting your decision (2)")).to_be_visible()
    shots(page, "dac decided")
    expect(page.get_by_role("status")).to_contain_text(
        "Access granted: rita now holds a visa for node-1 cohort at node-1"
    )
    page.goto(request_url)
    expect(page.locator("#documents")).to_contain_text("ethics.pdf")
    shots(page, "dac sees the request and its documents")
    log_out(page)

    # -- the researcher sees the change ------------------------------------------------------
    log_in(page, "rita", PASSWORDS["rita"])
    page.goto(request_url)
    expect(page.locator('[data-resource-state="node-1"]')).to_have_text("granted")
    expect(page.locator('[data-resource-state="node-2"]')).to_have_text(
        "awaiting the provider's decision"
    )
    expect(page.locator(".history")).to_contain_text("Approved by the DAC on 2026-11-22.")
    expect(page.locator(".history")).to_contain_text("dora granted access for node-1")
    shots(page, "researcher sees the grant")
    page.goto("/requests")
    expect(page.get_by_role("row", name="Female lung cancer imaging study")).to_contain_text(
        "in progress"
    )
    assert page.js_errors == []
    assert page.external == []


def test_withheld_counts_may_match(browser: Any, portal: Portal, shots: Shots) -> None:
    """A count below a provider's minimum is "may match (fewer than 10)", never "matched",
    and a request started from such a result ticks none of those datasets (issue 15)."""
    from playwright.sync_api import expect

    page = new_page(browser, portal)
    log_in(page, "rita", PASSWORDS["rita"])
    # Men with breast cancer: rare (none in the synthetic data), so every node withholds it.
    query = (
        '{"operand":"AND","children":['
        '{"key":"SNOMEDCT263495000","type":"EQUALS","value":"SNOMEDCT248153007"},'
        '{"key":"SNOMEDCT439401001","type":"EQUALS","value":"SNOMEDCT254837009"}]}'
    )
    page.goto("/cohort?" + urlencode({"q": query}))
    page.get_by_role("button", name="Count patients at every provider").click()
    results = page.locator("#results")
    expect(results).to_contain_text("3 of 3 providers answered")
    expect(results).to_contain_text("Datasets that matched (0)")
    expect(results).to_contain_text(
        "Datasets that may match, fewer than the provider's minimum (3)"
    )
    results.get_by_text("Datasets that may match").click()
    expect(results).to_contain_text("node-1 · node-1 cohort — may match (fewer than 10)")
    shots(page, "cohort withheld counts")
    page.get_by_role("link", name="Request access to these datasets").click()
    boxes = page.locator('input[name="resource"]')
    expect(boxes).to_have_count(3)
    for i in range(3):
        expect(boxes.nth(i)).not_to_be_checked()
    expect(page.locator("fieldset").first).to_contain_text("may match (fewer than 10 patients)")
    shots(page, "request form from a withheld result")
    assert page.js_errors == []


def test_roles_and_sessions(browser: Any, portal: Portal) -> None:
    from playwright.sync_api import expect

    page = new_page(browser, portal)
    log_in(page, "hana", PASSWORDS["hana"])
    # A data holder is not a researcher: the explorer says which role is missing.
    response = page.goto("/cohort")
    assert response is not None and response.status == 403
    expect(page.locator("main")).to_contain_text("needs the role researcher")
    response = page.goto("/admin/audit")
    assert response is not None and response.status == 403
    # A wrong password is refused on the page, with the reason.
    log_out(page)
    page.goto("/login")
    page.get_by_label("Username").fill("hana")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("wrong username or password")
    # After log-out the old session cookie no longer works (the token was revoked).
    log_in(page, "rita", PASSWORDS["rita"])
    cookie = next(c for c in page.context.cookies() if c["name"] == "oncofed_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    log_out(page)
    page.context.add_cookies([cookie])
    page.goto("/requests")
    assert "/login" in page.url
