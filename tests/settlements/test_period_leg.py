"""The period run's settlement leg: UnsettledPayment, and the report's cash section."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from shared.models import Payment, ReconciliationDiscrepancy, SettlementLine
from shared.runs.lifecycle import execute_run, trigger_run
from tests.settlements.test_matching import adyen_file, imported, row
from tests.support.factories import make_org, make_payment

DAY = date(2026, 5, 4)  # a Monday; 3 business days later is Thursday 7 May
PAID_AT = datetime(2026, 5, 4, 9, tzinfo=UTC)


def run_day(session, org, now: datetime):
    run = trigger_run(
        session=session, org_id=org.id, period_start=DAY, period_end=DAY, triggered_by="api"
    ).run
    execute_run(session=session, run_id=run.id, now=now)
    session.flush()
    return run


def unsettled(session, org) -> list[ReconciliationDiscrepancy]:
    query = select(ReconciliationDiscrepancy).where(
        ReconciliationDiscrepancy.org_id == org.id,
        ReconciliationDiscrepancy.type == "UnsettledPayment",
    )
    return session.scalars(query).all()


@pytest.fixture
def org(session):
    org = make_org(session, auto_fix=True)
    make_payment(session, org, provider="adyen", external_id="COVERED", amount_minor=1000,
                 occurred_at=PAID_AT)  # fmt: skip
    make_payment(session, org, provider="adyen", external_id="LATE", amount_minor=700,
                 occurred_at=PAID_AT)  # fmt: skip
    # Stripe's reports are never imported: its payments are never called unsettled.
    make_payment(session, org, provider="stripe", external_id="STRIPE", occurred_at=PAID_AT)
    imported(session, org, adyen_file(
        row("Settled", "PSP1", "COVERED", "10.00", "9.70", **{"Commission (NC)": "0.30"}),
        row("Fee", net="-0.05"),
        row("MerchantPayout", net="-9.65"),
    ))  # fmt: skip
    return org


@pytest.mark.parametrize(
    ("now", "delays", "found"),
    [
        (datetime(2026, 5, 7, 23, tzinfo=UTC), {}, set()),  # due Thursday: not yet late
        (datetime(2026, 5, 8, 1, tzinfo=UTC), {}, {"LATE"}),
        (datetime(2026, 5, 8, 1, tzinfo=UTC), {"adyen": 5}, set()),  # due Monday 11 May
    ],
)
def test_a_captured_payment_no_line_covers_after_its_delay_is_unsettled(
    session, org, now, delays, found
):
    org.settlement_delay_days = delays
    run_day(session, org, now)
    paid = {session.get(Payment, d.payment_id).external_id for d in unsettled(session, org)}
    assert paid == found


def test_a_payment_covered_later_is_resolved_by_the_next_run(session, org):
    run_day(session, org, datetime(2026, 5, 8, 1, tzinfo=UTC))
    imported(session, org, adyen_file(row("Settled", "PSP2", "LATE", "7.00", "7.00")), "late.csv")
    run = run_day(session, org, datetime(2026, 5, 9, 1, tzinfo=UTC))
    (discrepancy,) = unsettled(session, org)
    assert (discrepancy.status, discrepancy.resolution) == ("resolved", "auto_resolved")
    assert run.discrepancies_auto_resolved >= 1
    assert (
        session.scalars(
            select(SettlementLine.payment_id).where(SettlementLine.provider_reference == "PSP2")
        ).one()
        is not None
    )


def test_the_report_has_a_cash_section_per_currency(session, org):
    run = run_day(session, org, datetime(2026, 5, 8, 1, tzinfo=UTC))
    cash = run.report_json["cash"]["settlements"]
    assert cash["discrepancies_by_type"] == {
        "MissingInternalRecord": 0, "SettlementAmountMismatch": 0, "PayoutMismatch": 0,
        "UnsettledPayment": 1, "FeeMismatch": 0,
    }  # fmt: skip
    assert cash["by_currency"] == {
        "EUR": {
            "lines": 2,
            "gross_settled_minor": 1000,  # 9.70 + 0.30 commission
            "fees_minor": {"commission": 30, "markup": 0, "scheme_fee": 0, "interchange": 0,
                           "processing": 0, "other": 0, "fee_lines": 5},
            "other_minor": 0,
            "net_minor": 965,
            "payouts": {"count": 1, "amount_minor": 965},
            "unsettled_ageing": {
                "0-3": {"count": 1, "amount_minor": 700}, "4-7": {"count": 0, "amount_minor": 0},
                "8-30": {"count": 0, "amount_minor": 0}, ">30": {"count": 0, "amount_minor": 0},
            },
        }
    }  # fmt: skip
    assert "## Cash: settlements" in run.report_markdown
    assert "| EUR | 2 | 10.00 | 0.35 | 0.00 | 9.65 | 1 | 9.65 |" in run.report_markdown
    assert "| EUR | 0-3 | 1 | 7.00 |" in run.report_markdown


def test_a_verification_run_keeps_the_settlement_legs_findings_open(session, org):
    org.auto_fix = True
    run_day(session, org, datetime(2026, 5, 8, 1, tzinfo=UTC))
    run = trigger_run(
        session=session, org_id=org.id, period_start=DAY, period_end=DAY, triggered_by="api",
        is_verification_run=True,
    ).run  # fmt: skip
    execute_run(session=session, run_id=run.id, now=datetime(2026, 5, 8, 2, tzinfo=UTC))
    session.expire_all()
    (discrepancy,) = unsettled(session, org)
    assert (discrepancy.status, run.discrepancies_auto_resolved) == ("open", 0)


@pytest.mark.parametrize(("delays", "would_open"), [({}, ["UnsettledPayment"]), ({"adyen": 5}, [])])
def test_a_dry_run_tries_another_settlement_delay(session, org, delays, would_open):
    from shared.access.settings import SettingsChange
    from shared.runs.dry_run import Rehearsal, dry_run

    rehearsal = Rehearsal(org.id, DAY, DAY, SettingsChange(settlement_delay_days=delays))
    rehearsed = dry_run(rehearsal, now=datetime(2026, 5, 8, 1, tzinfo=UTC))
    assert [d.type for d in rehearsed.would_open] == would_open
    assert unsettled(session, org) == []
