"""What the console's browser tests share: Debian's Chromium driven by Playwright, the
skip (or, under ``make test``, failure) when it is missing, and the axe-core check that
saves each page as a screenshot in ``.recon/screenshots/`` (``RECON_SCREENSHOTS`` names
another folder: ``make screenshots`` writes the README's pages there, ``docs/screenshots/``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import REPO_ROOT, TEST_DATABASE_URL, TEST_REDIS_URL, truncate_all
from tests.support.people import PASSWORD
from tests.support.processes import ApiServer

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO_ROOT / os.environ.get("RECON_SCREENSHOTS", ".recon/screenshots")
# The pages the README shows; under RECON_SCREENSHOTS only these are written.
README_PAGES = {
    "login", "queue-filtered", "detail", "detail-resolved", "queue-phone", "run-report",
    "payout-linked",
}  # fmt: skip
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SEVERE = ("serious", "critical")

# A browser test module's marks: slow, and skipped without Chromium unless `make test`
# (which installs it and sets RECON_REQUIRE_BROWSER: there a missing browser fails).
BROWSER_MARKS = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("RECON_REQUIRE_BROWSER"),
        reason="Debian's chromium is not installed (make chromium)",
    ),
]


def launch() -> Iterator[Browser]:
    """Chromium for one test module (the body of its ``browser`` fixture)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def check(page: Page, name: str) -> None:
    """axe-core finds no serious or critical violation; the page is saved as ``name``."""
    results = Axe().run(page)
    severe = [
        (violation["id"], violation["impact"], violation["help"])
        for violation in results.response["violations"]
        if violation["impact"] in SEVERE
    ]
    assert severe == [], f"{name}: {severe}"
    if "RECON_SCREENSHOTS" in os.environ and name not in README_PAGES:
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in_as(page: Page, base_url: str, email: str, password: str = PASSWORD) -> None:
    """Fill and send the sign-in form as a person would."""
    page.goto(f"{base_url}/console/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@contextmanager
def console_server(
    engine, directory: Path, environment: dict[str, str] | None = None
) -> Iterator[ApiServer]:
    """A ``recon serve`` over the test database for a module's browser tests; every table
    is emptied when it stops."""
    server = ApiServer(
        directory / "serve.log",
        database_url=TEST_DATABASE_URL,
        redis_url=TEST_REDIS_URL,
        workers=1,  # one process starts soonest; its threads serve the browser's requests
        threads=4,
        environment=environment,
    )
    try:
        yield server
    finally:
        server.stop()
        truncate_all(engine)
