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
    BATCH_VALUES,
    CURRENCIES,
    INSTANTS,
    PARAMETERS,
    ZONES,
    Lookup,
    decimal_is_exact,
    exchange_rate_is_valid,
    identifier_is_valid,
    minor_units,
    trimmed,
)
from shared.settlements.cells import (
    Columns,
    SettlementCellInvalid,
    currency_code,
    decimal_minor_units,
    exchange_rate,
    identifier,
    local_instant,
    zone_named,
)
from shared.settlements.model import ReportPayout
from shared.settlements.staging import IMPORT_LINE_COLUMNS, StagedBody

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
# The moments a row's booking time is read from, each in the zone its own column names:
# the booking date when the layout has one, else the creation date.
MOMENTS = (("Booking Date", "Booking Date TimeZone"), ("Creation Date", "TimeZone"))


def line_type(written: str) -> str:
    """The normalised type of a Type cell (a valid identifier), whatever its case."""
    return LINE_TYPES.get(identifier(written).casefold(), "other")


def _type_values(written: str) -> tuple[bool, str | None]:
    try:
        return True, line_type(written)
    except ValueError:
        return False, None


TYPES = Lookup("settlement_adyen_types", _type_values, ("valid boolean", "line_type text"))


# The cells the rules read, each once per row (trimmed) as column k<index> of the
# innermost query; a refusal's message may quote any of them.
_READ = (
    "Type", "Gross Currency", "Gross Credit (GC)", "Gross Debit (GC)", "Net Currency",
    "Net Credit (NC)", "Net Debit (NC)", *FEE_COLUMNS.values(), "Batch Number",
    "Psp Reference", "Modification Reference", "Merchant Reference", "Exchange Rate",
    "Booking Date", "Booking Date TimeZone", "Creation Date", "TimeZone",
)  # fmt: skip
_IDENTIFIERS = ("Batch Number", "Psp Reference", "Modification Reference", "Merchant Reference")


def _cell(name: str, alias: str = "c") -> str:
    return f"{alias}.k{_READ.index(name)}"


class _Rows:
    """The SQL of one staged file's rules and conversions."""

    def __init__(self, staged: StagedBody, header: list[str]) -> None:
        self.staged = staged
        self.columns = Columns(header)

    def raw(self, name: str) -> str:
        return self.staged.cell(self.columns.position(name))

    def cells(self) -> str:
        """The innermost query: each read cell trimmed once, and whether the identifier
        cells hold no refused character at all (the usual case, one test for four)."""
        trimmed_cells = ", ".join(
            f"{trimmed(self.raw(name))} AS k{index}" for index, name in enumerate(_READ)
        )
        identifiers = ", ".join(self.raw(name) for name in _IDENTIFIERS)
        every_cell = ", ".join(self.staged.cell(position) for position in range(self.staged.width))
        # Only a row without a type may be blank (skipped, still numbered).
        blank = (
            f"CASE WHEN {trimmed(self.raw('Type'))} IS NULL "
            f"THEN btrim(concat({every_cell}), :whitespace) = '' ELSE false END"
        )
        return (
            f"SELECT s.ordinal, s.nul_cells, {trimmed_cells}, "  # noqa: S608 - header positions and constants, never cell text
            f"concat({identifiers}) !~ :refused AS clean, {blank} AS blank "
            f"FROM {self.staged.table} AS s OFFSET 0"
        )

    @staticmethod
    def amount_checks(name: str, currency: str) -> list[tuple[str, str, str]]:
        """(condition, column, rule) refusing column ``name``'s amount in the currency
        joined as ``currency``."""
        cell = _cell(name)
        return [
            (f"{cell} IS NOT NULL AND {currency}.code IS NULL", name, "no_currency"),
            (f"{cell} IS NOT NULL AND NOT {decimal_is_exact(cell, currency)}", name, "amount"),
        ]

    @staticmethod
    def identifier_checks(name: str, *, required: bool) -> list[tuple[str, str, str]]:
        cell = _cell(name)
        checks = [(f"{cell} IS NULL", name, "empty")] if required else []
        return [*checks, (f"NOT {identifier_is_valid(cell, 'c.clean')}", name, "identifier")]

    def checks(self) -> list[tuple[str, str, str]]:
        """Every rule of a row, in the order the cells are read: (condition, column, rule)."""
        cell = _cell
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
        for name in _IDENTIFIERS[1:]:
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

    def checked(self) -> str:
        """The middle query: each non-blank row with its lookups and the number of its first
        failing check (:meth:`checks`), NULL when every check passes."""
        cell = _cell
        problem = " ".join(
            f"WHEN {condition} THEN {number}"
            for number, (condition, _, _) in enumerate(self.checks())
        )
        return f"""
SELECT c.*, t.line_type, gc.code AS gc_code, gc.factor AS gc_factor, nc.code AS nc_code,
       nc.factor AS nc_factor, bi.instant AS booking_instant, ci.instant AS creation_instant,
       CASE {problem} END AS problem
FROM ({self.cells()}) AS c
LEFT JOIN {TYPES.table} AS t ON t.written = {cell("Type")}
LEFT JOIN {CURRENCIES.table} AS gc ON gc.written = {cell("Gross Currency")}
LEFT JOIN {CURRENCIES.table} AS nc ON nc.written = {cell("Net Currency")}
LEFT JOIN {ZONES.table} AS bz ON bz.written = {cell("Booking Date TimeZone")} AND bz.valid
LEFT JOIN {ZONES.table} AS cz ON cz.written = {cell("TimeZone")} AND cz.valid
LEFT JOIN {INSTANTS.table} AS bi
  ON bi.written = {cell("Booking Date")} AND bi.zone = {cell("Booking Date TimeZone")}
LEFT JOIN {INSTANTS.table} AS ci
  ON ci.written = {cell("Creation Date")} AND ci.zone = {cell("TimeZone")}
WHERE NOT c.blank
OFFSET 0
"""  # noqa: S608 - header positions and this module's constants, never a cell

    def insert(self, into: str) -> str:
        """The statement inserting each row's line (or, for a row that fails a check, its
        row number and problem) into ``into``."""

        def cell(name: str) -> str:
            return _cell(name, "r")

        def valid(expression: str) -> str:
            return f"CASE WHEN r.problem IS NULL THEN {expression} END"

        def credit_minus_debit(credit: str, debit: str, factor: str) -> str:
            return valid(
                f"CASE WHEN {cell(credit)} IS NOT NULL OR {cell(debit)} IS NOT NULL THEN "
                f"coalesce({minor_units(cell(credit), factor)}, 0) - "
                f"coalesce({minor_units(cell(debit), factor)}, 0) END"
            )

        fees = ", ".join(
            valid(f"coalesce({minor_units(cell(column), 'r.nc_factor')}, 0)")
            for column in FEE_COLUMNS.values()
        )
        return f"""
INSERT INTO {into} ({", ".join(IMPORT_LINE_COLUMNS)}, problem)
SELECT r.ordinal + {self.staged.header_row}, {cell("Batch Number")}, r.line_type,
       {cell("Type")}, {cell("Psp Reference")}, {cell("Modification Reference")},
       {cell("Merchant Reference")}, NULL,
       {credit_minus_debit("Gross Credit (GC)", "Gross Debit (GC)", "r.gc_factor")},
       CASE WHEN {cell("Gross Currency")} IS NOT NULL THEN r.gc_code END, {fees},
       {credit_minus_debit("Net Credit (NC)", "Net Debit (NC)", "r.nc_factor")}, r.nc_code,
       {valid(f"CAST({cell('Exchange Rate')} AS numeric)")},
       CASE WHEN {cell("Booking Date")} IS NOT NULL THEN r.booking_instant
            ELSE r.creation_instant END, NULL, r.problem
FROM ({self.checked()}) AS r
"""  # noqa: S608


def adyen_payouts(*, session: Session, lines: str, batch: int) -> Iterator[list[ReportPayout]]:
    """The payouts the ``MerchantPayout`` lines of the TEMP table ``lines`` state, in file
    order, ``batch`` at a time: each the batch's payout in its currency, paid."""
    statement = text(
        f"SELECT row_number, batch_id, net_currency, net_minor, booked_at FROM {lines} "  # noqa: S608 - header positions and constants, never cell text
        "WHERE line_type = 'payout' ORDER BY row_number"
    ).execution_options(stream_results=True, yield_per=batch)
    for rows in session.execute(statement).partitions():
        yield [
            ReportPayout(provider="adyen", row=row.row_number, payout_id=row.batch_id,
                         currency=row.net_currency, amount_minor=-row.net_minor, status="paid",
                         arrival_date=None, booked_at=row.booked_at)
            for row in rows
        ]  # fmt: skip


# The lookups of the values a file holds few of, each with the cells it is filled from.
_LOOKUPS = (
    (TYPES, ("Type",)),
    (CURRENCIES, ("Gross Currency",)),
    (CURRENCIES, ("Net Currency",)),
    (ZONES, ("Booking Date TimeZone",)),
    (ZONES, ("TimeZone",)),
    (INSTANTS, MOMENTS[0]),
    (INSTANTS, MOMENTS[1]),
)


def _fill_lookups(session: Session, rows: _Rows) -> None:
    """Every lookup of the file, from one scan of its staged rows: their distinct values
    per lookup (grouping sets), each read by its Python rule."""
    names = list(dict.fromkeys(name for _, cells in _LOOKUPS for name in cells))
    keys = [f"k{index}" for index in range(len(names))]
    inner = ", ".join(
        f"{trimmed(rows.raw(name))} AS {key}" for name, key in zip(names, keys, strict=True)
    )
    sets = ", ".join(
        f"({', '.join(keys[names.index(name)] for name in cells)})" for _, cells in _LOOKUPS
    )
    statement = text(
        f"SELECT GROUPING({', '.join(keys)}) AS grouped, {', '.join(keys)} "  # noqa: S608 - header positions and constants, never cell text
        f"FROM (SELECT {inner} FROM {rows.staged.table} AS s) AS c "
        f"GROUP BY GROUPING SETS ({sets})"
    ).execution_options(stream_results=True, yield_per=BATCH_VALUES)
    # GROUPING() sets the bit of each column a row is not grouped by, the first the highest.
    by_mask = {
        sum(1 << (len(names) - 1 - index) for index, name in enumerate(names) if name not in cells):
        (lookup, [names.index(name) + 1 for name in cells])
        for lookup, cells in _LOOKUPS
    }  # fmt: skip
    for lookup in dict.fromkeys(lookup for lookup, _ in _LOOKUPS):
        lookup.create(session)
    for batch in session.execute(statement, PARAMETERS).partitions():
        found: dict[Lookup, list[tuple]] = {}
        for row in batch:
            lookup, columns = by_mask[row.grouped]
            values = tuple(row[column] for column in columns)
            if values[0] is not None:
                found.setdefault(lookup, []).append(values)
        for lookup, values in found.items():
            lookup.add(session, values)
    for lookup in dict.fromkeys(lookup for lookup, _ in _LOOKUPS):
        session.execute(text(f"ANALYZE {lookup.table}"))


def stage_adyen_lines(
    *, session: Session, staged: StagedBody, header: list[str], into: str
) -> None:
    """Check every staged row and insert each line into the TEMP table ``into``
    (shared/settlements/imports.py's IMPORT_LINES).

    Raises ``SettlementCellInvalid`` for the file's first bad cell (its row, its column,
    the message of the cell's rule); ``into`` then holds rows that must not be stored.
    """
    rows = _Rows(staged, header)
    _fill_lookups(session, rows)
    session.execute(text(rows.insert(into)), PARAMETERS)
    first_bad = session.execute(text(
        f"SELECT row_number, problem FROM {into} WHERE problem IS NOT NULL "  # noqa: S608 - header positions and constants, never cell text
        "ORDER BY row_number LIMIT 1"
    )).first()  # fmt: skip
    if first_bad is not None:
        found = session.execute(
            text(f"SELECT * FROM ({rows.cells()}) AS c WHERE c.ordinal = :ordinal"),  # noqa: S608
            PARAMETERS | {"ordinal": first_bad.row_number - staged.header_row},
        ).one()
        _, column, rule = rows.checks()[first_bad.problem]
        raise _refusal(first_bad.row_number, found, column, rule, rows)


def _refusal(row: int, found, column: str, rule: str, rows: _Rows) -> SettlementCellInvalid:
    """The refusal of ``row``'s ``column`` (``found``: its cells as :meth:`_Rows.cells`
    reads them), its message the one the cell's Python rule gives."""
    cells = {name: getattr(found, f"k{index}") for index, name in enumerate(_READ)}
    value = cells[column]
    position = rows.columns.position(column)
    if value is not None and position is not None and position + 1 in (found.nul_cells or ()):
        value = value.replace("\x01", "\x00")
    if rule == "empty":
        return SettlementCellInvalid(row, column, "is empty")
    if rule == "no_currency":
        return SettlementCellInvalid(row, column, "holds an amount but the row states no currency")
    if rule == "no_net":
        return SettlementCellInvalid(row, column, "is empty, and so is Net Debit (NC)")
    zone = cells["Booking Date TimeZone" if column == "Booking Date" else "TimeZone"]
    currency = cells["Gross Currency" if "(GC)" in column else "Net Currency"]
    rules = {
        "identifier": lambda: identifier(value),
        "currency": lambda: currency_code(value),
        "amount": lambda: decimal_minor_units(value, currency_code(currency)),
        "rate": lambda: exchange_rate(value),
        "zone": lambda: zone_named(value),
        "instant": lambda: local_instant(value, zone_named(zone)),
    }
    try:
        rules[rule]()
    except ValueError as error:
        return SettlementCellInvalid(row, column, str(error))
    # The SQL rule refused what the Python rule accepts: a bug, never a silent pass.
    raise AssertionError(f"row {row}, column {column!r}: the SQL and Python rules disagree")
