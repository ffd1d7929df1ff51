"""Reading a settlement report's records and cells, exactly, with errors that point.

Every parser reads its file through :func:`decoded_lines` and :func:`numbered_records`
and its cells through :class:`Row`, so each refusal names the row (the header is row 1)
and the column, and money is converted from the provider's decimal strings with integer
arithmetic, never a float. The Adyen report is read in PostgreSQL with the same rules
(shared/settlements/cell_sql.py): its refusals' messages come from these functions.
"""

from __future__ import annotations

import codecs
import csv
import functools
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import IO, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.platform.errors import ValidationFailed
from shared.values.money import MAX_AMOUNT_MINOR, currency_exponent, normalise_currency
from shared.values.text import MAX_TEXT_LENGTH, check_free_text, check_identifier
from shared.values.timestamps import check_plausible

T = TypeVar("T")

# Plain decimal notation only: sign, digits, a point, digits; no exponent, thousands
# separator or space. ".91" and "10." are what spreadsheets write.
DECIMAL = re.compile(r"([+-]?)(?=\.?[0-9])([0-9]*)(?:\.([0-9]*))?")
MAX_NUMBER_LENGTH = 40
# The longest line read: a JSON object fits on it, and a file without line breaks is
# refused after this many bytes instead of being read whole.
MAX_LINE_BYTES = 1 << 20
# The fixed offsets of the zone abbreviations the providers write (Adyen's TimeZone
# columns). Ambiguous ones (CST, IST) are not guessed: the cell is refused.
ZONE_ABBREVIATIONS = {
    "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "WEST": 1, "BST": 1, "CET": 1, "CEST": 2,
    "EET": 2, "EEST": 3, "MSK": 3, "PST": -8, "PDT": -7, "MST": -7, "MDT": -6,
    "EST": -5, "EDT": -4, "HKT": 8, "SGT": 8, "JST": 9, "AEST": 10, "AEDT": 11,
}  # fmt: skip
# ISO 8601 dates with dashes (fromisoformat alone would also take 20250911).
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:$|[ T])")


class SettlementFileRefused(
    ValidationFailed, title="Settlement file refused", type_slug="settlement-file-refused"
):
    """A file recon cannot read as any settlement layout it knows (nothing is stored)."""


class SettlementCellInvalid(
    ValidationFailed, title="Settlement cell invalid", type_slug="settlement-cell-invalid"
):
    """One cell of a settlement file that breaks its column's rule (nothing is stored)."""

    def __init__(self, row: int, column: str, problem: str) -> None:
        super().__init__(f"row {row}, column {column!r}: {problem}", row=row, column=column)


def decoded_lines(binary: IO[bytes]) -> Iterator[str]:
    """The lines of ``binary`` as text, read one at a time (a BOM before the first dropped).

    A line that is not UTF-8, or longer than MAX_LINE_BYTES (which bounds the memory a
    file without line breaks could take), refuses the file naming the line.
    """
    number = 0
    while raw := binary.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise SettlementFileRefused(f"line {number} is longer than {MAX_LINE_BYTES} bytes")
        if number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SettlementFileRefused(f"line {number} is not UTF-8 text") from None


def numbered_records(lines: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """The CSV records of ``lines`` with their numbers (the first record is row 1); blank
    records are skipped. A record that breaks CSV quoting refuses the file, naming it.
    """
    reader = csv.reader(lines, strict=True)
    number = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            detail = f"row {number + 1}: not readable as CSV ({error})"
            raise SettlementFileRefused(detail) from None
        number += 1
        if any(cell.strip() for cell in cells):
            yield number, cells


# Pure look-ups of the ISO table, asked once per cell: cached (failures are not).
cached_exponent = functools.lru_cache(maxsize=512)(currency_exponent)
currency_code = functools.lru_cache(maxsize=512)(normalise_currency)


def decimal_minor_units(text: str, currency: str) -> int:
    """``text`` (a decimal string in major units) as exact minor units of ``currency``.

    Integer arithmetic on the digits, never a float. A ``ValueError`` says why not: not
    a plain decimal number, more decimals than the currency has, or beyond the largest
    amount accepted.
    """
    match = DECIMAL.fullmatch(text) if len(text) <= MAX_NUMBER_LENGTH else None
    if match is None:
        raise ValueError("is not a decimal number")
    sign, whole, fraction = match.group(1, 2, 3)
    fraction = fraction or ""
    exponent = cached_exponent(currency)
    if len(fraction) > exponent:
        raise ValueError(f"has more than {exponent} decimals, the most {currency} has")
    magnitude = int(whole or "0") * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
    return checked_minor(-magnitude if sign == "-" else magnitude)


def integer_minor_units(text: str) -> int:
    """``text`` (an integer string already in minor units, as PayPal writes) as an int."""
    if len(text) > MAX_NUMBER_LENGTH or not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError("is not a whole number of minor units")
    return checked_minor(int(text))


def checked_minor(amount: int) -> int:
    """``amount`` unchanged if its magnitude is at most MAX_AMOUNT_MINOR."""
    if abs(amount) > MAX_AMOUNT_MINOR:
        raise ValueError(f"is beyond the largest amount accepted ({MAX_AMOUNT_MINOR} minor units)")
    return amount


def exchange_rate(text: str) -> Decimal:
    """A positive exchange rate, exactly as written."""
    if len(text) > MAX_NUMBER_LENGTH or not DECIMAL.fullmatch(text):
        raise ValueError("is not a decimal number")
    rate = Decimal(text)
    if rate <= 0:
        raise ValueError("must be above 0")
    return rate


@functools.lru_cache(maxsize=64)
def zone_named(name: str) -> timezone | ZoneInfo:
    """A zone abbreviation the providers write (``PST``, ``CET``), or an IANA name."""
    hours = ZONE_ABBREVIATIONS.get(name.upper())
    if hours is not None:
        return timezone(timedelta(hours=hours))
    try:
        return ZoneInfo(name) if "/" in name else _unknown_zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return _unknown_zone(name)


def _unknown_zone(name: str) -> timezone:
    raise ValueError(f"is not a time zone recon knows ({name[:40]!r})")


# A report repeats its booking times on every row of a batch. A plausible instant stays
# plausible as time passes, so an answer may be cached (a refusal is not).
@functools.lru_cache(maxsize=4096)
def local_instant(text: str, zone: timezone | ZoneInfo) -> datetime:
    """``2025-09-11 11:44:20`` (or a bare date, read as its midnight) in ``zone``, in UTC;
    a time that states its own offset keeps it."""
    if not ISO_DATE.match(text):
        raise ValueError("is not a date and time (YYYY-MM-DD HH:MM:SS)")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("is not a date and time (YYYY-MM-DD HH:MM:SS)") from None
    return plausible(moment if moment.tzinfo else moment.replace(tzinfo=zone))


def plausible(moment: datetime) -> datetime:
    """``moment`` in UTC if it lies in the plausible window, else a ``ValueError``."""
    return check_plausible(moment.astimezone(UTC))


class Columns:
    """A header's column names → positions, found by name (surrounding spaces and case
    ignored). A repeated name reads its first occurrence."""

    def __init__(self, header: list[str]) -> None:
        self.names = [name.strip() for name in header]
        self._positions: dict[str, int] = {}
        for position, name in enumerate(self.names):
            self._positions.setdefault(name.casefold(), position)
        # Asked once per cell: the answer per name as the parser spells it.
        self._asked: dict[str, int | None] = {}

    def __contains__(self, name: str) -> bool:
        return self.position(name) is not None

    def missing(self, names: Iterable[str]) -> list[str]:
        """The ``names`` the header lacks, in order."""
        return [name for name in names if name not in self]

    def position(self, name: str) -> int | None:
        """The position of ``name``, or None when the header lacks it."""
        try:
            return self._asked[name]
        except KeyError:
            found = self._asked[name] = self._positions.get(name.casefold())
            return found


class Row:
    """One record read by column name; every reader names the row and column it refuses."""

    __slots__ = ("_cells", "_columns", "number")

    def __init__(self, number: int, cells: list[str], columns: Columns) -> None:
        self.number = number
        self._cells = cells
        self._columns = columns

    def cell(self, column: str) -> str:
        """The cell stripped of spaces; ``""`` when empty or the column is absent."""
        position = self._columns.position(column)
        try:
            return self._cells[position].strip()  # type: ignore[index]
        except (TypeError, IndexError):  # an absent column, a short record
            return ""

    def refuse(self, column: str, problem: str) -> SettlementCellInvalid:
        """The error for this row's ``column``."""
        return SettlementCellInvalid(self.number, column, problem)

    def read(self, column: str, convert: Callable[[str], T]) -> T | None:
        """``convert`` of the cell, None when it is empty; its ValueError names row and column."""
        text = self.cell(column)
        if not text:
            return None
        try:
            return convert(text)
        except ValueError as error:
            raise self.refuse(column, str(error)) from None

    def required(self, column: str, convert: Callable[[str], T]) -> T:
        """Like :meth:`read`, but an empty cell is refused."""
        value = self.read(column, convert)
        if value is None:
            raise self.refuse(column, "is empty")
        return value

    def text(self, column: str) -> str | None:
        """An identifier cell: one line, no control characters, at most 255 characters."""
        return self.read(column, identifier)

    def amount(self, column: str, currency: str | None) -> int | None:
        """A decimal cell in major units as minor units of ``currency`` (None when empty)."""
        text = self.cell(column)
        if not text:
            return None
        if currency is None:
            raise self.refuse(column, "holds an amount but the row states no currency")
        try:
            return decimal_minor_units(text, currency)
        except ValueError as error:
            raise self.refuse(column, str(error)) from None

    def required_amount(self, column: str, currency: str) -> int:
        """Like :meth:`amount`, but an empty cell is refused."""
        amount = self.amount(column, currency)
        if amount is None:
            raise self.refuse(column, "is empty")
        return amount


def identifier(text: str) -> str:
    """``text`` unchanged if the service may store it as an identifier, else a ValueError."""
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(f"is longer than {MAX_TEXT_LENGTH} characters")
    check_identifier(text)
    return text


def free_text(text: str) -> str:
    """A description: its first 255 characters, line breaks and tabs allowed."""
    return check_free_text(text[:MAX_TEXT_LENGTH])


def iso_day(text: str) -> date:
    """``2026-01-31`` (a time after it is ignored) as a date."""
    return date.fromisoformat(text[:10])
