"""The cash pages in a real browser (``tests/console/browser.py``): a manager uploads a
settlement report, opens a payout and links it to a bank entry with a reason; every page
is checked by axe-core and saved as a screenshot."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pytest
from playwright.sync_api import expect

from shared.platform.db import unit_of_work
from tests.bank.payouts import import_rows
from tests.console.browser import BROWSER_MARKS, check, console_server, sign_in_as
from tests.settlements.reading import FIXTURES as SETTLEMENT_FIXTURES
from tests.support.factories import make_org
from tests.support.people import make_person

pytestmark = BROWSER_MARKS

ADYEN = SETTLEMENT_FIXTURES / "adyen" / "settlement_details_every_type.csv"


@dataclass(frozen=True)
class Stage:
    """A running server, an organisation's people, and its bank statement: two entries
    of the Adyen file's EUR payout (106.06 EUR), so it is never linked automatically."""

    base_url: str
    emails: dict[str, str]  # role → email


@pytest.fixture(scope="module")
def stage(engine, redis_client, tmp_path_factory) -> Iterator[Stage]:
    """Committed data and a ``recon serve`` reading it; everything is emptied afterwards."""
    with unit_of_work() as session:
        org = make_org(session, name="Acme")
        emails = {
            role: make_person(session, org, role=role, name=name,
                              email=f"{name.split()[0].lower()}@cash.example").email
            for role, name in (("manager", "Ana Lima"), ("viewer", "Vic Viewer"))
        }  # fmt: skip
        import_rows(session, org, [
            (date(2026, 5, 5), 10_606, "Adyen N.V.", "Payout", "AB-1"),
            (date(2026, 5, 6), 10_606, "Adyen N.V.", "Payout", "AB-2"),
            (date(2026, 5, 6), -1_250, "Office rent", "May", "RENT-5"),
        ])  # fmt: skip
    with console_server(engine, tmp_path_factory.mktemp("console-cash")) as server:
        yield Stage(server.base_url, emails)


def test_a_manager_uploads_a_settlement_file_and_links_its_payout_to_a_bank_entry(page, stage):
    sign_in_as(page, stage.base_url, stage.emails["manager"])
    main = page.get_by_role("navigation", name="Main")
    main.get_by_role("link", name="Settlements").click()
    expect(page.get_by_role("heading", name="Settlements", exact=True)).to_be_visible()
    page.get_by_label("Settlement file").set_input_files(ADYEN)
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status")).to_contain_text("Imported settlement_details_every_type.csv")
    expect(page.locator("tbody tr").first).to_contain_text("Ana Lima")
    check(page, "settlements")

    main.get_by_role("link", name="Bank").click()
    expect(page.get_by_role("heading", name="Entries")).to_be_visible()
    expect(page.locator("code").first).to_have_text("NL91…4300")
    check(page, "bank")

    main.get_by_role("link", name="Payouts").click()
    expect(page.locator("tbody tr")).to_have_count(3)
    check(page, "payouts")
    page.locator("tbody tr", has_text="106.06 EUR").get_by_role("link").click()
    expect(page.get_by_role("heading", name="Payout adyen 501")).to_be_visible()
    expect(page.get_by_role("heading", name="Fees by component")).to_be_visible()
    check(page, "payout")

    page.get_by_label("Entry", exact=True).select_option(
        label="2026-05-05 · 106.06 EUR · Adyen N.V."
    )
    page.get_by_label("Why link it").fill("Adyen's statement names batch 501 on this transfer.")
    page.get_by_role("button", name="Link", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("The payout is linked to the entry.")
    expect(page.locator("dl.facts")).to_contain_text("linked")
    history = page.locator("ol.log")
    expect(history).to_contain_text("linked (manual) by Ana Lima")
    expect(history).to_contain_text("Adyen's statement names batch 501 on this transfer.")
    check(page, "payout-linked")


def test_a_viewer_reads_the_payouts_without_any_form(page, stage):
    sign_in_as(page, stage.base_url, stage.emails["viewer"])
    page.goto(f"{stage.base_url}/console/payouts?currency=EUR")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile("^Payout"))).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^(Link|Unlink)$"))).to_have_count(0)
    check(page, "payout-viewer")
    page.goto(f"{stage.base_url}/console/bank")
    expect(page.get_by_role("button", name="Upload")).to_have_count(0)
