"""Adyen's Settlement details report (SDR): every header layout, columns found by name,
read set-based in PostgreSQL from the staged body (shared/settlements/staging.py).

One row per balance movement of a batch. Gross is credit − debit in the gross
currency; net is credit − debit in the net (settlement) currency; the fee columns are
in the net currency. A ``MerchantPayout`` row is both a line (its net is the debit) and
the batch's payout in that currency. Types are matched without regard to case.

The rules are those of ``shared/settlements/cells.py``: a row's cells are checked in
the order the columns are listed below, and the first bad cell of the file (lowest row,
then that order) refuses it with the message the cell's rule gives. The few distinct
types, currencies, zones and booking times of a file are read by those Python rules
themselves; amounts, rates and references row by row in SQL
(:mod:`shared.settlements.cell_sql`).
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.settlements.cell_sql import (
    CURRENCIES,
    INSTANTS,
    PARAMETERS,
    ZONES,
    decimal_is_exact,
    decimal_is_written,
    exchange_rate_is_valid,
    fill_lookup,
    identifier_is_valid,
    minor_units,
    trimmed,
)
from shared.settlements.cells import (
    Columns,
    SettlementCellInvalid,
    cached_exponent,
    currency_code,
    decimal_minor_units,
    exchange_rate,
    identifier,
    local_instant,
    zone_named,
)
from shared.settlements.model import ReportPayout
from shared.settlements.staging import StagedBody

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
TYPES = "settlement_adyen_types"
# The moments a row's booking time is read from, each in the zone its own column names:
# the booking date when the layout has one, else the creation date.
MOMENTS = (("Booking Date", "Booking Date TimeZone"), ("Creation Date", "TimeZone"))


def line_type(written: str) -> str:
    """The normalised type of a Type cell (a valid identifier), whatever its case."""
    return LINE_TYPES.get(identifier(written).casefold(), "other")


class _Rows:
    """The SQL of one staged file's cells (by column name) and of its rules."""

    def __init__(self, staged: StagedBody, header: list[str]) -> None:
        self.staged = staged
        self.columns = Columns(header)

    def cell(self, name: str) -> str:
        """The trimmed cell of column ``name``, NULL when empty or absent."""
        return trimmed(self.staged.cell(self.columns.position(name)))

    def amount_checks(self, name: str, currency: str) -> list[tuple[str, str, str]]:
        """(condition, column, rule) refusing column ``name``'s amount in the currency
        joined as ``currency``."""
        cell = self.cell(name)
        return [
            (f"{cell} IS NOT NULL AND {currency}.code IS NULL", name, "no_currency"),
            (f"{cell} IS NOT NULL AND NOT {decimal_is_written(cell)}", name, "amount"),
            (f"{cell} IS NOT NULL AND NOT {decimal_is_exact(cell, currency)}", name, "amount"),
        ]

    def identifier_checks(self, name: str, *, required: bool) -> list[tuple[str, str, str]]:
        cell = self.cell(name)
        checks = [(f"{cell} IS NULL", name, "empty")] if required else []
        return [*checks, (f"NOT {identifier_is_valid(cell)}", name, "identifier")]

    def checks(self) -> list[tuple[str, str, str]]:
        """Every rule of a row, in the order the cells are read: (condition, column, rule)."""
        cell = self.cell
        checks = [
            (f"{cell('Type')} IS NULL", "Type", "empty"),
            ("NOT t.valid", "Type", "identifier"),
            (f"{cell('Gross Currency')} IS NOT NULL AND gc.code IS NULL", "Gross Currency",
             "currency"),
            *self.amount_checks("Gross Credit (GC)", "gc"),
            *self.amount_checks("Gross Debit (GC)", "gc"),
            (f"{cell('Net Currency')} IS NULL", "Net Currency", "empty"),
            ("nc.code IS NULL", "Net Currency", "currency"),
            *self.amount_checks("Net Credit (NC)", "nc"),
            *self.amount_checks("Net Debit (NC)", "nc"),
            (f"{cell('Net Credit (NC)')} IS NULL AND {cell('Net Debit (NC)')} IS NULL",
             "Net Credit (NC)", "no_net"),
        ]  # fmt: skip
        for column in FEE_COLUMNS.values():
            checks += self.amount_checks(column, "nc")
        checks += self.identifier_checks("Batch Number", required=True)
        for name in ("Psp Reference", "Modification Reference", "Merchant Reference"):
            checks += self.identifier_checks(name, required=False)
        rate = cell("Exchange Rate")
        checks.append((f"{rate} IS NOT NULL AND NOT {exchange_rate_is_valid(rate)}",
                       "Exchange Rate", "rate"))  # fmt: skip
        booking = cell("Booking Date")
        for (moment, zone), alias, chosen in zip(
            MOMENTS, ("b", "c"), (f"{booking} IS NOT NULL", f"{booking} IS NULL"), strict=True
        ):
            checks += [
                (f"{chosen} AND {cell(moment)} IS NULL", moment, "empty"),
                (f"{chosen} AND {cell(zone)} IS NULL", zone, "empty"),
                (f"{chosen} AND {alias}z.written IS NULL", zone, "zone"),
                (f"{chosen} AND {alias}i.instant IS NULL", moment, "instant"),
            ]
        return checks

    def joins(self) -> str:
        """The lookups a row's rules read (shared/settlements/cell_sql.py)."""
        cell = self.cell
        return f"""
LEFT JOIN {TYPES} AS t ON t.written = {cell("Type")}
LEFT JOIN {CURRENCIES} AS gc ON gc.written = {cell("Gross Currency")}
LEFT JOIN {CURRENCIES} AS nc ON nc.written = {cell("Net Currency")}
LEFT JOIN {ZONES} AS bz ON bz.written = {cell("Booking Date TimeZone")} AND bz.valid
LEFT JOIN {ZONES} AS cz ON cz.written = {cell("TimeZone")} AND cz.valid
LEFT JOIN {INSTANTS} AS bi
  ON bi.written = {cell("Booking Date")} AND bi.zone = {cell("Booking Date TimeZone")}
LEFT JOIN {INSTANTS} AS ci ON ci.written = {cell("Creation Date")} AND ci.zone = {cell("TimeZone")}
"""

    def not_blank(self) -> str:
        """A record with some cell not blank (blank records are skipped, still numbered)."""
        cells = ", ".join(self.staged.cell(position) for position in range(self.staged.width))
        return f"btrim(concat({cells}), :whitespace) <> ''"

    def credit_minus_debit(self, credit: str, debit: str, currency: str) -> str:
        credit_cell, debit_cell = self.cell(credit), self.cell(debit)
        return (
            f"CASE WHEN {credit_cell} IS NOT NULL OR {debit_cell} IS NOT NULL THEN "
            f"coalesce({minor_units(credit_cell, currency)}, 0) - "
            f"coalesce({minor_units(debit_cell, currency)}, 0) END"
        )

    def line_values(self) -> str:
        """The line columns (shared/settlements/imports.py's IMPORT_LINE_COLUMNS, in order)
        of a row whose every rule passed."""
        cell = self.cell
        fees = ", ".join(
            f"coalesce({minor_units(cell(column), 'nc')}, 0)" for column in FEE_COLUMNS.values()
        )
        gross = self.credit_minus_debit("Gross Credit (GC)", "Gross Debit (GC)", "gc")
        return f"""
s.ordinal + {self.staged.header_row}, {cell("Batch Number")}, t.line_type, {cell("Type")},
{cell("Psp Reference")}, {cell("Modification Reference")}, {cell("Merchant Reference")},
NULL, {gross}, CASE WHEN {cell("Gross Currency")} IS NOT NULL THEN gc.code END, {fees},
{self.credit_minus_debit("Net Credit (NC)", "Net Debit (NC)", "nc")}, nc.code,
CAST({cell("Exchange Rate")} AS numeric),
CASE WHEN {cell("Booking Date")} IS NOT NULL THEN bi.instant ELSE ci.instant END, NULL
"""


def stage_adyen_lines(
    *, session: Session, staged: StagedBody, header: list[str], into: str
) -> None:
    """Check every staged row and insert each line into the TEMP table ``into``.

    Raises ``SettlementCellInvalid`` for the file's first bad cell (its row, its column,
    the message of the cell's rule), having inserted nothing.
    """
    rows = _Rows(staged, header)
    cell = rows.cell
    fill_lookup(session, TYPES, f"SELECT DISTINCT {cell('Type')} FROM {staged.table} AS s",
                lambda written: (_valid(line_type, written), line_type_or_none(written)),
                "valid boolean, line_type text")  # fmt: skip
    fill_lookup(session, CURRENCIES, _distinct(rows, "Gross Currency", "Net Currency"),
                _currency, "code text, exponent int, factor bigint")  # fmt: skip
    zones = ("Booking Date TimeZone", "TimeZone")
    fill_lookup(session, ZONES, _distinct(rows, *zones), lambda written: (
        _valid(zone_named, written),), "valid boolean")  # fmt: skip
    moments = " UNION ".join(
        f"SELECT DISTINCT {cell(moment)}, {cell(zone)} FROM {staged.table} AS s "
        f"JOIN {ZONES} AS z ON z.written = {cell(zone)} AND z.valid "
        f"WHERE {cell(moment)} IS NOT NULL"
        for moment, zone in MOMENTS
    )
    fill_lookup(session, INSTANTS, moments, _instant, "instant timestamptz", keys=("zone",))
    checks = rows.checks()
    problem = " ".join(
        f"WHEN {condition} THEN {number}" for number, (condition, _, _) in enumerate(checks)
    )
    first_bad = session.execute(text(f"""
SELECT s.ordinal + {staged.header_row} AS row, CASE {problem} END AS problem, s.nul_cells,
       {", ".join(cell(name) for name in _READ)}, gc.code AS gross_code, nc.code AS net_code
FROM {staged.table} AS s {rows.joins()}
WHERE {rows.not_blank()} AND CASE {problem} END IS NOT NULL
ORDER BY s.ordinal LIMIT 1
"""), PARAMETERS).first()  # fmt: skip  # noqa: S608 - positions and names are constants
    if first_bad is not None:
        _, column, rule = checks[first_bad.problem]
        raise _refusal(first_bad, column, rule, rows)
    session.execute(text(f"""
INSERT INTO {into} SELECT {rows.line_values()}
FROM {staged.table} AS s {rows.joins()}
WHERE {rows.not_blank()}
"""), PARAMETERS)  # fmt: skip  # noqa: S608


def adyen_payouts(*, session: Session, lines: str, batch: int) -> Iterator[list[ReportPayout]]:
    """The payouts the ``MerchantPayout`` lines of the TEMP table ``lines`` state, in file
    order, ``batch`` at a time: each the batch's payout in its currency, paid."""
    statement = text(
        f"SELECT row_number, batch_id, net_currency, net_minor, booked_at FROM {lines} "
        "WHERE line_type = 'payout' ORDER BY row_number"
    ).execution_options(stream_results=True, yield_per=batch)  # noqa: S608 - a constant
    for rows in session.execute(statement).partitions():
        yield [
            ReportPayout(provider="adyen", row=row.row_number, payout_id=row.batch_id,
                         currency=row.net_currency, amount_minor=-row.net_minor, status="paid",
                         arrival_date=None, booked_at=row.booked_at)
            for row in rows
        ]  # fmt: skip


def line_type_or_none(written: str) -> str | None:
    """:func:`line_type`, or None for a Type cell that is no identifier."""
    try:
        return line_type(written)
    except ValueError:
        return None


def _valid(rule, written: str) -> bool:
    try:
        rule(written)
    except ValueError:
        return False
    return True


def _currency(written: str) -> tuple[str | None, int | None, int | None]:
    try:
        code = currency_code(written)
    except ValueError:
        return None, None, None
    exponent = cached_exponent(code)
    return code, exponent, 10**exponent


def _instant(written: str, zone: str):
    try:
        return (local_instant(written, zone_named(zone)),)
    except ValueError:
        return (None,)


def _distinct(rows: _Rows, *names: str) -> str:
    return " UNION ".join(
        f"SELECT DISTINCT {rows.cell(name)} FROM {rows.staged.table} AS s" for name in names
    )


# The cells a refusal's message may quote, in this order in the first-bad-row query.
_READ = (
    "Type", "Gross Currency", "Gross Credit (GC)", "Gross Debit (GC)", "Net Currency",
    "Net Credit (NC)", "Net Debit (NC)", *FEE_COLUMNS.values(), "Batch Number",
    "Psp Reference", "Modification Reference", "Merchant Reference", "Exchange Rate",
    "Booking Date", "Booking Date TimeZone", "Creation Date", "TimeZone",
)  # fmt: skip


def _refusal(found, column: str, rule: str, rows: _Rows) -> SettlementCellInvalid:
    """The refusal of ``found``'s ``column``, its message the one the cell's rule gives."""
    cells = dict(zip(_READ, found[3 : 3 + len(_READ)], strict=True))
    value = cells[column]
    position = rows.columns.position(column)
    if value is not None and position is not None and position + 1 in (found.nul_cells or ()):
        value = value.replace("\x01", "\x00")
    row = found.row
    if rule == "empty":
        return SettlementCellInvalid(row, column, "is empty")
    if rule == "no_currency":
        return SettlementCellInvalid(row, column, "holds an amount but the row states no currency")
    if rule == "no_net":
        return SettlementCellInvalid(row, column, "is empty, and so is Net Debit (NC)")
    zone = cells["Booking Date TimeZone" if column == "Booking Date" else "TimeZone"]
    currency = found.gross_code if "(GC)" in column else found.net_code
    rules = {
        "identifier": lambda: identifier(value),
        "currency": lambda: currency_code(value),
        "amount": lambda: decimal_minor_units(value, currency),
        "rate": lambda: exchange_rate(value),
        "zone": lambda: zone_named(value),
        "instant": lambda: local_instant(value, zone_named(zone)),
    }
    try:
        rules[rule]()
    except ValueError as error:
        return SettlementCellInvalid(row, column, str(error))
    # The SQL rule refused what the Python rule accepts: a bug, never a silent pass.
    raise AssertionError(f"row {row}, column {column!r}: SQL and Python rules disagree")
