"""Payouts matched to bank entries, and the bank discrepancies, on the real database."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from shared.access.api_keys import Caller
from shared.bank.accounts import AccountSettingsChange, change_account_settings
from shared.bank.imports import import_statement_file
from shared.bank.matching import link_payout, reconcile_bank_payouts, unlink_payout
from shared.discrepancies.lifecycle import resolve
from shared.models import (
    BankAccount,
    BankEntryRecord,
    BankPayoutLinkLogEntry,
    BankPayoutSuggestion,
    ReconciliationActionLog,
)
from shared.platform.errors import Conflict
from shared.platform.tasks import MATCH_BANK_PAYOUTS
from tests.bank.payouts import discrepancies, import_rows, links, make_payout
from tests.bank.support import fixture_bytes
from tests.support.factories import make_account, make_org
from worker.tasks import match_bank_payouts, sweep_bank_payouts

MONDAY = date(2026, 3, 2)
STRIPE = "STRIPE PAYMENTS EUROPE LTD"


def at(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC).replace(hour=12)


@pytest.fixture
def org(session):
    return make_org(session)


def entry_id(session, org, amount_minor: int):
    return session.scalars(
        select(BankEntryRecord.id).where(
            BankEntryRecord.org_id == org.id, BankEntryRecord.amount_minor == amount_minor
        )
    ).one()


def reconcile(session, org, day: date):
    return reconcile_bank_payouts(session=session, org_id=org.id, now=at(day))


def actions(session, discrepancy) -> list[str]:
    query = select(ReconciliationActionLog.action).where(
        ReconciliationActionLog.discrepancy_id == discrepancy.id
    )
    return list(session.scalars(query.order_by(ReconciliationActionLog.created_at)))


# --- StatementBalanceMismatch ---------------------------------------------------------


def test_an_unbalanced_statement_opens_a_statement_balance_mismatch_in_the_import(session, org):
    broken = fixture_bytes("statement.sta").replace(
        b":62F:C260302EUR1249,75", b":62F:C260302EUR1249,00"
    )
    imported = import_statement_file(
        session=session, org_id=org.id, binary=io.BytesIO(broken), filename="x.sta"
    )
    [found] = discrepancies(session, org)
    record = imported.statements[0].record
    assert (found.type, found.severity, found.bank_statement_id) == (
        "StatementBalanceMismatch", "high", record.id,
    )  # fmt: skip
    assert (found.amount_minor, found.currency, found.difference_minor) == (124900, "EUR", -75)
    [opened] = session.scalars(
        select(ReconciliationActionLog).where(ReconciliationActionLog.discrepancy_id == found.id)
    )
    assert opened.action == "opened"
    assert opened.payload["finding"]["closing_balance_minor"] == 124900


def test_a_balanced_statement_or_the_same_file_again_opens_nothing_more(session, org):
    import_statement_file(
        session=session, org_id=org.id, binary=io.BytesIO(fixture_bytes("statement.sta")),
        filename="ok.sta",
    )  # fmt: skip
    assert discrepancies(session, org) == []


# --- links ------------------------------------------------------------------------------


def test_an_entry_naming_the_payout_is_linked_by_reference_and_logged(session, org):
    payout = make_payout(session, org, "po_1Pgc79B7WZ01zgkWu1KToYf4", 110000, MONDAY)
    import_rows(
        session, org, [(MONDAY, 110000, STRIPE, "STRIPE po_1Pgc79B7WZ01zgkWu1KToYf4", "R1")]
    )
    outcome = reconcile(session, org, MONDAY)
    entry = entry_id(session, org, 110000)
    assert links(session, org) == {(payout.id, entry, "reference")}
    assert (outcome.linked, outcome.opened) == (1, 0)
    [logged] = session.scalars(select(BankPayoutLinkLogEntry))
    assert (logged.action, logged.method, logged.actor) == ("linked", "reference", "system")


def test_a_unique_amount_near_the_expected_arrival_is_linked_by_amount(session, org):
    payout = make_payout(session, org, "po_unknown_to_the_bank", 5000, MONDAY)
    far = make_payout(session, org, "po_far_from_its_entry", 7000, date(2026, 2, 1))
    import_rows(session, org, [
        (date(2026, 3, 3), 5000, STRIPE, "STRIPE PAYOUT", "R1"),
        (date(2026, 3, 3), 7000, STRIPE, "STRIPE PAYOUT", "R2"),
    ])  # fmt: skip
    reconcile(session, org, date(2026, 3, 3))
    assert links(session, org) == {(payout.id, entry_id(session, org, 5000), "amount")}
    assert far.id not in {payout_id for payout_id, _, _ in links(session, org)}


def test_two_payouts_of_one_amount_are_suggested_never_linked(session, org):
    first = make_payout(session, org, "po_first_of_two", 5000, MONDAY)
    second = make_payout(session, org, "po_second_of_two", 5000, MONDAY)
    import_rows(session, org, [(MONDAY, 5000, STRIPE, "STRIPE PAYOUT", "R1")])
    outcome = reconcile(session, org, MONDAY)
    entry = entry_id(session, org, 5000)
    assert links(session, org) == set()
    suggested = session.execute(
        select(BankPayoutSuggestion.settlement_payout_id, BankPayoutSuggestion.bank_entry_id)
    ).all()
    assert set(suggested) == {(first.id, entry), (second.id, entry)}
    assert outcome.suggested == 2
    # a suggestion is no unexpected deposit
    assert discrepancies(session, org, type="UnexpectedDeposit") == []


def test_a_negative_payout_matches_a_debit(session, org):
    payout = make_payout(session, org, "po_debit_of_the_balance", -2500, MONDAY)
    import_rows(session, org, [
        (MONDAY, 2500, "Customer", "refund of nothing", "R1"),
        (MONDAY, -2500, STRIPE, "STRIPE DEBIT", "R2"),
    ])  # fmt: skip
    reconcile(session, org, MONDAY)
    assert links(session, org) == {(payout.id, entry_id(session, org, -2500), "amount")}


def test_a_pass_is_idempotent(session, org):
    make_payout(session, org, "po_1Pgc79B7WZ01zgkWu1KToYf4", 110000, MONDAY)
    make_payout(session, org, "po_never_arrives_at_all", 300, MONDAY)
    import_rows(session, org, [(MONDAY, 109900, STRIPE, "po_1Pgc79B7WZ01zgkWu1KToYf4", "R1")])
    first = reconcile(session, org, date(2026, 3, 10))
    again = reconcile(session, org, date(2026, 3, 10))
    assert (first.linked, first.opened) == (1, 2)
    assert (again.linked, again.opened, again.resolved) == (0, 0, 0)


# --- discrepancies ------------------------------------------------------------------------


def test_a_payout_not_received_is_flagged_after_its_business_days_then_resolved_late(session, org):
    account = make_account(session, org)
    account.payout_arrival_business_days = 1
    payout = make_payout(
        session, org, "po_arrives_late_at_the_bank", 4200, date(2026, 3, 6),
        provider_account_id=account.id,
    )  # fmt: skip
    reconcile(session, org, date(2026, 3, 9))  # Friday + 1 business day = Monday: in time
    assert discrepancies(session, org) == []
    reconcile(session, org, date(2026, 3, 10))
    [missing] = discrepancies(session, org)
    assert (missing.type, missing.settlement_payout_id, missing.amount_minor) == (
        "PayoutNotReceived", payout.id, 4200,
    )  # fmt: skip
    import_rows(
        session, org, [(date(2026, 3, 10), 4200, STRIPE, "po_arrives_late_at_the_bank", "")]
    )
    reconcile(session, org, date(2026, 3, 11))
    session.refresh(missing)
    assert (missing.status, missing.resolution) == ("resolved", "auto_resolved")
    assert actions(session, missing) == ["opened", "auto_resolved"]


def test_the_account_countrys_holidays_count(session, org):
    import_rows(session, org, [(date(2026, 3, 30), 1, "Someone", "opening the account", "")])
    [account_id] = {record.account_id for record in session.scalars(select(BankEntryRecord))}
    account = session.get(BankAccount, account_id)
    account.providers, account.country = ["stripe"], "DE"
    make_payout(session, org, "po_before_good_friday", 4200, date(2026, 4, 2))
    reconcile(session, org, date(2026, 4, 8))  # Good Friday and Easter Monday skipped
    assert discrepancies(session, org) == []
    reconcile(session, org, date(2026, 4, 9))
    assert [d.type for d in discrepancies(session, org)] == ["PayoutNotReceived"]


def test_a_linked_entry_of_another_amount_is_a_deposit_amount_mismatch(session, org):
    payout = make_payout(session, org, "po_1Pgc79B7WZ01zgkWu1KToYf4", 110000, MONDAY)
    import_rows(session, org, [(MONDAY, 109985, STRIPE, "po_1Pgc79B7WZ01zgkWu1KToYf4", "R1")])
    reconcile(session, org, MONDAY)
    [mismatch] = discrepancies(session, org)
    assert (mismatch.type, mismatch.settlement_payout_id, mismatch.bank_entry_id) == (
        "DepositAmountMismatch", payout.id, entry_id(session, org, 109985),
    )  # fmt: skip
    assert (mismatch.amount_minor, mismatch.difference_minor) == (110000, -15)


def test_a_credit_from_a_provider_matching_no_payout_is_unexpected_until_its_payout_comes(
    session, org
):
    import_rows(session, org, [
        (MONDAY, 99900, STRIPE, "STRIPE PAYOUT", "R1"),
        (MONDAY, 123, "Jane Customer", "PAYPAL refund mentioned by a customer", "R2"),
        (MONDAY, 4500, "", "TRANSFER PAYPAL", "R3"),
        (MONDAY, 777, "Jane", "NL", "R4"),
    ])  # fmt: skip
    reconcile(session, org, MONDAY)
    unexpected = discrepancies(session, org, type="UnexpectedDeposit")
    assert {(d.bank_entry_id, d.amount_minor) for d in unexpected} == {
        (entry_id(session, org, 99900), 99900), (entry_id(session, org, 4500), 4500),
    }  # fmt: skip
    make_payout(session, org, "po_the_missing_one", 99900, MONDAY)
    outcome = reconcile(session, org, MONDAY)
    assert outcome.resolved == 1
    stripe_credit = discrepancies(session, org, bank_entry_id=entry_id(session, org, 99900))
    assert [d.status for d in stripe_credit] == ["resolved"]


def test_bank_findings_name_their_payouts_provider_else_their_accounts_only_one(session, org):
    make_payout(session, org, "po_never_arrived", 300, MONDAY, provider="adyen")
    import_rows(session, org, [(MONDAY, 99900, STRIPE, "STRIPE PAYOUT", "R1")])
    broken = fixture_bytes("statement.sta").replace(
        b":62F:C260302EUR1249,75", b":62F:C260302EUR1249,00"
    )
    import_statement_file(
        session=session, org_id=org.id, binary=io.BytesIO(broken), filename="x.sta"
    )
    reconcile(session, org, date(2026, 3, 10))

    def providers() -> set[tuple[str, str | None]]:
        session.expire_all()
        return {(d.type, d.provider) for d in discrepancies(session, org)}

    # An account that lists no provider, or several, names none.
    assert providers() == {
        ("PayoutNotReceived", "adyen"),
        ("UnexpectedDeposit", None),
        ("StatementBalanceMismatch", None),
    }
    # A new list restates them (both statements are of the one EUR account of that IBAN).
    [account] = session.scalars(select(BankAccount).where(BankAccount.org_id == org.id))
    for listed, named in ((["stripe"], "stripe"), (["adyen", "stripe"], None)):
        change_account_settings(session=session, org_id=org.id, account_id=account.id,
                                change=AccountSettingsChange(providers=listed))  # fmt: skip
        assert providers() == {
            ("PayoutNotReceived", "adyen"),
            ("UnexpectedDeposit", named),
            ("StatementBalanceMismatch", named),
        }


def test_a_finding_a_person_resolved_is_not_opened_again(session, org):
    make_payout(session, org, "po_written_off_by_finance", 300, MONDAY)
    reconcile(session, org, date(2026, 3, 10))
    [missing] = discrepancies(session, org)
    owner = Caller(actor=str(org.id), actor_name="finance", org_id=org.id, role="owner")
    resolve(session=session, caller=owner, discrepancy_id=missing.id, resolution="written_off",
            reason="lost in transit, claimed from the bank")  # fmt: skip
    reconcile(session, org, date(2026, 3, 11))
    assert [d.status for d in discrepancies(session, org)] == ["resolved"]


# --- a person's links ---------------------------------------------------------------------


def test_an_unlinked_pair_is_logged_with_its_reason_and_not_linked_again(session, org):
    payout = make_payout(session, org, "po_1Pgc79B7WZ01zgkWu1KToYf4", 110000, MONDAY)
    import_rows(session, org, [(MONDAY, 110000, STRIPE, "po_1Pgc79B7WZ01zgkWu1KToYf4", "R1")])
    reconcile(session, org, MONDAY)
    owner = Caller(actor=str(org.id), actor_name="finance", org_id=org.id, role="owner")
    unlink_payout(session=session, caller=owner, payout_id=payout.id,
                  reason="the bank booked another transfer", now=at(date(2026, 3, 10)))  # fmt: skip
    reconcile(session, org, date(2026, 3, 10))
    assert links(session, org) == set()
    trail = session.execute(
        select(BankPayoutLinkLogEntry.action, BankPayoutLinkLogEntry.actor_name,
               BankPayoutLinkLogEntry.reason).order_by(BankPayoutLinkLogEntry.created_at)
    ).all()  # fmt: skip
    assert [tuple(row) for row in trail] == [
        ("linked", None, None), ("unlinked", "finance", "the bank booked another transfer"),
    ]  # fmt: skip
    # the payout is missing, and the provider's credit now matches no payout
    assert [d.type for d in discrepancies(session, org)] == [
        "PayoutNotReceived", "UnexpectedDeposit",
    ]  # fmt: skip
    entry = entry_id(session, org, 110000)
    link_payout(session=session, caller=owner, payout_id=payout.id, entry_id=entry,
                reason="it was this one after all", now=at(date(2026, 3, 10)))  # fmt: skip
    assert links(session, org) == {(payout.id, entry, "manual")}
    assert [d.status for d in discrepancies(session, org)] == ["resolved", "resolved"]
    other = make_payout(session, org, "po_another_payout_here", 110000, MONDAY)
    with pytest.raises(Conflict):
        link_payout(session=session, caller=owner, payout_id=other.id, entry_id=entry,
                    reason="twice", now=at(MONDAY))  # fmt: skip


# --- when a pass runs --------------------------------------------------------------------


def test_a_statement_import_queues_a_pass_after_commit(session, org, published_tasks):
    import_rows(session, org, [(MONDAY, 100, "Someone", "text", "R1")])
    assert published_tasks == []
    session.commit()
    assert published_tasks == [(MATCH_BANK_PAYOUTS, [str(org.id)])]


def test_the_task_runs_a_pass_and_the_daily_sweep_queues_one_per_organisation(
    session, org, published_tasks, redis_client
):
    payout = make_payout(session, org, "po_1Pgc79B7WZ01zgkWu1KToYf4", 110000, MONDAY)
    import_rows(session, org, [(MONDAY, 110000, STRIPE, "po_1Pgc79B7WZ01zgkWu1KToYf4", "R1")])
    session.commit()
    published_tasks.clear()
    assert match_bank_payouts(str(org.id)) == 1
    assert {payout_id for payout_id, _, _ in links(session, org)} == {payout.id}
    sweep_bank_payouts()
    assert (MATCH_BANK_PAYOUTS, [str(org.id)]) in published_tasks
    redis_client.delete("matching")
