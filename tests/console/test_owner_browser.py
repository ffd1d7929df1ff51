"""The owners' pages in a real browser (Chromium, Playwright, axe-core, as in
test_browser.py): settings and their history, registering a provider account, adding a
person whose link sets their password, and disabling a person."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from shared.platform.db import unit_of_work
from tests.console import test_browser
from tests.console.browser import console_server
from tests.console.test_browser import DESKTOP, check, sign_in
from tests.support.factories import make_org
from tests.support.log_leaks import register_secret
from tests.support.people import make_person

pytestmark = test_browser.pytestmark
# The links name CONSOLE_BASE_URL; the test server listens elsewhere.
CONSOLE_BASE_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Stage:
    """A running server and an organisation's people (role or first name → email)."""

    base_url: str
    emails: dict[str, str]


@pytest.fixture(scope="module")
def stage(engine, redis_client, tmp_path_factory) -> Iterator[Stage]:
    """Committed people and a ``recon serve`` reading them; everything is emptied after."""
    with unit_of_work() as session:
        org = make_org(session, name="Acme")
        emails = {}
        for key, role, name in (("owner", "owner", "Olga Owner"), ("vic", "viewer", "Vic Viewer"),
                                ("max", "manager", "Max Manager")):  # fmt: skip
            email = f"{name.split()[0].lower()}@acme.example"
            emails[key] = make_person(session, org, role=role, name=name, email=email).email
    with console_server(engine, tmp_path_factory.mktemp("owner-console")) as server:
        yield Stage(server.base_url, emails)


def open_owner_page(page: Page, stage: Stage, link: str) -> None:
    sign_in(page, stage, "owner")
    page.get_by_role("navigation", name="Main").get_by_role("link", name=link).click()
    expect(page.get_by_role("heading", name=link, exact=True)).to_be_visible()


def test_an_owner_changes_a_setting_and_sees_it_in_the_history(page, stage):
    open_owner_page(page, stage, "Settings")
    check(page, "settings")
    page.get_by_label("Grace period (seconds)").fill("900")
    page.get_by_label("Settlement delay, adyen (business days)").fill("5")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("The settings are saved.")
    expect(page.get_by_label("Grace period (seconds)")).to_have_value("900")
    history = page.locator("section[aria-labelledby=history-title] tbody tr")
    grace = history.filter(has_text="grace_period_seconds")
    expect(grace).to_contain_text("Olga Owner")
    expect(grace.locator("td.value")).to_have_text(["3600", "900"])
    expect(history.filter(has_text="settlement_delay_days")).to_contain_text('{"adyen": 5}')
    check(page, "settings-saved")


def test_a_stale_settings_form_is_a_message_not_an_error_page(browser, stage):
    first, second = (browser.new_context(viewport=DESKTOP).new_page() for _ in range(2))
    for tab in (first, second):
        open_owner_page(tab, stage, "Settings")
    first.get_by_label("Daily run hour").fill("4")
    first.get_by_role("button", name="Save settings").click()
    expect(first.get_by_role("status")).to_have_text("The settings are saved.")
    second.get_by_label("Daily run hour").fill("5")
    second.get_by_role("button", name="Save settings").click()
    expect(second.get_by_role("alert")).to_contain_text("Someone changed the settings")
    expect(second.get_by_label("Daily run hour")).to_have_value("4")
    check(second, "settings-stale")
    for tab in (first, second):
        tab.context.close()


def test_an_owner_registers_a_provider_account(page, stage):
    open_owner_page(page, stage, "Provider accounts")
    check(page, "provider-accounts")
    page.get_by_label("Provider").select_option("stripe")
    page.get_by_label("Name (optional)").fill("EU shop")
    page.get_by_role("button", name="Register the account").click()
    expect(page.get_by_role("heading", name="EU shop")).to_be_visible()
    secret = register_secret(page.locator(".one-time code").inner_text())
    assert secret.startswith("whsec_")
    webhook = re.compile(rf"{CONSOLE_BASE_URL}/webhooks/stripe/[0-9a-f-]{{36}}")
    expect(page.locator("dl.facts")).to_contain_text(webhook)
    check(page, "provider-account-registered")

    page.locator("input[name=fee_currency]").first.fill("EUR")
    page.locator("input[name=fee_percent]").first.fill("1.4")
    page.locator("input[name=fee_fixed_minor]").first.fill("25")
    page.get_by_label("Payout arrival (business days)").fill("3")
    page.get_by_role("button", name="Save the account").click()
    expect(page.get_by_role("status")).to_have_text("The account is saved.")
    expect(page.locator("input[name=fee_currency]").first).to_have_value("EUR")
    assert secret not in page.content()
    check(page, "provider-account")

    page.get_by_role("link", name="← Provider accounts").click()
    row = page.locator("tbody tr", has_text="EU shop")
    expect(row).to_contain_text(webhook)
    expect(row).to_contain_text(hashlib.sha256(secret.encode()).hexdigest()[:8])  # fingerprint
    assert secret not in page.content()


def test_an_owner_adds_a_person_whose_link_sets_their_password(browser, page, stage):
    open_owner_page(page, stage, "People")
    check(page, "people")
    page.get_by_label("Email").fill("nia@acme.example")
    page.get_by_label("Name").fill("Nia New")
    page.get_by_label("Role").select_option("manager")
    page.get_by_role("button", name="Add the person").click()
    expect(page.get_by_role("heading", name="The one-time link for Nia New")).to_be_visible()
    link = page.locator(".one-time code").inner_text()
    expect(page.locator("tbody tr", has_text="Nia New")).to_contain_text("no password yet")
    check(page, "people-link")

    context = browser.new_context(viewport=DESKTOP)
    newcomer = context.new_page()
    newcomer.goto(stage.base_url + link.removeprefix(CONSOLE_BASE_URL))
    expect(newcomer.get_by_text("Welcome, Nia New")).to_be_visible()
    newcomer.get_by_label("New password").fill("nia's first passphrase")
    newcomer.get_by_label("The same password again").fill("nia's first passphrase")
    newcomer.get_by_role("button", name="Set password").click()
    expect(newcomer.get_by_role("status")).to_contain_text("Your password is set")
    sign_in(newcomer, Stage(stage.base_url, {"nia": "nia@acme.example"}), "nia",
            password="nia's first passphrase")  # fmt: skip
    expect(newcomer.get_by_role("heading", name="Queue")).to_be_visible()
    context.close()


def test_an_owner_disables_a_person_who_can_then_no_longer_sign_in(browser, page, stage):
    context = browser.new_context(viewport=DESKTOP)
    vic = context.new_page()
    sign_in(vic, stage, "vic")
    expect(vic.get_by_role("heading", name="Queue")).to_be_visible()

    open_owner_page(page, stage, "People")
    expect(page.get_by_role("button", name="Disable Olga Owner")).to_have_count(0)
    page.get_by_role("button", name="Disable Vic Viewer").click()
    expect(page.get_by_role("status")).to_have_text("Vic Viewer can no longer sign in.")
    expect(page.locator("tbody tr", has_text="Vic Viewer")).to_contain_text("disabled")
    check(page, "people-disabled")

    vic.reload()
    expect(vic.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in(vic, stage, "vic")
    expect(vic.get_by_role("alert")).to_have_text("Wrong email or password.")
    context.close()


def test_a_manager_has_no_owner_page(page, stage):
    sign_in(page, stage, "max")
    menu = page.get_by_role("navigation", name="Main")
    expect(menu.get_by_role("link", name="Runs")).to_be_visible()
    for name in ("Settings", "Provider accounts", "People"):
        expect(menu.get_by_role("link", name=name)).to_have_count(0)
    response = page.goto(f"{stage.base_url}/console/settings")
    assert response.status == 403
