"""Every layout, read from the suite's own fixtures (written for this project)."""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from shared.access.settings_log import OPERATOR
from shared.models import SettlementLine
from shared.settlements.cells import SettlementCellInvalid
from shared.settlements.imports import import_settlement_file
from shared.settlements.layouts import StagedReport, read_settlement_report
from shared.settlements.model import LINE_TYPES, Fees
from tests.settlements.reading import FIXTURES, csv_text, parse_bytes, parse_path
from tests.support.factories import make_org

ADYEN = FIXTURES / "adyen" / "settlement_details_every_type.csv"
STRIPE_REPORT = FIXTURES / "stripe" / "balance_report_every_category.csv"
STRIPE_ACTIVITY = FIXTURES / "stripe" / "payments_activity.csv"
PAYPAL = FIXTURES / "paypal" / "settlement_every_event.csv"


def test_adyen_report_reads_every_row_type_into_its_line_type(session):
    parsed = parse_path(session, ADYEN)
    assert parsed.layout == "adyen_settlement_details"
    assert [(line.provider_type, line.line_type) for line in parsed.lines] == [
        ("Settled", "capture"), ("Settled", "capture"), ("Settled", "capture"),
        ("Refunded", "refund"), ("RefundedReversed", "refund_reversal"),
        ("Chargeback", "chargeback"), ("ChargebackReversed", "chargeback_reversal"),
        ("Fee", "fee"), ("MiscCosts", "fee"), ("PaymentCost", "fee"),
        ("DepositCorrection", "deposit_correction"), ("InvoiceDeduction", "invoice_deduction"),
        ("Balancetransfer", "balance_transfer"), ("ReserveAdjustment", "adjustment"),
        ("SomethingNew", "other"), ("settled", "capture"),
        ("MerchantPayout", "payout"), ("MerchantPayout", "payout"), ("MerchantPayout", "payout"),
    ]  # fmt: skip
    assert {line.batch_id for line in parsed.lines} == {"501"}


def test_adyen_settled_row_keeps_gross_fees_net_rate_and_references(session):
    first = parse_path(session, ADYEN).lines[0]
    assert (first.provider_reference, first.line_reference, first.merchant_reference) == (
        "PSP0001", "MOD0001", "ORDER-1",
    )  # fmt: skip
    assert (first.gross_minor, first.gross_currency, first.net_minor, first.net_currency) == (
        10000, "EUR", 9810, "EUR",
    )  # fmt: skip
    assert first.fees == Fees(markup=50, scheme_fee=40, interchange=100)
    assert first.exchange_rate == Decimal(1)
    # Booking Date 2026-05-05 23:50:00 in CEST (UTC+2).
    assert first.booked_at == datetime(2026, 5, 5, 21, 50, tzinfo=UTC)
    assert first.row == 2


def test_adyen_multi_currency_batch_has_one_payout_per_currency_equal_to_its_lines(session):
    parsed = parse_path(session, ADYEN)
    jpy = parsed.lines[1]
    assert (jpy.gross_minor, jpy.gross_currency, jpy.net_minor, jpy.net_currency) == (
        5000, "JPY", 3310, "USD",
    )  # fmt: skip
    assert jpy.exchange_rate == Decimal("0.00662")
    kwd = parsed.lines[2]
    assert (kwd.gross_minor, kwd.net_minor, kwd.fees.commission) == (12345, 12000, 345)
    assert [(p.payout_id, p.currency, p.amount_minor, p.status) for p in parsed.payouts] == [
        ("501", "EUR", 10606, "paid"), ("501", "USD", 3310, "paid"), ("501", "KWD", 12000, "paid"),
    ]  # fmt: skip
    assert parsed.net == parsed.paid_out == {"EUR": 10606, "USD": 3310, "KWD": 12000}


def test_adyen_chargeback_fee_and_balance_rows_are_signed_from_the_merchants_side(session):
    lines = parse_path(session, ADYEN).lines
    chargeback, fee, transfer = lines[5], lines[7], lines[12]
    assert (chargeback.gross_minor, chargeback.net_minor, chargeback.fees.markup) == (
        -10000, -11000, 1000,
    )  # fmt: skip
    assert (fee.gross_minor, fee.gross_currency, fee.net_minor) == (None, None, -150)
    assert fee.line_reference == "Transaction Fees May 04 2026"
    assert transfer.net_minor == 1000


# The columns every Adyen layout starts with, then the ways the layouts go on.
CORE = [
    "Company Account", "Merchant Account", "Psp Reference", "Merchant Reference",
    "Payment Method", "Creation Date", "TimeZone", "Type", "Modification Reference",
    "Gross Currency", "Gross Debit (GC)", "Gross Credit (GC)", "Exchange Rate",
    "Net Currency", "Net Debit (NC)", "Net Credit (NC)", "Commission (NC)", "Markup (NC)",
    "Scheme Fees (NC)", "Interchange (NC)", "Payment Method Variant",
]  # fmt: skip
RESERVED = [f"Reserved{number}" for number in range(4, 11)]
MODIFICATION = "Modification Merchant Reference"
BOOKING = ["Booking Date", "Booking Date TimeZone"]
BALANCE_PLATFORM = [
    "Balance Currency", "Net Debit (BC)", "Net Credit (BC)", "Payment Fees (NC)",
    "DCC Markup (NC)", "Funds Destination", "Balance Platform Debit",
    "Balance Platform Credit", "Shopper Country", "Clearing Network",
    "Merchant Order Reference", "Dispute Reference", "ARN", "Settlement Flow",
    "Authorisation Code", "Gross Fees (NC)",
]  # fmt: skip
ADYEN_HEADERS = {
    # 2016-era, 30 columns (Wikimedia SmashPig)
    "classic_30": [*CORE, MODIFICATION, "Batch Number", *RESERVED],
    # Batch Number before the Reserved columns, booking date last (OCA)
    "booking_last_32": [*CORE, "Batch Number", *RESERVED, MODIFICATION, *BOOKING],
    # Metadata and Merchant Order Reference (34 columns)
    "metadata_34": [
        *CORE,
        MODIFICATION,
        "Batch Number",
        *RESERVED,
        *BOOKING,
        "Metadata",
        "Merchant Order Reference",
    ],
    # no Reserved columns (25), and with four trailing ones (29)
    "short_25": [*CORE, MODIFICATION, "Batch Number", *BOOKING],
    "trailing_reserved_29": [*CORE, MODIFICATION, "Batch Number", *BOOKING, *RESERVED[2:6]],
    # Balance Platform, 49 columns
    "balance_platform_49": [
        *CORE,
        MODIFICATION,
        "Batch Number",
        *RESERVED,
        *BOOKING,
        "Metadata",
        *BALANCE_PLATFORM,
    ],
    # Psp Reference moved to the end
    "psp_last": [
        *(name for name in CORE if name != "Psp Reference"),
        MODIFICATION,
        "Batch Number",
        *RESERVED,
        "Psp Reference",
    ],
}
SETTLED = {
    "Merchant Account": "Shop", "Psp Reference": "PSP9", "Merchant Reference": "ORDER-9",
    "Creation Date": "2026-05-04 10:00:00", "TimeZone": "PDT", "Type": "Settled",
    "Modification Reference": "MOD9", "Gross Currency": "USD", "Gross Credit (GC)": "10.00",
    "Exchange Rate": "1", "Net Currency": "USD", "Net Credit (NC)": "9.70",
    "Commission (NC)": "0.10", "Markup (NC)": "0.05", "Scheme Fees (NC)": "0.05",
    "Interchange (NC)": "0.10", "Batch Number": "77",
}  # fmt: skip


@pytest.mark.parametrize("layout", ADYEN_HEADERS)
def test_every_adyen_header_layout_is_read_by_column_name(session, layout):
    header = ADYEN_HEADERS[layout]
    (line,) = parse_bytes(session, csv_text(header, [SETTLED])).lines
    assert (line.provider_reference, line.merchant_reference, line.batch_id) == (
        "PSP9", "ORDER-9", "77",
    )  # fmt: skip
    assert (line.gross_minor, line.net_minor, line.fees.total) == (1000, 970, 30)
    assert line.booked_at == datetime(2026, 5, 4, 17, 0, tzinfo=UTC)


def test_balance_platform_payment_fees_and_dcc_markup_are_fee_components(session):
    header = ADYEN_HEADERS["balance_platform_49"]
    row = SETTLED | {
        "Payment Fees (NC)": "0.07",
        "DCC Markup (NC)": "0.02",
        "Net Credit (NC)": "9.61",
    }
    (line,) = parse_bytes(session, csv_text(header, [row])).lines
    assert (line.fees.processing, line.fees.other, line.fees.total) == (7, 2, 39)


def test_adyen_bom_crlf_reordered_and_repeated_columns_and_lowercase_types(session):
    header = [*reversed(ADYEN_HEADERS["metadata_34"]), "Net Currency"]
    row = SETTLED | {"Type": "sEtTlEd"}
    content = b"\xef\xbb\xbf" + csv_text(header, [row], newline="\r\n")
    # The repeated column's second occurrence holds another value: the first one counts.
    content = content.replace(b",USD\r\n", b",EUR\r\n")
    (line,) = parse_bytes(session, content).lines
    assert (line.line_type, line.net_currency, line.net_minor) == ("capture", "USD", 970)


def test_adyen_booking_date_without_a_time_is_its_midnight_and_empty_quoted_cells_are_empty(
    session,
):
    header = ADYEN_HEADERS["metadata_34"]
    row = SETTLED | {"Booking Date": "2025-09-08", "Booking Date TimeZone": "PDT"}
    content = csv_text(header, [row]).replace(b"MOD9,USD,,", b'MOD9,USD,"",')
    (line,) = parse_bytes(session, content).lines
    assert line.booked_at == datetime(2025, 9, 8, 7, 0, tzinfo=UTC)
    assert line.gross_minor == 1000


def test_stripe_report_reads_every_reporting_category(session):
    parsed = parse_path(session, STRIPE_REPORT)
    assert parsed.layout == "stripe_balance_report"
    assert [line.line_type for line in parsed.lines] == [
        "capture", "refund", "refund_reversal", "chargeback", "chargeback_reversal", "fee",
        "fee", "balance_transfer", "adjustment", "other", "payout",
    ]  # fmt: skip
    charge = parsed.lines[0]
    assert (charge.line_reference, charge.provider_reference, charge.payment_intent_id) == (
        "txn_own_01", "ch_own_1", "pi_own_1",
    )  # fmt: skip
    assert (charge.merchant_reference, charge.batch_id, charge.description) == (
        "ORDER-1", "po_own_1", "Order 1",
    )  # fmt: skip
    assert (charge.gross_minor, charge.fees, charge.net_minor, charge.net_currency) == (
        10000, Fees(processing=320), 9680, "USD",
    )  # fmt: skip
    assert charge.booked_at == datetime(2026, 5, 4, 9, 15, tzinfo=UTC)
    dispute = parsed.lines[3]
    assert (dispute.gross_minor, dispute.fees.processing, dispute.net_minor) == (-5000, 1500, -6500)
    (payout,) = parsed.payouts
    assert (payout.payout_id, payout.amount_minor, payout.arrival_date) == (
        "po_own_1", 8715, date(2026, 5, 8),
    )  # fmt: skip
    assert parsed.net == parsed.paid_out == {"USD": 8715}


def test_stripe_payments_activity_layout_in_another_order_with_created_and_jpy(session):
    parsed = parse_path(session, STRIPE_ACTIVITY)
    assert parsed.layout == "stripe_balance_report"
    assert [(line.gross_minor, line.fees.processing, line.net_minor) for line in parsed.lines] == [
        (5000, 150, 4850), (-3000, 1500, -4500),
    ]  # fmt: skip
    assert {line.net_currency for line in parsed.lines} == {"JPY"}


def test_stripe_merchant_reference_comes_from_the_accounts_metadata_key(session):
    lines = parse_path(session, STRIPE_ACTIVITY, merchant_reference_key="order_id").lines
    assert {line.merchant_reference for line in lines} == {None}


def test_stripe_balance_transaction_object_is_one_line_with_fee_details_and_rate(session):
    parsed = parse_path(session, FIXTURES / "stripe" / "balance_transaction.json")
    assert parsed.layout == "stripe_balance_transaction"
    (line,) = parsed.lines
    assert (line.gross_minor, line.net_minor, line.net_currency) == (10000, 9650, "EUR")
    assert line.fees == Fees(commission=50, processing=300)
    assert line.exchange_rate == Decimal("0.91283")
    assert (line.provider_reference, line.line_reference) == ("ch_own_31", "txn_own_json_1")


def test_stripe_payout_object_is_one_payout(session):
    parsed = parse_path(session, FIXTURES / "stripe" / "payout.json")
    assert parsed.layout == "stripe_payout"
    (payout,) = parsed.payouts
    assert (payout.payout_id, payout.currency, payout.amount_minor, payout.status) == (
        "po_own_json_1", "EUR", 9650, "pending",
    )  # fmt: skip
    assert payout.arrival_date == date(2026, 5, 8)
    assert parsed.lines == []


def test_paypal_settlement_reads_every_event_group_and_skips_header_and_footer_records(session):
    parsed = parse_path(session, PAYPAL)
    assert parsed.layout == "paypal_settlement"
    assert [(line.provider_type, line.line_type) for line in parsed.lines] == [
        ("T0006", "capture"), ("T1107", "refund"), ("T0003", "capture"),
        ("T1201", "chargeback"), ("T1202", "chargeback_reversal"), ("T0106", "fee"),
        ("T1110", "adjustment"), ("T0200", "currency_conversion"),
        ("T0200", "currency_conversion"), ("T0400", "payout"), ("T9999", "other"),
    ]  # fmt: skip
    assert {line.batch_id for line in parsed.lines} == {"RECONTESTPP01:2026-05-04"}


def test_paypal_fees_returned_on_a_refund_are_negative_and_refunds_name_their_payment(session):
    payment, refund, jpy = parse_path(session, PAYPAL).lines[:3]
    assert (payment.gross_minor, payment.fees.processing, payment.net_minor) == (1000, 59, 941)
    assert (refund.gross_minor, refund.fees.processing, refund.net_minor) == (-500, -20, -480)
    assert (refund.provider_reference, refund.line_reference) == ("PP001", "PP002")
    assert (jpy.gross_minor, jpy.net_currency) == (1500, "JPY")  # JPY has no minor digits
    assert payment.booked_at == datetime(2026, 5, 4, 15, 0, 5, tzinfo=UTC)


def test_paypal_withdrawal_is_a_payout_named_by_its_bank_reference(session):
    (payout,) = parse_path(session, PAYPAL).payouts
    assert (payout.payout_id, payout.currency, payout.amount_minor) == ("BANKREF123", "EUR", 5000)


def test_own_fixtures_cover_every_line_type(session):
    seen = Counter(
        line.line_type
        for path in (ADYEN, STRIPE_REPORT, PAYPAL)
        for line in parse_path(session, path).lines
    )
    assert set(seen) == set(LINE_TYPES)


def imported(session, org, content: bytes, filename: str = "a.csv"):
    """The import of ``content`` for ``org`` by the operator."""
    return import_settlement_file(
        session=session, org_id=org.id, binary=io.BytesIO(content), filename=filename,
        imported_by=OPERATOR,
    )  # fmt: skip


def test_a_line_is_the_same_line_in_another_file_whatever_its_row_number(session):
    org = make_org(session)
    content = ADYEN.read_bytes().splitlines(keepends=True)
    first = imported(session, org, b"".join(content))
    again = imported(session, org, content[0] + content[5] + content[2], "b.csv")
    assert again.file.summary["already_known"] == {"lines": 2, "payouts": 0}
    stored = session.execute(select(SettlementLine.file_id, SettlementLine.row_number)
                             .where(SettlementLine.org_id == org.id)).all()  # fmt: skip
    assert len(stored) == 19
    assert {file_id for file_id, _ in stored} == {first.file.id}
    keys = session.scalars(select(SettlementLine.line_key).where(SettlementLine.org_id == org.id))
    assert len(set(keys)) == 19


def test_a_lines_key_is_the_sha256_of_its_facts_as_before_the_import_moved_to_sql(session):
    # The formula of the keys stored by earlier versions: every fact but the row number,
    # absent ones empty, joined by U+001F; the booking time in ISO 8601, UTC.
    facts = ["adyen", "501", "capture", "Settled", "PSP0001", "MOD0001", "ORDER-1", "",
             "10000", "EUR", "0", "50", "40", "100", "0", "0", "9810", "EUR", "1",
             "2026-05-05T21:50:00+00:00", ""]  # fmt: skip
    expected = hashlib.sha256("\x1f".join(facts).encode()).hexdigest()
    org = make_org(session)
    imported(session, org, ADYEN.read_bytes())
    key = session.scalar(select(SettlementLine.line_key).where(
        SettlementLine.org_id == org.id, SettlementLine.row_number == 2))  # fmt: skip
    assert key == expected


class _GeneratedReport(io.RawIOBase):
    """An Adyen report of ``rows`` settled rows made as it is read, counting the bytes."""

    def __init__(self, rows: int) -> None:
        header = ADYEN_HEADERS["short_25"]
        head, row = csv_text(header, [SETTLED]).split(b"\n", 1)
        self._chunks = iter([head + b"\n", *(row for _ in range(rows))])
        self._pending = b""
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        assert (offset, whence) == (0, io.SEEK_CUR), "only telling where it stands"
        return self.consumed

    def readinto(self, buffer) -> int:
        while len(self._pending) < len(buffer):
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        self.consumed += size
        return size


def test_only_the_header_is_read_before_the_body_is_staged():
    source = _GeneratedReport(200_000)
    report = read_settlement_report(io.BufferedReader(source))
    assert isinstance(report, StagedReport)
    assert (report.header, report.header_row) == (ADYEN_HEADERS["short_25"], 1)
    # A buffer into a file of about 20 MB.
    assert source.consumed < 200_000


def test_a_bad_cell_after_good_rows_is_refused_with_its_row_and_column(session):
    header = ADYEN_HEADERS["short_25"]
    content = csv_text(header, [SETTLED, SETTLED, SETTLED | {"Net Credit (NC)": "9.701"}])
    with pytest.raises(SettlementCellInvalid) as refused:
        parse_bytes(session, content)
    assert refused.value.extra == {"row": 4, "column": "Net Credit (NC)"}
    assert "more than 2 decimals" in refused.value.detail


def test_a_refused_file_does_not_stop_the_next_import_of_the_same_transaction(session):
    header = ADYEN_HEADERS["short_25"]
    with pytest.raises(SettlementCellInvalid):
        parse_bytes(session, csv_text(header, [SETTLED | {"Type": ""}]))
    (line,) = parse_bytes(session, csv_text(header, [SETTLED])).lines
    assert line.provider_reference == "PSP9"
