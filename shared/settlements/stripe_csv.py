"""Stripe's itemized balance-change and payout reconciliation reports (CSV).

The settlement-report and payments-activity exports share these column names in any
order; ``created`` may be ``created_utc`` (times are UTC). Amounts are decimal strings
in major units: ``gross − fee = net``, the fee a positive charge. A ``payout`` row is
also the payout itself (its ``source_id`` is the payout id).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date

from shared.settlements.cells import (
    Columns,
    Row,
    currency_code,
    free_text,
    identifier,
    iso_day,
    local_instant,
)
from shared.settlements.model import Fees, ReportLine, ReportPayout

LAYOUT = "stripe_balance_report"
REQUIRED_COLUMNS = (
    "balance_transaction_id",
    "reporting_category",
    "currency",
    "gross",
    "fee",
    "net",
)
CREATED_COLUMNS = ("created_utc", "created")
PAYOUT_EFFECTIVE_COLUMNS = ("automatic_payout_effective_at_utc", "automatic_payout_effective_at")
# Stripe's reporting categories (and balance-transaction types) → the normalised type.
LINE_TYPES = {
    "charge": "capture",
    "payment": "capture",
    "refund": "refund",
    "payment_refund": "refund",
    "refund_failure": "refund_reversal",
    "payment_failure_refund": "refund_reversal",
    "dispute": "chargeback",
    "dispute_reversal": "chargeback_reversal",
    "fee": "fee",
    "stripe_fee": "fee",
    "application_fee": "fee",
    "network_cost": "fee",
    "tax": "fee",
    "payout": "payout",
    "payout_reversal": "payout",
    "transfer": "balance_transfer",
    "transfer_reversal": "balance_transfer",
    "topup": "balance_transfer",
    "topup_reversal": "balance_transfer",
    "adjustment": "adjustment",
    "other_adjustment": "adjustment",
    "partial_capture_reversal": "adjustment",
    "risk_reserved_funds": "adjustment",
    "connect_reserved_funds": "adjustment",
}


def stripe_line_type(category: str) -> str:
    """The normalised type of a Stripe reporting category or balance-transaction type."""
    return LINE_TYPES.get(category.casefold(), "other")


def parse_stripe_balance_report(
    header: list[str],
    records: Iterator[tuple[int, list[str]]],
    *,
    merchant_reference_key: str,
) -> Iterator[ReportLine | ReportPayout]:
    """The lines (and payouts) of a report whose header has every REQUIRED_COLUMNS name.

    The merchant reference is ``payment_metadata[<merchant_reference_key>]``, the key the
    provider account names (``external_id`` unless it says otherwise).
    """
    columns = Columns(header)
    created = next((name for name in CREATED_COLUMNS if name in columns), CREATED_COLUMNS[-1])
    metadata = f"payment_metadata[{merchant_reference_key}]"
    for number, cells in records:
        row = Row(number, cells, columns)
        line = _line(row, created=created, metadata=metadata)
        yield line
        if line.line_type == "payout":
            yield ReportPayout(
                provider="stripe",
                row=number,
                payout_id=line.provider_reference or line.line_reference or "",
                currency=line.net_currency,
                amount_minor=abs(line.net_minor),
                status="paid",
                arrival_date=_first_day(row, PAYOUT_EFFECTIVE_COLUMNS),
                booked_at=line.booked_at,
            )


def _line(row: Row, *, created: str, metadata: str) -> ReportLine:
    currency = row.required("currency", currency_code)
    category = row.required("reporting_category", identifier)
    fee = row.amount("fee", currency) or 0
    return ReportLine(
        provider="stripe",
        row=row.number,
        batch_id=row.text("automatic_payout_id"),
        line_type=stripe_line_type(category),
        provider_type=category,
        provider_reference=row.text("charge_id") or row.text("source_id"),
        line_reference=row.required("balance_transaction_id", identifier),
        merchant_reference=row.text(metadata),
        payment_intent_id=row.text("payment_intent_id"),
        gross_minor=row.required_amount("gross", currency),
        gross_currency=currency,
        fees=Fees(processing=fee),
        net_minor=row.required_amount("net", currency),
        net_currency=currency,
        exchange_rate=None,
        booked_at=row.required(created, lambda text: local_instant(text, UTC)),
        description=row.read("description", free_text),
    )


def _first_day(row: Row, columns: tuple[str, ...]) -> date | None:
    days = (row.read(column, iso_day) for column in columns)
    return next((day for day in days if day is not None), None)
