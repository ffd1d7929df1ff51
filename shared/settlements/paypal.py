"""PayPal's Settlement report (STL): records tagged RH, FH, SH, CH, SB, SF, SC, RF, RC, FF.

``CH`` names the columns of the ``SB`` (section body) rows that follow; the other record
types are headers and footers with totals, which recon does not need to read. Amounts
are integers of minor units with a separate ``DR``/``CR`` column; a fee ``CR`` is a fee
returned. A withdrawal (``T04xx``) is also a payout.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from shared.settlements.cells import (
    Columns,
    Row,
    SettlementFileRefused,
    currency_code,
    identifier,
    integer_minor_units,
    plausible,
)
from shared.settlements.model import Fees, ReportLine, ReportPayout

LAYOUT = "paypal_settlement"
RECORD_TYPES = ("RH", "FH", "SH", "CH", "SB", "SF", "SC", "RF", "RC", "FF")
REQUIRED_COLUMNS = (
    "Transaction ID",
    "Transaction Event Code",
    "Transaction Debit or Credit",
    "Gross Transaction Amount",
    "Gross Transaction Currency",
)
# Event codes named alone, then by their first three characters (PayPal's groups).
EVENT_CODES = {
    "T1106": "chargeback",
    "T1107": "refund",
    "T1108": "fee",
    "T1201": "chargeback",
    "T1202": "chargeback_reversal",
}
EVENT_GROUPS = {
    "T00": "capture",
    "T01": "fee",
    "T02": "currency_conversion",
    "T03": "balance_transfer",
    "T04": "payout",
    "T08": "adjustment",
    "T09": "adjustment",
    "T11": "adjustment",
    "T12": "adjustment",
    "T15": "adjustment",
    "T21": "adjustment",
}
SIGNS = {"CR": 1, "DR": -1}


def parse_paypal_settlement(
    records: Iterator[tuple[int, list[str]]],
) -> Iterator[ReportLine | ReportPayout]:
    """The lines (and payouts) of an STL file whose records start with RECORD_TYPES."""
    columns: Columns | None = None
    batch_id: str | None = None
    for number, cells in records:
        tag = cells[0].strip().upper()
        if tag == "SH":
            batch_id = _batch_id(Row(number, cells, Columns(["", "start", "end", "account"])))
        elif tag == "CH":
            columns = Columns(["", *cells[1:]])
            missing = columns.missing(REQUIRED_COLUMNS)
            if missing:
                raise SettlementFileRefused(
                    f"row {number}: the CH record lacks the column(s) {', '.join(missing)}"
                )
        elif tag == "SB":
            if columns is None:
                raise SettlementFileRefused(f"row {number}: an SB record before the CH record")
            line = _line(Row(number, cells, columns), batch_id)
            yield line
            if line.line_type == "payout":
                yield _payout(Row(number, cells, columns), line)
        elif tag not in RECORD_TYPES:
            expected = ", ".join(RECORD_TYPES)
            raise SettlementFileRefused(
                f"row {number}: unknown record type {tag[:10]!r}; expected {expected}"
            )


def _batch_id(row: Row) -> str:
    # The account and the report's day, as the report states it (not in UTC).
    start = row.required("start", _stated_instant)
    account = row.required("account", identifier)
    return f"{account}:{start.date().isoformat()}"


def _stated_instant(text: str) -> datetime:
    try:
        moment = datetime.strptime(text, "%Y/%m/%d %H:%M:%S %z")
    except ValueError:
        raise ValueError("is not a date and time (YYYY/MM/DD HH:MM:SS ±HHMM)") from None
    plausible(moment)
    return moment


def _instant(text: str) -> datetime:
    return plausible(_stated_instant(text))


def _sign(row: Row, column: str) -> int:
    return row.required(column, _signed)


def _signed(text: str) -> int:
    sign = SIGNS.get(text.upper())
    if sign is None:
        raise ValueError("must be CR or DR")
    return sign


def _line(row: Row, batch_id: str | None) -> ReportLine:
    code = row.required("Transaction Event Code", identifier).upper()
    currency = row.required("Gross Transaction Currency", currency_code)
    gross = _sign(row, "Transaction Debit or Credit") * row.required(
        "Gross Transaction Amount", integer_minor_units
    )
    fee = 0
    fee_amount = row.read("Fee Amount", integer_minor_units)
    if fee_amount is not None:
        if row.required("Fee Currency", currency_code) != currency:
            raise row.refuse("Fee Currency", f"differs from the gross currency {currency}")
        fee = -_sign(row, "Fee Debit or Credit") * fee_amount
    transaction = row.required("Transaction ID", identifier)
    # A refund or chargeback names the payment it concerns in its reference.
    is_reference = (row.text("PayPal Reference ID Type") or "").upper() == "TXN"
    reference = row.text("PayPal Reference ID") if is_reference else None
    completed = row.read("Transaction Completion Date", _instant)
    return ReportLine(
        provider="paypal",
        row=row.number,
        batch_id=batch_id,
        line_type=EVENT_CODES.get(code) or EVENT_GROUPS.get(code[:3], "other"),
        provider_type=code,
        provider_reference=reference or transaction,
        line_reference=transaction,
        merchant_reference=row.text("Invoice ID") or row.text("Custom Field"),
        payment_intent_id=None,
        gross_minor=gross,
        gross_currency=currency,
        fees=Fees(processing=fee),
        net_minor=gross - fee,
        net_currency=currency,
        exchange_rate=None,
        booked_at=completed or row.required("Transaction Initiation Date", _instant),
        description=None,
    )


def _payout(row: Row, line: ReportLine) -> ReportPayout:
    return ReportPayout(
        provider="paypal",
        row=line.row,
        payout_id=row.text("Bank Reference ID") or line.line_reference or "",
        currency=line.net_currency,
        amount_minor=abs(line.net_minor),
        status="paid",
        arrival_date=None,
        booked_at=line.booked_at,
    )
