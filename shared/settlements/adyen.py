"""Adyen's Settlement details report (SDR): every header layout, columns found by name.

One row per balance movement of a batch. Gross is credit − debit in the gross
currency; net is credit − debit in the net (settlement) currency; the fee columns are
in the net currency. A ``MerchantPayout`` row is both a line (its net is the debit) and
the batch's payout in that currency. Types are matched without regard to case.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from shared.settlements.cells import (
    Columns,
    Row,
    currency_code,
    exchange_rate,
    identifier,
    local_instant,
    zone_named,
)
from shared.settlements.model import Fees, ReportLine, ReportPayout

LAYOUT = "adyen_settlement_details"
# Without these a row cannot be read: they identify the layout.
REQUIRED_COLUMNS = (
    "Merchant Account",
    "Psp Reference",
    "Type",
    "Net Currency",
    "Net Debit (NC)",
    "Net Credit (NC)",
    "Batch Number",
    "Creation Date",
    "TimeZone",
)
LINE_TYPES = {
    "settled": "capture",
    "settledbulk": "capture",
    "settledexternallywithinfo": "capture",
    "refunded": "refund",
    "refundedbulk": "refund",
    "refundedexternallywithinfo": "refund",
    "refundedreversed": "refund_reversal",
    "chargeback": "chargeback",
    "secondchargeback": "chargeback",
    "chargebackexternallywithinfo": "chargeback",
    "chargebackreversed": "chargeback_reversal",
    "chargebackreversedexternallywithinfo": "chargeback_reversal",
    "fee": "fee",
    "misccosts": "fee",
    "paymentcost": "fee",
    "merchantpayout": "payout",
    "balancetransfer": "balance_transfer",
    "depositcorrection": "deposit_correction",
    "invoicededuction": "invoice_deduction",
    "reserveadjustment": "adjustment",
}
FEE_COLUMNS = {
    "commission": "Commission (NC)",
    "markup": "Markup (NC)",
    "scheme_fee": "Scheme Fees (NC)",
    "interchange": "Interchange (NC)",
    "processing": "Payment Fees (NC)",
    "other": "DCC Markup (NC)",
}


def parse_adyen_settlement_details(
    header: list[str], records: Iterator[tuple[int, list[str]]]
) -> Iterator[ReportLine | ReportPayout]:
    """The lines (and payouts) of an SDR whose header has every REQUIRED_COLUMNS name."""
    columns = Columns(header)
    for number, cells in records:
        line = _line(Row(number, cells, columns))
        yield line
        if line.line_type == "payout":
            yield ReportPayout(
                provider="adyen",
                row=line.row,
                payout_id=line.batch_id or "",
                currency=line.net_currency,
                amount_minor=-line.net_minor,
                status="paid",
                arrival_date=None,
                booked_at=line.booked_at,
            )


def _line(row: Row) -> ReportLine:
    provider_type = row.required("Type", identifier)
    line_type = LINE_TYPES.get(provider_type.casefold(), "other")
    gross_currency = row.currency("Gross Currency")
    gross = row.credit_minus_debit("Gross Credit (GC)", "Gross Debit (GC)", gross_currency)
    net_currency = row.required("Net Currency", currency_code)
    net = row.credit_minus_debit("Net Credit (NC)", "Net Debit (NC)", net_currency)
    if net is None:
        raise row.refuse("Net Credit (NC)", "is empty, and so is Net Debit (NC)")
    fees = {name: row.amount(column, net_currency) or 0 for name, column in FEE_COLUMNS.items()}
    return ReportLine(
        provider="adyen",
        row=row.number,
        batch_id=row.required("Batch Number", identifier),
        line_type=line_type,
        provider_type=provider_type,
        provider_reference=row.text("Psp Reference"),
        line_reference=row.text("Modification Reference"),
        merchant_reference=row.text("Merchant Reference"),
        payment_intent_id=None,
        gross_minor=gross,
        gross_currency=gross_currency if gross is not None else None,
        fees=Fees(**fees),
        net_minor=net,
        net_currency=net_currency,
        exchange_rate=row.read("Exchange Rate", exchange_rate),
        booked_at=_booked_at(row),
    )


def _booked_at(row: Row) -> datetime:
    # The booking date when the layout has one, else the creation date; each in the zone
    # its own TimeZone column names.
    for moment, zone in (("Booking Date", "Booking Date TimeZone"), ("Creation Date", "TimeZone")):
        if row.cell(moment):
            tz = row.required(zone, zone_named)
            return row.required(moment, lambda text, tz=tz: local_instant(text, tz))
    raise row.refuse("Creation Date", "is empty")
