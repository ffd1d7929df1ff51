"""Every settlement file of ``../shared/provider-reports``, read in place, never copied.

They are other projects' test data (some under copyleft licences, see that folder's
SOURCES.md), several with arithmetic that deliberately does not add up: each must parse
(or be refused for the precise reason below), whether or not its payouts equal its lines.
Imported into a fresh organisation and matched, each payout reconciles to its lines or
has exactly one PayoutMismatch of exactly the difference, and a re-import adds nothing.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from shared.access.settings_log import OPERATOR
from shared.models import ReconciliationDiscrepancy, SettlementLine, SettlementPayout
from shared.settlements.cells import SettlementFileRefused
from shared.settlements.imports import import_settlement_file
from shared.settlements.matching import reconcile_settlement_file
from tests.conftest import REPO_ROOT
from tests.settlements.reading import parse_path
from tests.support.checksums import database_checksum
from tests.support.factories import make_org

REPORTS = REPO_ROOT.parent / "shared" / "provider-reports"
pytestmark = pytest.mark.skipif(
    not REPORTS.is_dir(),
    reason=f"{REPORTS} is absent on this machine: the providers' real settlement files are "
    "not checked here (the suite's own fixtures in tests/settlements/fixtures still are)",
)
SDR, STRIPE_CSV = "adyen_settlement_details", "stripe_balance_report"
TRANSACTION_JSON, PAYOUT = "stripe_balance_transaction", "stripe_payout"
PAYPAL = "paypal_settlement"
ACCOUNTING_REPORT = "Adyen Payments accounting report"
# file → (layout, lines, payouts, net of the non-payout lines per settlement currency,
# payouts per currency), or the words of its refusal. Amounts in minor units.
EXPECTED: dict[str, tuple[str, int, int, dict[str, int], dict[str, int]] | str] = {
    "adyen/oca_sdr_batch_238_balancetransfer.csv": (SDR, 3, 0, {"USD": 0}, {}),
    "adyen/oca_sdr_batch_380.csv": (SDR, 228, 1, {"USD": 5530807}, {"USD": 5530807}),
    "adyen/smashpig_payments_accounting_report_chargeback_dup_header.csv": ACCOUNTING_REPORT,
    "adyen/smashpig_payments_accounting_report_lifecycle.csv": ACCOUNTING_REPORT,
    "adyen/smashpig_sdr_ach.csv": (SDR, 2, 1, {"USD": 78}, {"USD": 78}),
    "adyen/smashpig_sdr_chargeback_fee_row.csv": (SDR, 3, 1, {"USD": -480}, {"USD": 403}),
    "adyen/smashpig_sdr_chargeback_reversed_no_payout.csv": (SDR, 1, 0, {"USD": 5189}, {}),
    "adyen/smashpig_sdr_ideal_eur_to_usd.csv": (SDR, 2, 1, {"USD": 543}, {"USD": 76}),
    "adyen/smashpig_sdr_inr_settled_net_debit.csv": (SDR, 1, 0, {"USD": -3}, {}),
    "adyen/smashpig_sdr_invoice_deduction_balanceplatform.csv": (SDR, 2, 0, {"USD": -3}, {}),
    "adyen/smashpig_sdr_payment_cost.csv": (SDR, 2, 1, {"USD": 175}, {"USD": 175}),
    "adyen/smashpig_sdr_reordered_columns.csv": (SDR, 2, 1, {"USD": 76}, {"USD": 76}),
    "adyen/wmfcrm_payments_accounting_report_2025_11_16.csv": ACCOUNTING_REPORT,
    "adyen/wmfcrm_sdr_batch_1120_chargeback_and_refund_part1.csv": (SDR, 4, 0, {"USD": -1065}, {}),
    "adyen/wmfcrm_sdr_batch_1120_chargeback_and_refund_part2.csv": (SDR, 2, 0, {"USD": -1265}, {}),
    "adyen/wmfcrm_sdr_batch_1120_chargeback_reversal.csv": (SDR, 3, 0, {"USD": -587}, {}),
    "adyen/wmfcrm_sdr_batch_1120_refunded_fee_row.csv": (SDR, 4, 1, {"USD": 1727}, {"USD": 1727}),
    "adyen/wmfcrm_sdr_batch_1120_refunded_reversal.csv": (SDR, 3, 0, {"USD": 478}, {}),
    "adyen/wmfcrm_sdr_batch_1122_mxn_lowercase_type.csv": (SDR, 1, 0, {"USD": 2105}, {}),
    "adyen/wmfcrm_sdr_batch_1128_multicurrency.csv": (
        SDR, 15, 2, {"USD": 5975, "CAD": 954}, {"USD": 5975, "CAD": 954},
    ),
    "adyen/wmfcrm_sdr_batch_1129_chargebacks_fees.csv": (
        SDR, 18, 2, {"USD": 3782, "EUR": 2851}, {"USD": 3782, "EUR": 2851},
    ),
    "adyen/wmfcrm_sdr_batch_2_deposit_correction.csv": (SDR, 4, 1, {"USD": 176}, {"USD": 176}),
    "adyen/wmfcrm_sdr_batch_9998_no_payout_row.csv": (SDR, 1, 0, {"USD": 2482}, {}),
    "adyen/wmfcrm_sdr_batch_9999_payout_mismatch.csv": (SDR, 2, 1, {"USD": 2482}, {"USD": 99900}),
    "adyen/wmfcrm_sdr_refund_credit_fee.csv": (SDR, 3, 1, {"USD": 5000}, {"USD": 5000}),
    "stripe/djstripe_balance_transaction_charge.json": (TRANSACTION_JSON, 1, 0, {"USD": 1912}, {}),
    "stripe/djstripe_balance_transaction_dispute.json": (
        TRANSACTION_JSON, 1, 0, {"USD": -2500}, {},
    ),
    "stripe/openapi_balance_transaction.json": (TRANSACTION_JSON, 1, 0, {"USD": 100}, {}),
    "stripe/openapi_payout.json": (PAYOUT, 0, 1, {}, {"USD": 1100}),
    "stripe/smashpig_payments_activity.csv": (STRIPE_CSV, 2, 0, {"USD": -1620}, {}),
    "stripe/smashpig_settlement_report.csv": (STRIPE_CSV, 7, 1, {"USD": 2640}, {"USD": 2305}),
    "stripe/smashpig_settlement_report_with_customer_data.csv": (
        STRIPE_CSV, 3, 0, {"USD": 3355}, {},
    ),
    "stripe/wmfcrm_settlement_report_giving_basket.csv": (STRIPE_CSV, 2, 0, {"USD": 178350}, {}),
    "paypal/smashpig_stl.csv": (PAYPAL, 5, 1, {"AUD": 5435, "GBP": 660}, {"GBP": 100}),
    "paypal/smashpig_stl_brl_refund_rh_fh_headers.csv": (
        PAYPAL, 3, 0, {"BRL": 0, "USD": -211}, {},
    ),
    "paypal/wmfcrm_STL-20260106.01.009.csv": (
        PAYPAL, 5, 0, {"HKD": 9844, "USD": 1749, "BRL": 0}, {},
    ),
    "paypal/wmfcrm_stl_chargeback_variants.csv": (PAYPAL, 6, 0, {"EUR": 758}, {}),
}  # fmt: skip


def test_the_table_names_every_file_of_the_folder():
    present = {
        path.relative_to(REPORTS).as_posix()
        for folder in ("adyen", "stripe", "paypal")
        for path in (REPORTS / folder).iterdir()
    }
    assert present == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_provider_report_parses_as_expected(name):
    expected = EXPECTED[name]
    path = REPORTS / name
    if isinstance(expected, str):
        with pytest.raises(SettlementFileRefused, match=expected):
            parse_path(path)
        return
    # SmashPig's Stripe reports name the donation in payment_metadata[external_identifier].
    parsed = parse_path(path, merchant_reference_key="external_identifier")
    layout, lines, payouts, net, paid_out = expected
    assert (parsed.layout, len(parsed.lines), len(parsed.payouts)) == (layout, lines, payouts)
    assert (parsed.net, parsed.paid_out) == (net, paid_out)


def test_files_whose_payouts_do_not_equal_their_lines_still_parse():
    # SOURCES.md's negative cases: the difference is later work (PayoutMismatch).
    mismatched = {
        name
        for name, expected in EXPECTED.items()
        if not isinstance(expected, str) and expected[0] == SDR and expected[4]
        and expected[3] != expected[4]
    }  # fmt: skip
    assert mismatched == {
        "adyen/smashpig_sdr_chargeback_fee_row.csv",
        "adyen/smashpig_sdr_ideal_eur_to_usd.csv",
        "adyen/wmfcrm_sdr_batch_9999_payout_mismatch.csv",
    }


def test_real_details_read_as_a_finance_person_reads_them():
    multi = parse_path(REPORTS / "adyen/wmfcrm_sdr_batch_1128_multicurrency.csv")
    jcb = multi.lines[1]
    assert (jcb.gross_minor, jcb.gross_currency, jcb.net_minor, jcb.net_currency) == (
        3158, "JPY", 188, "USD",
    )  # fmt: skip
    assert str(jcb.exchange_rate) == "0.006733333333333"
    assert multi.lines[9].net_minor == 91  # ".91"
    fee_returned = parse_path(REPORTS / "adyen/wmfcrm_sdr_batch_1120_refunded_fee_row.csv")
    assert fee_returned.lines[0].fees.commission == -11
    stripe = parse_path(
        REPORTS / "stripe/smashpig_settlement_report.csv",
        merchant_reference_key="external_identifier",
    )
    assert stripe.lines[0].merchant_reference == "24315.1"
    assert stripe.lines[5].net_currency == "USD"  # written "usd"


IMPORTED = sorted(name for name, expected in EXPECTED.items() if not isinstance(expected, str))


@pytest.mark.parametrize("name", IMPORTED)
def test_each_payout_reconciles_or_has_one_mismatch_of_exactly_the_difference(session, name):
    org = make_org(session)
    content = (REPORTS / name).read_bytes()
    first = import_settlement_file(
        session=session,
        org_id=org.id,
        binary=io.BytesIO(content),
        filename=name,
        imported_by=OPERATOR,
    )
    reconcile_settlement_file(session=session, file_id=first.file.id, now=datetime.now(UTC))
    payouts = session.scalars(select(SettlementPayout).where(SettlementPayout.org_id == org.id))
    for payout in payouts:
        net = sum(
            session.scalars(
                select(SettlementLine.net_minor).where(
                    SettlementLine.org_id == org.id,
                    SettlementLine.provider == payout.provider,
                    SettlementLine.batch_id == payout.payout_id,
                    SettlementLine.net_currency == payout.currency,
                    SettlementLine.line_type != "payout",
                )
            )
        )
        mismatches = session.scalars(
            select(ReconciliationDiscrepancy).where(
                ReconciliationDiscrepancy.type == "PayoutMismatch",
                ReconciliationDiscrepancy.settlement_payout_id == payout.id,
            )
        ).all()
        if payout.amount_minor == net:
            assert mismatches == [], payout.payout_id
        else:
            assert [m.difference_minor for m in mismatches] == [payout.amount_minor - net]
    before = database_checksum(session)
    again = import_settlement_file(
        session=session,
        org_id=org.id,
        binary=io.BytesIO(content),
        filename=f"again-{name}",
        imported_by=OPERATOR,
    )
    result = reconcile_settlement_file(
        session=session, file_id=again.file.id, now=datetime.now(UTC)
    )
    assert (again.created, again.file.id, result.opened) == (False, first.file.id, 0)
    assert database_checksum(session) == before


def test_the_negative_cases_open_their_payout_mismatch(session):
    org = make_org(session)
    name = "adyen/wmfcrm_sdr_batch_9999_payout_mismatch.csv"
    imported = import_settlement_file(
        session=session,
        org_id=org.id,
        binary=io.BytesIO((REPORTS / name).read_bytes()),
        filename=name,
        imported_by=OPERATOR,
    )
    reconcile_settlement_file(session=session, file_id=imported.file.id, now=datetime.now(UTC))
    (mismatch,) = session.scalars(
        select(ReconciliationDiscrepancy).where(
            ReconciliationDiscrepancy.org_id == org.id,
            ReconciliationDiscrepancy.type == "PayoutMismatch",
        )
    ).all()
    assert (mismatch.amount_minor, mismatch.difference_minor) == (99900, 99900 - 2482)
