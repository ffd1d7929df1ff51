"""The settlement leg: lines linked to records and payments, and the cash discrepancies."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from shared.access.settings_log import OPERATOR
from shared.models import (
    ProviderRecord,
    ReconciliationActionLog,
    ReconciliationDiscrepancy,
    SettlementLine,
    SettlementPayout,
)
from shared.platform.tasks import MATCH_BANK_PAYOUTS, MATCH_SETTLEMENT_FILE
from shared.settlements.imports import import_settlement_file
from shared.settlements.matching import reconcile_settlement_file
from tests.settlements.reading import FIXTURES, csv_text
from tests.support.factories import make_org, make_payment

NOW = datetime(2026, 5, 20, 12, tzinfo=UTC)
HEADER = [
    "Company Account", "Merchant Account", "Psp Reference", "Merchant Reference",
    "Creation Date", "TimeZone", "Type", "Modification Reference", "Gross Currency",
    "Gross Debit (GC)", "Gross Credit (GC)", "Exchange Rate", "Net Currency",
    "Net Debit (NC)", "Net Credit (NC)", "Commission (NC)", "Batch Number",
]  # fmt: skip


def row(kind: str, psp: str = "", merchant: str = "", gross: str = "", net: str = "", **cells):
    """One Adyen row of batch 7 in EUR: a credit when the amount has no sign, else a debit."""
    values = {
        "Company Account": "Acme", "Merchant Account": "AcmeShop", "Psp Reference": psp,
        "Merchant Reference": merchant, "Creation Date": "2026-05-04 10:00:00",
        "TimeZone": "UTC", "Type": kind, "Modification Reference": f"M{psp or kind}",
        "Net Currency": "EUR", "Batch Number": "7",
    }  # fmt: skip
    for amount, column in ((gross, "GC"), (net, "NC")):
        if amount:
            debit = amount.startswith("-")
            values[f"{'Gross' if column == 'GC' else 'Net'} {'Debit' if debit else 'Credit'} "
                   f"({column})"] = amount.lstrip("-")  # fmt: skip
    if gross:
        values["Gross Currency"] = "EUR"
    return values | cells


def adyen_file(*rows: dict[str, str]) -> bytes:
    return csv_text(HEADER, list(rows))


def imported(session, org, content: bytes, name: str = "batch_7.csv"):
    return import_settlement_file(
        session=session,
        org_id=org.id,
        binary=io.BytesIO(content),
        filename=name,
        imported_by=OPERATOR,
    ).file


def match(session, file):
    return reconcile_settlement_file(session=session, file_id=file.id, now=NOW)


def discrepancies(session, org, **filters):
    query = select(ReconciliationDiscrepancy).where(ReconciliationDiscrepancy.org_id == org.id)
    for name, value in filters.items():
        query = query.where(getattr(ReconciliationDiscrepancy, name) == value)
    return session.scalars(query.order_by(ReconciliationDiscrepancy.type)).all()


def line(session, psp: str) -> SettlementLine:
    query = select(SettlementLine).where(SettlementLine.provider_reference == psp)
    return session.scalars(query).one()


def record(session, org, reference: str, payment=None) -> ProviderRecord:
    value = ProviderRecord(
        org_id=org.id, provider="adyen", provider_reference=reference, amount_minor=1000,
        currency="EUR", status="succeeded", occurred_at=NOW, last_event_at=NOW,
        payment_id=payment.id if payment else None,
    )  # fmt: skip
    session.add(value)
    session.flush()
    return value


@pytest.fixture
def org(session):
    return make_org(session, auto_fix=True)


def test_lines_link_to_their_record_and_its_payment_else_by_merchant_reference(session, org):
    bound = make_payment(session, org, provider="adyen", external_id="ORDER-1", amount_minor=1000)
    by_reference = record(session, org, "PSP1", payment=bound)
    unbound = record(session, org, "PSP2")
    by_merchant = make_payment(session, org, provider="adyen", external_id="ORDER-3")
    file = imported(session, org, adyen_file(
        row("Settled", "PSP1", "ignored", "10.00", "9.80"),
        row("Settled", "PSP2", "", "10.00", "9.80"),
        row("Settled", "PSP3", "ORDER-3", "25.00", "24.50"),
    ))  # fmt: skip
    match(session, file)
    links = {
        psp: (line(session, psp).provider_record_id, line(session, psp).payment_id)
        for psp in ("PSP1", "PSP2", "PSP3")
    }
    assert links == {
        "PSP1": (by_reference.id, bound.id),
        "PSP2": (unbound.id, None),
        "PSP3": (None, by_merchant.id),
    }


def test_a_capture_refund_or_chargeback_linked_to_nothing_is_missing_internally(session, org):
    file = imported(session, org, adyen_file(
        row("Settled", "PSP9", "ORDER-9", "12.34", "12.00"),
        row("Refunded", "PSP8", "ORDER-8", "-5.00", "-5.00"),
        row("Fee", net="-1.00"),
    ))  # fmt: skip
    result = match(session, file)
    found = discrepancies(session, org, type="MissingInternalRecord")
    assert result.opened == 2
    assert {(d.settlement_line_id, d.amount_minor, d.currency, d.severity) for d in found} == {
        (line(session, "PSP9").id, 1234, "EUR", "high"),
        (line(session, "PSP8").id, 500, "EUR", "high"),
    }
    entry = session.scalars(
        select(ReconciliationActionLog).where(ReconciliationActionLog.discrepancy_id == found[0].id)
    ).one()
    assert entry.action == "opened"
    assert entry.payload["finding"]["batch_id"] == "7"
    assert entry.payload["source"] == {"settlement_file_id": str(file.id)}


def test_matching_again_opens_nothing_twice_and_resolves_what_now_links(session, org):
    file = imported(session, org, adyen_file(row("Settled", "PSP9", "ORDER-9", "10.00", "9.80")))
    match(session, file)
    assert match(session, file).opened == 0
    assert len(discrepancies(session, org)) == 1
    make_payment(session, org, provider="adyen", external_id="ORDER-9", amount_minor=1000)
    result = match(session, file)
    (missing,) = discrepancies(session, org)
    assert (result.auto_resolved, missing.status, missing.resolution) == (
        1, "resolved", "auto_resolved",
    )  # fmt: skip


def test_without_auto_fix_a_cleared_discrepancy_stays_open(session):
    org = make_org(session, auto_fix=False)
    file = imported(session, org, adyen_file(row("Settled", "PSP9", "ORDER-9", "10.00", "9.80")))
    match(session, file)
    make_payment(session, org, provider="adyen", external_id="ORDER-9", amount_minor=1000)
    assert match(session, file).auto_resolved == 0
    assert discrepancies(session, org)[0].status == "open"


def test_a_payout_that_is_not_its_lines_net_opens_one_payout_mismatch_to_the_cent(session, org):
    make_payment(session, org, provider="adyen", external_id="ORDER-1", amount_minor=1000)
    file = imported(session, org, adyen_file(
        row("Settled", "PSP1", "ORDER-1", "10.00", "9.80"),
        row("Fee", net="-0.15"),
        row("MerchantPayout", net="-9.66"),
    ))  # fmt: skip
    match(session, file)
    (mismatch,) = discrepancies(session, org)
    payout = session.scalars(select(SettlementPayout)).one()
    assert (mismatch.type, mismatch.settlement_payout_id, mismatch.amount_minor) == (
        "PayoutMismatch", payout.id, 966,
    )  # fmt: skip
    assert mismatch.difference_minor == 966 - (980 - 15) == 1
    assert mismatch.provider == "adyen"


def test_a_paypal_lines_finding_names_paypal_whoever_the_payment_came_through(session, org):
    # PayPal settles (and links, by merchant reference) payments of any provider: the
    # line's provider is the discrepancy's, before its payment's.
    payment = make_payment(session, org, provider="standard", external_id="ORDER-41",
                           amount_minor=999)  # fmt: skip
    content = (FIXTURES / "paypal" / "settlement_every_event.csv").read_bytes()
    match(session, imported(session, org, content, "paypal.csv"))
    found = discrepancies(session, org)
    assert {d.type for d in found} >= {"SettlementAmountMismatch", "MissingInternalRecord"}
    assert {d.provider for d in found} == {"paypal"}
    assert payment.id in {d.payment_id for d in found}


def test_a_payout_equal_to_its_lines_net_opens_nothing(session, org):
    make_payment(session, org, provider="adyen", external_id="ORDER-1", amount_minor=1000)
    file = imported(session, org, adyen_file(
        row("Settled", "PSP1", "ORDER-1", "10.00", "9.80"),
        row("MerchantPayout", net="-9.80"),
    ))  # fmt: skip
    assert match(session, file).opened == 0


@pytest.mark.parametrize(
    ("tolerance_minor", "gross", "opened"),
    [(0, "10.00", 0), (0, "10.01", 1), (1, "10.01", 0), (1, "9.98", 1)],
)
def test_a_capture_whose_gross_differs_from_its_payment_beyond_the_tolerance(
    session, tolerance_minor, gross, opened
):
    org = make_org(session, amount_tolerance_minor=tolerance_minor)
    payment = make_payment(session, org, provider="adyen", external_id="O-1", amount_minor=1000)
    file = imported(session, org, adyen_file(row("Settled", "PSP1", "O-1", gross, gross)))
    match(session, file)
    found = discrepancies(session, org, type="SettlementAmountMismatch")
    assert len(found) == opened
    if opened:
        assert (found[0].payment_id, found[0].settlement_line_id) == (
            payment.id, line(session, "PSP1").id,
        )  # fmt: skip
        assert found[0].difference_minor == round(float(gross) * 100) - 1000


def test_a_capture_in_another_currency_than_its_payment_disagrees(session, org):
    make_payment(session, org, provider="adyen", external_id="O-1", amount_minor=1000,
                 currency="USD")  # fmt: skip
    file = imported(session, org, adyen_file(row("Settled", "PSP1", "O-1", "10.00", "10.00")))
    match(session, file)
    (found,) = discrepancies(session, org, type="SettlementAmountMismatch")
    assert (found.currency, found.difference_minor) == ("EUR", None)


def test_an_import_queues_the_matching_of_its_file_once_committed(
    client, session, org, published_tasks
):
    from shared.access.api_keys import create_api_key
    from tests.settlements.reading import multipart

    key = create_api_key(session=session, org_id=org.id, role="manager").secret
    response = client.post(
        "/billing/settlements/files",
        headers={"Authorization": f"Bearer {key}"},
        **multipart(adyen_file(row("Settled", "PSP1", "O-1", "1.00", "1.00")), "b.csv"),
    )
    assert response.status_code == 201
    assert published_tasks == [
        (MATCH_SETTLEMENT_FILE, [response.get_json()["id"]]),
        (MATCH_BANK_PAYOUTS, [str(org.id)]),
    ]


@pytest.mark.parametrize(
    ("commission", "opened", "difference"),
    [("0.15", 0, None), ("0.16", 0, None), ("0.17", 1, 2)],
)
def test_fees_above_the_accounts_schedule_beyond_its_tolerance_are_a_fee_mismatch(
    session, org, commission, opened, difference
):
    from shared.providers.accounts import AccountChange, change_provider_account
    from tests.support.factories import make_account

    account = make_account(session, org, "adyen")
    schedule = {"EUR": {"percent": 1.2, "fixed_minor": 3, "tolerance_minor": 1}}  # 10.00: 0.15
    change_provider_account(
        session=session, account_id=account.id, change=AccountChange(fee_schedule=schedule),
        actor=OPERATOR,
    )  # fmt: skip
    make_payment(session, org, provider="adyen", external_id="O-1", amount_minor=1000)
    net = f"{10 - float(commission):.2f}"
    content = adyen_file(row("Settled", "PSP1", "O-1", "10.00", net,
                             **{"Commission (NC)": commission}))  # fmt: skip
    file = import_settlement_file(
        session=session, org_id=org.id, binary=io.BytesIO(content), filename="b.csv",
        imported_by=OPERATOR, provider_account_id=account.id,
    ).file  # fmt: skip
    match(session, file)
    found = discrepancies(session, org, type="FeeMismatch")
    assert [(d.settlement_line_id, d.difference_minor) for d in found] == (
        [(line(session, "PSP1").id, difference)] if opened else []
    )


def test_without_a_fee_schedule_no_fee_is_judged(session, org):
    make_payment(session, org, provider="adyen", external_id="O-1", amount_minor=1000)
    file = imported(session, org, adyen_file(
        row("Settled", "PSP1", "O-1", "10.00", "5.00", **{"Commission (NC)": "5.00"})
    ))  # fmt: skip
    match(session, file)
    assert discrepancies(session, org) == []
