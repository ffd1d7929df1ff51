"""The run report's cash section, bank part: payouts received, in transit and not received
per currency, and the statement balance checks."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from shared.bank.imports import import_statement_file
from shared.bank.matching import reconcile_bank_payouts
from shared.runs.lifecycle import execute_run, trigger_run
from tests.bank.payouts import import_rows, make_payout
from tests.bank.support import fixture_bytes
from tests.support.factories import make_account, make_org

DAY = datetime.now(UTC).date() - timedelta(days=1)
STRIPE = "STRIPE PAYMENTS EUROPE LTD"


def test_the_report_counts_the_periods_payouts_at_the_bank_and_the_statement_checks(session):
    org = make_org(session, timezone="UTC")
    slow = make_account(session, org)
    slow.payout_arrival_business_days = 30
    make_payout(session, org, "po_received_on_the_day", 10000, DAY)
    make_payout(session, org, "po_never_seen_at_the_bank", 700, DAY)
    make_payout(session, org, "po_still_on_its_way_here", 2500, DAY, provider_account_id=slow.id)
    make_payout(session, org, "po_usd_on_its_way_still", 4200, DAY, currency="USD",
                provider_account_id=slow.id)  # fmt: skip
    make_payout(session, org, "po_another_day_entirely", 999, DAY - timedelta(days=30))
    import_rows(session, org, [(DAY, 10000, STRIPE, "po_received_on_the_day", "R1")])
    day = DAY.strftime("%y%m%d").encode()
    unbalanced = (
        fixture_bytes("statement.sta")
        .replace(b":62F:C260302EUR1249,75", b":62F:C260302EUR1249,00")
        .replace(b"260302", day)
    )
    import_statement_file(
        session=session, org_id=org.id, binary=io.BytesIO(unbalanced), filename="x.sta"
    )
    # The daily pass ten days on: the payouts of 2 business days are overdue.
    reconcile_bank_payouts(session=session, org_id=org.id, now=datetime.now(UTC) + timedelta(10))

    run = trigger_run(session=session, org_id=org.id, period_start=DAY, period_end=DAY,
                      triggered_by="api").run  # fmt: skip
    execute_run(session=session, run_id=run.id, now=datetime.now(UTC))
    bank = run.report_json["cash"]["bank"]
    assert bank["payouts"] == {
        "EUR": {
            "received": {"count": 1, "amount_minor": 10000},
            "in_transit": {"count": 1, "amount_minor": 2500},
            "not_received": {"count": 1, "amount_minor": 700},
        },
        "USD": {
            "received": {"count": 0, "amount_minor": 0},
            "in_transit": {"count": 1, "amount_minor": 4200},
            "not_received": {"count": 0, "amount_minor": 0},
        },
    }
    checks = bank["statements"]
    assert (checks["count"], checks["balanced"], checks["unbalanced"]) == (2, 0, 1)
    assert checks["without_balances"] == 1  # the CSV statement
    [listed] = checks["unbalanced_statements"]
    assert (listed["difference_minor"], listed["currency"]) == (-75, "EUR")
    markdown = run.report_markdown
    assert "## Cash: payouts at the bank" in markdown
    assert "| EUR | 1 · 100.00 | 1 · 25.00 | 1 · 7.00 |" in markdown
    assert "-0.75 |" in markdown
