"""Bank statements exported as CSV, read through a column mapping saved per account.

A CSV has no balances and no statement id: it reads as one statement of the mapping's
account, without balances (``balanced`` is None), whose period is its entries' dates.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime
from typing import IO, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.bank.model import (
    AccountIdentification,
    BankEntry,
    StatementAssembler,
    StatementHeader,
    StatementItem,
    UnreadableStatement,
)
from shared.platform.errors import ValidationFailed
from shared.values.money import CurrencyCode, minor_units, normalise_currency
from shared.values.text import MAX_TEXT_LENGTH, one_line

FORMAT = "csv"
STATEMENT_ID = "csv"
Column = Field(default=None, min_length=1, max_length=MAX_TEXT_LENGTH)


class CsvMapping(BaseModel):
    """Which column holds what, and how dates and amounts are written.

    The amount is one signed column (``amount_column``) or two unsigned ones
    (``debit_column`` and ``credit_column``); the currency one fixed code
    (``currency``) or a column (``currency_column``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = Field(min_length=1, max_length=MAX_TEXT_LENGTH)
    date_column: str = Field(min_length=1, max_length=MAX_TEXT_LENGTH)
    value_date_column: str | None = Column
    amount_column: str | None = Column
    debit_column: str | None = Column
    credit_column: str | None = Column
    currency: CurrencyCode | None = None
    currency_column: str | None = Column
    counterparty_column: str | None = Column
    text_column: str | None = Column
    reference_column: str | None = Column
    date_format: str = Field(default="%Y-%m-%d", min_length=2, max_length=40)
    decimal_separator: Literal[".", ","] = "."
    thousands_separator: Literal["", ",", ".", " ", "'"] = ""
    delimiter: Literal[",", ";", "\t", "|"] = ","

    @model_validator(mode="after")
    def _one_way_each(self) -> Self:
        split = self.debit_column is not None and self.credit_column is not None
        if (self.amount_column is None) != split:
            raise ValueError("give amount_column, or both debit_column and credit_column")
        if (self.currency is None) == (self.currency_column is None):
            raise ValueError("give currency or currency_column (one of them)")
        if self.thousands_separator == self.decimal_separator:
            raise ValueError("thousands_separator must differ from decimal_separator")
        return self

    def columns(self) -> list[str]:
        """Every column the mapping reads."""
        return [
            value for name, value in self if name.endswith("_column") and isinstance(value, str)
        ]


def _refuse(reason: str, location: str) -> UnreadableStatement:
    return UnreadableStatement(reason, format=FORMAT, location=location)


def read_csv(source: IO[bytes], mapping: CsvMapping) -> Iterator[StatementItem]:
    """One statement of ``mapping.account``: a row per entry, streamed; a missing column
    is refused before any row, a bad cell naming its row and column."""
    text = io.TextIOWrapper(source, encoding="utf-8-sig", newline="")
    try:
        rows = csv.reader(text, delimiter=mapping.delimiter, strict=True)
        try:
            header_row = [name.strip() for name in next(rows, [])]
            missing = [name for name in mapping.columns() if name not in header_row]
            if missing:
                raise _refuse(f"missing column(s) {', '.join(map(repr, missing))}", "header")
            index = {name: header_row.index(name) for name in mapping.columns()}
            yield from _statement(rows, index, mapping)
        except (csv.Error, UnicodeDecodeError) as error:
            raise _refuse(f"not readable CSV ({error})", f"line {rows.line_num}") from None
    finally:
        text.detach()  # the caller owns (and closes) the binary file


def _statement(
    rows: Iterator[list[str]], index: dict[str, int], mapping: CsvMapping
) -> Iterator[StatementItem]:
    header = StatementHeader(
        format=FORMAT,
        statement_id=STATEMENT_ID,
        account=AccountIdentification(value=mapping.account),
        currency=mapping.currency or "",
        opening_balance_minor=None,
        closing_balance_minor=None,
    )
    assembler: StatementAssembler | None = None
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        location = f"row {number}"
        entry = _entry(row, index, mapping, location)
        if assembler is None:
            header = replace(header, currency=entry.currency)
            assembler = StatementAssembler(header)
            yield header
        yield assembler.add(entry, location=location)
    if assembler is None:
        raise _refuse("no rows: a statement needs at least one entry", "file")
    yield assembler.close()


def _entry(row: list[str], index: dict[str, int], mapping: CsvMapping, location: str) -> BankEntry:
    def cell(column: str | None) -> str | None:
        if column is None:
            return None
        position = index[column]
        value = row[position].strip() if position < len(row) else ""
        return value or None

    try:
        currency = mapping.currency or normalise_currency(cell(mapping.currency_column) or "")
        amount = _amount(cell, mapping, currency)
        booked = _date(cell(mapping.date_column), mapping.date_format, mapping.date_column)
        value = cell(mapping.value_date_column)
        valued = _date(value, mapping.date_format, mapping.value_date_column) if value else None
    except ValidationFailed as error:
        raise _refuse(error.detail, location) from None
    return BankEntry(
        booking_date=booked,
        value_date=valued,
        amount_minor=amount,
        currency=currency,
        counterparty_name=one_line(cell(mapping.counterparty_column)),
        remittance_text=one_line(cell(mapping.text_column)),
        bank_reference=one_line(cell(mapping.reference_column)),
    )


def _amount(cell: object, mapping: CsvMapping, currency: str) -> int:
    """Signed minor units: the amount column, else credit minus debit (one of them set)."""

    def minor(text: str | None) -> int:
        plain = text or ""
        if mapping.thousands_separator:
            plain = plain.replace(mapping.thousands_separator, "")
        try:
            return minor_units(plain.replace(mapping.decimal_separator, "."), currency)
        except ValidationFailed as error:
            # The message names the cell as written, not as normalised.
            raise ValidationFailed(f"amount {(text or '')[:40]!r}: {error.detail}") from None

    if mapping.amount_column is not None:
        return minor(cell(mapping.amount_column))  # type: ignore[operator]
    debit, credit = cell(mapping.debit_column), cell(mapping.credit_column)  # type: ignore[operator]
    if (debit is None) == (credit is None):
        raise ValidationFailed("exactly one of the debit and credit columns must hold an amount")
    return minor(credit) if credit is not None else -abs(minor(debit))


def _date(text: str | None, date_format: str, column: str | None) -> date:
    try:
        return datetime.strptime(text or "", date_format).date()  # noqa: DTZ007 - a plain date
    except ValueError:
        raise ValidationFailed(
            f"column {column!r}: {(text or '')[:40]!r} does not match {date_format!r}"
        ) from None
