"""The console in a real browser: Debian's Chromium, driven by Playwright, against a real
``recon serve`` on the test PostgreSQL and Redis.

Every page a test opens is checked by axe-core (no serious or critical violation) and
saved as a screenshot (``tests/console/browser.py``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from shared.access.users import add_user
from shared.models import ReconciliationDiscrepancy, ReconciliationRun
from shared.platform.db import unit_of_work
from tests.console.browser import BROWSER_MARKS, DESKTOP, PHONE, check, console_server, sign_in_as
from tests.discrepancies.factories import make_record
from tests.runs.test_history import stored_report
from tests.support.factories import make_account, make_event, make_org, make_payment
from tests.support.people import PASSWORD, make_person

pytestmark = BROWSER_MARKS


@dataclass(frozen=True)
class Stage:
    """What the browser tests work on: a running server and an organisation's people."""

    base_url: str
    emails: dict[str, str]  # role (and "throttled", "invited") → email
    invitation: str  # a one-time link to set the invited person's password
    discrepancies: list[uuid.UUID]  # the organisation's, each test takes its own
    foreign: uuid.UUID  # another organisation's discrepancy
    bulk: list[uuid.UUID]  # the only low ones 8 to 30 days old: resolved in bulk
    run: uuid.UUID  # a completed run, the last of several


def _discrepancy(session, org, *, severity: str, amount: int, age_days: int, secret: str):
    occurred_at = datetime.now(UTC) - timedelta(days=age_days, hours=1)
    payment = make_payment(session, org, amount_minor=amount, currency="EUR",
                           occurred_at=occurred_at)  # fmt: skip
    record = make_record(
        session, org, amount_minor=amount - 100, merchant_reference=payment.external_id,
        occurred_at=occurred_at,
    )  # fmt: skip
    payment.provider_reference = record.provider_reference
    account = make_account(session, org)
    intent = {"id": record.provider_reference, "amount": amount - 100, "client_secret": secret}
    make_event(session, account, payload={"data": {"object": intent}})
    discrepancy = ReconciliationDiscrepancy(
        org_id=org.id, type="AmountMismatch", severity=severity, status="open",
        payment_id=payment.id, provider_record_id=record.id, amount_minor=amount,
        currency="EUR", difference_minor=-100,
        opened_at=datetime.now(UTC) - timedelta(days=age_days),
    )  # fmt: skip
    session.add(discrepancy)
    session.flush()
    return discrepancy.id


def _runs(session, org) -> uuid.UUID:
    """Ten completed daily runs with their reports; the last one's id."""
    runs = []
    for day, percent in enumerate((96.5, 97.25, 95.0, 98.1, 99.0, 97.8, 98.6, 99.2, 98.9, 99.4)):
        period = datetime.now(UTC).date() - timedelta(days=10 - day)
        report = stored_report(
            percent,
            discrepancies_by_type={"AmountMismatch": 4 + day % 3, "MissingProviderRecord": 2,
                                   "MissingInternalRecord": 1, "StatusMismatch": day % 2},
            mismatch_amount_by_currency={"EUR": 12_550, "USD": 4_000},
            unmatched_amount_by_currency={"internal": {"EUR": 98_050}, "provider": {"GBP": 1_999}},
        )  # fmt: skip
        run = ReconciliationRun(
            org_id=org.id, period_start=period, period_end=period, status="completed",
            triggered_by="schedule", created_at=datetime.now(UTC) - timedelta(days=9 - day),
            finished_at=datetime.now(UTC) - timedelta(days=9 - day), matched=90 + day,
            payments_checked=100, provider_records_checked=100, discrepancies_opened=7,
            report_json=report,
        )  # fmt: skip
        session.add(run)
        runs.append(run)
    session.flush()
    return runs[-1].id


@pytest.fixture(scope="module")
def stage(engine, redis_client, tmp_path_factory) -> Iterator[Stage]:
    """Committed data and a ``recon serve`` reading it; everything is emptied afterwards."""
    with unit_of_work() as session:
        org, other = make_org(session, name="Acme"), make_org(session)
        emails = {}
        for role, name in (("owner", "Olga Owner"), ("manager", "Ana Lima"),
                           ("viewer", "Vic Viewer"), ("throttled", "Tom Tries")):  # fmt: skip
            person = make_person(
                session, org, role="manager" if role == "throttled" else role, name=name,
                email=f"{name.split()[0].lower()}@acme.example",
            )  # fmt: skip
            emails[role] = person.email
        invited = add_user(
            session=session, org_id=org.id, email="new@example.com", name="Nia New", role="viewer"
        )
        emails["invited"] = invited.user.email
        cases = (
            ("high", 125_000, 1), ("high", 98_050, 3), ("medium", 4_200, 9),
            ("low", 1_999, 40), ("high", 77_700, 0), ("medium", 15_000, 12),
        )  # fmt: skip
        discrepancies = [
            _discrepancy(
                session,
                org,
                severity=severity,
                amount=amount,
                age_days=age,
                secret="pi_secret_never_shown",
            )
            for severity, amount, age in cases
        ]
        foreign = _discrepancy(
            session, other, severity="high", amount=500, age_days=1, secret="other"
        )
        bulk = [
            _discrepancy(session, org, severity="low", amount=amount, age_days=20, secret="s")
            for amount in (3_300, 4_400)
        ]
        run = _runs(session, org)
    login_limits = {"CONSOLE_LOGIN_MAX_FAILURES": "3", "CONSOLE_LOGIN_ADDRESS_MAX_FAILURES": "1000"}
    with console_server(engine, tmp_path_factory.mktemp("console"), login_limits) as server:
        yield Stage(server.base_url, emails, invited.url, discrepancies, foreign, bulk, run)


def sign_in(page: Page, stage: Stage, role: str, password: str = PASSWORD) -> None:
    sign_in_as(page, stage.base_url, stage.emails[role], password)


def session_id(page: Page) -> str | None:
    cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
    return cookies.get("recon_session")


def test_a_manager_works_a_discrepancy_from_the_queue_to_the_log(page, stage):
    page.goto(f"{stage.base_url}/console/")
    expect(page).to_have_url(re.compile(r"/console/login\?next=(/|%2F)console(/|%2F)$"))
    check(page, "login")
    planted = {"name": "recon_session", "value": "planted", "domain": "127.0.0.1"}
    page.context.add_cookies([planted | {"path": "/"}])
    sign_in(page, stage, "manager")
    expect(page.get_by_role("heading", name="Queue")).to_be_visible()
    assert session_id(page) not in (None, "planted")
    check(page, "queue")

    page.get_by_label("Severity").select_option("high")
    page.get_by_label("Currency").fill("EUR")
    page.get_by_label("Amount from").fill("900")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)  # 1,250.00 and 980.50; 777.00 is below the bound
    check(page, "queue-filtered")

    page.get_by_role("link", name=rows.first.locator("a").inner_text()).first.click()
    expect(page.get_by_role("heading", name="Payment and provider record")).to_be_visible()
    expect(page.locator("tr.differs").first).to_contain_text("Amount")
    page.locator("summary").first.click()
    expect(page.locator("pre").first).to_contain_text("[hidden]")
    assert "pi_secret_never_shown" not in page.content()
    check(page, "detail")

    page.get_by_role("button", name="Acknowledge").click()
    page.get_by_label("Assign to").select_option(label=f"Olga Owner ({stage.emails['owner']})")
    page.get_by_role("button", name="Assign").click()
    page.get_by_label("Note").fill("Asked Stripe support about the fee.")
    page.get_by_role("button", name="Add note").click()
    page.get_by_label("Resolution").select_option("provider_error")
    page.get_by_label("Reason").fill("Stripe corrected the amount.")
    page.get_by_role("button", name="Resolve").click()
    log = page.locator("ol.log")
    expect(log).to_contain_text("resolved by Ana Lima")
    expect(log).to_contain_text("acknowledged by Ana Lima")
    expect(log).to_contain_text("Asked Stripe support about the fee.")
    expect(page.get_by_role("heading", name="Actions")).to_have_count(0)
    check(page, "detail-resolved")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("You are signed out.")
    page.goto(f"{stage.base_url}/console/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_stale_form_shows_a_message_not_an_error_page(browser, stage):
    first, second = (browser.new_context(viewport=DESKTOP).new_page() for _ in range(2))
    path = f"{stage.base_url}/console/discrepancies/{stage.discrepancies[2]}"
    for tab in (first, second):
        sign_in(tab, stage, "owner")
        tab.goto(path)
    first.get_by_label("Note").fill("first")
    first.get_by_role("button", name="Add note").click()
    second.get_by_label("Note").fill("second, from an old page")
    second.get_by_role("button", name="Add note").click()
    expect(second.get_by_role("alert")).to_contain_text("Someone changed this discrepancy")
    check(second, "detail-stale")
    for tab in (first, second):
        tab.context.close()


def test_a_viewer_sees_no_action_and_a_forged_post_is_refused(page, stage):
    sign_in(page, stage, "viewer")
    page.goto(f"{stage.base_url}/console/discrepancies/{stage.discrepancies[3]}")
    expect(page.get_by_role("heading", name="Action log")).to_be_visible()
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    token = page.locator("input[name=csrf_token]").first.input_value()
    forged = page.request.post(
        f"{stage.base_url}/console/discrepancies/{stage.discrepancies[3]}/acknowledge",
        form={"csrf_token": token, "version": "1"},
        max_redirects=0,
    )
    assert forged.status == 403
    page.set_content(forged.text())
    check(page, "forbidden")


def test_another_organisation_s_discrepancy_is_a_404_page(page, stage):
    sign_in(page, stage, "owner")
    response = page.goto(f"{stage.base_url}/console/discrepancies/{stage.foreign}")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    check(page, "not-found")


def test_a_post_without_its_csrf_token_is_refused(page, stage):
    sign_in(page, stage, "manager")
    refused = page.request.post(
        f"{stage.base_url}/console/discrepancies/{stage.discrepancies[4]}/acknowledge",
        form={"version": "1"},
        max_redirects=0,
    )
    assert refused.status == 403
    page.goto(f"{stage.base_url}/console/discrepancies/{stage.discrepancies[4]}")
    expect(page.locator("dl.facts")).to_contain_text("open")


def test_brute_force_is_throttled_per_account(page, stage):
    for _ in range(3):
        sign_in(page, stage, "throttled", password="wrong password!")
        expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    sign_in(page, stage, "throttled")  # the right password, too late
    expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins")
    assert session_id(page) is None


def test_pages_forbid_framing_and_inline_code(page, stage):
    response = page.goto(f"{stage.base_url}/console/login")
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["x-frame-options"] == "DENY"


def test_the_one_time_link_sets_a_password_then_the_person_signs_in(page, stage):
    # The link names CONSOLE_BASE_URL; this server listens elsewhere.
    page.goto(stage.base_url + stage.invitation.removeprefix("http://127.0.0.1:8000"))
    expect(page.get_by_text("Welcome, Nia New")).to_be_visible()
    check(page, "set-password")
    page.get_by_label("New password").fill("a brand new passphrase")
    page.get_by_label("The same password again").fill("a brand new passphrase")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password is set")
    sign_in(page, stage, "invited", password="a brand new passphrase")
    expect(page.get_by_role("heading", name="Queue")).to_be_visible()


def test_the_queue_reads_on_a_phone(browser, stage):
    context = browser.new_context(viewport=PHONE, is_mobile=True)
    phone = context.new_page()
    sign_in(phone, stage, "owner")
    expect(phone.get_by_role("heading", name="Queue")).to_be_visible()
    check(phone, "queue-phone")
    context.close()


def test_a_manager_bulk_resolves_from_the_queue(page, stage):
    sign_in(page, stage, "manager")
    page.get_by_label("Severity").select_option("low")
    page.get_by_label("Age (days)").select_option("8-30")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator(".ageing > ul > li").nth(2)).to_contain_text("77.00 EUR")
    for box in page.locator("input[name=selected]").all():
        box.check()
    page.get_by_label("Action").select_option("resolve")
    page.get_by_label("Reason").fill("Written off: below the threshold.")
    page.get_by_label("Resolution").select_option("other")
    check(page, "queue-bulk")
    page.get_by_role("button", name="Apply to ticked rows").click()
    expect(page.get_by_role("status")).to_have_text("Resolve: 2 changed, 0 refused.")
    check(page, "bulk-result")
    page.get_by_role("link", name="Back to the queue").click()
    expect(rows).to_have_text(["Nothing matches these filters."])
    page.goto(f"{stage.base_url}/console/discrepancies/{stage.bulk[0]}")
    expect(page.locator("ol.log")).to_contain_text("resolved by Ana Lima")


def test_an_owner_reads_a_run_s_report(page, stage):
    # Triggering a run and replaying an event are left to the page tests: here a Celery
    # worker of the session may be running, and would work on this stage's rows.
    sign_in(page, stage, "owner")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs").click()
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Trigger the run")).to_be_visible()
    check(page, "runs")
    refused = []  # what the Content-Security-Policy blocked, as Chromium reports it
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)  # fmt: skip
    page.locator(f"a[href='/console/runs/{stage.run}']").click()
    expect(page.locator(".charts svg")).to_have_count(3)
    assert refused == []
    expect(page.get_by_role("img", name=re.compile("Matched"))).to_be_visible()
    check(page, "run-report")


def test_a_manager_sees_the_webhook_events_waiting(page, stage):
    sign_in(page, stage, "manager")
    page.get_by_role("link", name="Webhook events").click()
    expect(page.get_by_role("heading", name="Webhook events")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Replay"))).not_to_have_count(0)
    check(page, "events")
