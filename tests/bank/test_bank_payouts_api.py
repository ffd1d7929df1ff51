"""Bank account settings, payouts' bank status and manual links, through HTTP."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from shared.bank.matching import reconcile_bank_payouts
from shared.models import BankEntryRecord
from tests.bank.payouts import import_rows, make_payout
from tests.support.checksums import database_checksum
from tests.support.factories import make_org
from tests.support.hostile import bearer

MONDAY = date(2026, 3, 2)
PAYOUTS = "/billing/bank/payouts"
ENTRIES = "/billing/bank/entries"
STRIPE = "STRIPE PAYMENTS EUROPE LTD"


@pytest.fixture
def org(session):
    return make_org(session)


@pytest.fixture
def owner(session, org):
    return bearer(session, org)


@pytest.fixture
def account_id(session, org):
    imported = import_rows(session, org, [(MONDAY, 100, "Someone", "first entry", "R0")])
    return str(imported.statements[0].account.id)


def test_an_accounts_providers_and_country_are_changed_with_its_version(client, owner, account_id):
    path = f"/billing/bank/accounts/{account_id}"
    response = client.patch(
        path, json={"providers": ["stripe", "adyen"], "country": "DE"}, headers=owner
    )
    assert response.status_code == 200, response.json
    assert (response.json["providers"], response.json["country"]) == (["adyen", "stripe"], "DE")
    assert (response.json["version"], response.headers["ETag"]) == (2, '"2"')
    stale = client.patch(path, json={"country": None}, headers=owner | {"If-Match": '"1"'})
    assert stale.status_code == 412
    cleared = client.patch(path, json={"country": None}, headers=owner | {"If-Match": '"2"'})
    assert (cleared.json["country"], cleared.json["version"]) == (None, 3)


@pytest.mark.parametrize(
    "body",
    [
        {"country": "ZZ"},  # no business-day calendar
        {"country": "de"},
        {"providers": ["stripe", "stripe"]},
        {"providers": ["standard"]},
        {"name": None},
        {"iban": "NL91ABNA0417164300"},
        {},
    ],
)
def test_bad_account_settings_are_422_and_change_nothing(client, session, owner, account_id, body):
    before = database_checksum(session)
    response = client.patch(f"/billing/bank/accounts/{account_id}", json=body, headers=owner)
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert database_checksum(session) == before


def test_payouts_show_their_linked_entry_or_suggestions(client, session, org, owner):
    linked = make_payout(session, org, "po_1Pgc79B7WZ01zgkWu1KToYf4", 110000, MONDAY)
    first = make_payout(session, org, "po_first_of_two", 5000, MONDAY)
    make_payout(session, org, "po_second_of_two", 5000, MONDAY)
    lonely = make_payout(session, org, "po_nothing_seen_yet", 700, MONDAY)
    import_rows(session, org, [
        (MONDAY, 109990, STRIPE, "po_1Pgc79B7WZ01zgkWu1KToYf4", "R1"),
        (MONDAY, 5000, STRIPE, "STRIPE PAYOUT", "R2"),
    ])  # fmt: skip
    reconcile_bank_payouts(session=session, org_id=org.id, now=datetime(2026, 3, 2, tzinfo=UTC))
    items = {item["id"]: item for item in client.get(PAYOUTS, headers=owner).json["items"]}
    shown = items[str(linked.id)]
    assert shown["bank_status"] == "linked"
    entry = shown["linked_entry"]
    assert (entry["method"], entry["amount_minor"], entry["difference_minor"]) == (
        "reference", 109990, -10,
    )  # fmt: skip
    assert items[str(first.id)]["bank_status"] == "suggested"
    assert [s["method"] for s in items[str(first.id)]["suggestions"]] == ["amount"]
    assert (items[str(lonely.id)]["bank_status"], items[str(lonely.id)]["linked_entry"]) == (
        "unlinked", None,
    )  # fmt: skip
    suggested = client.get(PAYOUTS, query_string={"bank_status": "suggested"}, headers=owner)
    assert len(suggested.json["items"]) == 2
    matched = client.get(ENTRIES, query_string={"unmatched": "false"}, headers=owner).json
    assert [entry["amount_minor"] for entry in matched["items"]] == [109990]
    unmatched = client.get(ENTRIES, query_string={"unmatched": "true"}, headers=owner).json
    assert sorted(entry["amount_minor"] for entry in unmatched["items"]) == [5000]


def test_a_person_links_and_unlinks_with_a_reason(client, session, org, owner):
    payout = make_payout(session, org, "po_first_of_two", 5000, MONDAY)
    make_payout(session, org, "po_second_of_two", 5000, MONDAY)
    import_rows(session, org, [(MONDAY, 5000, STRIPE, "STRIPE PAYOUT", "R2")])
    reconcile_bank_payouts(session=session, org_id=org.id, now=datetime(2026, 3, 2, tzinfo=UTC))
    path = f"{PAYOUTS}/{payout.id}"
    entry_id = client.get(path, headers=owner).json["suggestions"][0]["entry_id"]
    assert (
        client.post(f"{path}/link", json={"entry_id": entry_id}, headers=owner).status_code == 422
    )
    linked = client.post(
        f"{path}/link", json={"entry_id": entry_id, "reason": "the amount and the day"},
        headers=owner,
    )  # fmt: skip
    assert linked.status_code == 200, linked.json
    assert (linked.json["bank_status"], linked.json["linked_entry"]["method"]) == (
        "linked", "manual",
    )  # fmt: skip
    again = client.post(
        f"{path}/link", json={"entry_id": entry_id, "reason": "twice"}, headers=owner
    )
    assert again.status_code == 409
    unlinked = client.post(f"{path}/unlink", json={"reason": "wrong payout"}, headers=owner)
    assert (unlinked.status_code, unlinked.json["bank_status"]) == (200, "unlinked")
    nothing = client.post(f"{path}/unlink", json={"reason": "wrong payout"}, headers=owner)
    assert nothing.status_code == 404


def test_another_organisations_entry_cannot_be_linked(client, session, org, owner):
    payout = make_payout(session, org, "po_first_of_two", 5000, MONDAY)
    other = make_org(session)
    imported = import_rows(session, other, [(MONDAY, 5000, STRIPE, "STRIPE PAYOUT", "R2")])
    session.flush()
    [entry] = imported.statements
    entry_id = session.scalars(
        select(BankEntryRecord.id).where(BankEntryRecord.bank_statement_id == entry.record.id)
    ).one()
    before = database_checksum(session)
    response = client.post(
        f"{PAYOUTS}/{payout.id}/link", json={"entry_id": str(entry_id), "reason": "mine"},
        headers=owner,
    )  # fmt: skip
    assert response.status_code == 404
    assert database_checksum(session) == before


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"bank_status": "lost"}, 422),
        ({"limit": "0"}, 422),
        ({"cursor": "not-a-cursor"}, 400),
        ({"extra": "1"}, 422),
    ],
)
def test_a_bad_payout_query_is_a_problem_and_changes_nothing(client, session, owner, query, status):
    before = database_checksum(session)
    response = client.get(PAYOUTS, query_string=query, headers=owner)
    assert (response.status_code, response.mimetype) == (status, "application/problem+json")
    assert database_checksum(session) == before


@pytest.mark.parametrize(
    "body",
    [
        {"entry_id": "not-a-uuid", "reason": "x"},
        {"entry_id": "00000000-0000-0000-0000-000000000000", "reason": ""},
        {"entry_id": "00000000-0000-0000-0000-000000000000", "reason": "x" * 2001},
        {"reason": "no entry"},
    ],
)
def test_a_bad_link_is_422_and_changes_nothing(client, session, org, owner, body):
    payout = make_payout(session, org, "po_first_of_two", 5000, MONDAY)
    before = database_checksum(session)
    response = client.post(f"{PAYOUTS}/{payout.id}/link", json=body, headers=owner)
    assert (response.status_code, response.mimetype) == (422, "application/problem+json")
    assert database_checksum(session) == before
