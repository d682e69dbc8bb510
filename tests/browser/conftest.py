"""Browser tests: Playwright driving Debian's Chromium against a real hub and three nodes.

Chromium comes from the system (`apt-get install chromium`, done by .ci/run when missing);
Playwright never downloads a browser here. Outside CI a machine without Chromium skips these
tests with the reason; under CI=true a missing browser fails the run.

Screenshots of every page visited go to test-artifacts/browser/ (ONCOFED_ARTIFACTS).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from oncofed.hub.admin import add_user, open_hub
from oncofed.local import LocalFederation
from tests.conftest import IN_CI, load_synthetic

CHROMIUM = os.environ.get("ONCOFED_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = (
    Path(
        os.environ.get("ONCOFED_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
    )
    / "browser"
)
PASSWORDS = {"rita": "rita-portal-pass", "dora": "dora-portal-pass", "hana": "hana-portal-pass"}


@dataclass
class Portal:
    url: str
    admin_password: str
    fed: LocalFederation


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if shutil.which(CHROMIUM) or Path(CHROMIUM).exists():
        return CHROMIUM
    if IN_CI:
        pytest.fail(f"CI=true but no Chromium at {CHROMIUM}: .ci/run installs it (apt)")
    pytest.skip(f"no Chromium at {CHROMIUM}; `apt-get install chromium` to run browser tests")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """A hub with three nodes of 200 synthetic patients each, and the portal's users."""
    fed = LocalFederation(tmp_path_factory.mktemp("portal-fed"))
    try:
        fed.init_hub("browser test federation")
        fed.start_hub()
        for i in range(3):
            fed.add_node(f"node-{i + 1}", f"p{i + 1}", start=False)
            load_synthetic(fed.nodes[f"node-{i + 1}"].directory, i, 200)
        for i in range(3):
            fed.start_node(f"node-{i + 1}")
        _, engine = open_hub(fed.hub.directory)
        add_user(engine, "rita", ["researcher"], PASSWORDS["rita"])
        add_user(engine, "dora", [f"dac:node-{i + 1}" for i in range(3)], PASSWORDS["dora"])
        add_user(engine, "hana", ["data_holder:node-1"], PASSWORDS["hana"])
        engine.dispose()
        fed.admin().refresh_catalogue()
        yield Portal(fed.hub.url, fed.admin_password, fed)
    finally:
        fed.stop()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        yield b
        b.close()


class Shots:
    """Saves a full-page screenshot per step, numbered in the order taken."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.n = 0
        directory.mkdir(parents=True, exist_ok=True)

    def __call__(self, page: object, name: str) -> Path:
        self.n += 1
        path = self.directory / f"{self.n:02d}-{re.sub(r'[^a-z0-9]+', '-', name.lower())}.png"
        page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(ARTIFACTS / request.node.name)
