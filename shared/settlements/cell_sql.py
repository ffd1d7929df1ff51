"""The cell rules of shared/settlements/cells.py asked in SQL, for staged rows.

Amounts, exchange rates and references are checked row by row with the same patterns
and limits as the Python rules (their constants, not copies). What a file holds only a
few distinct values of (currencies, zones, booking times, types) is read by the Python
rules themselves, once per distinct value, into a TEMP lookup table (:class:`Lookup`):
Unicode case, ISO 4217, zone names and ISO 8601 stay in one place.

Every expression below takes SQL text of a trimmed cell (NULL when empty) and needs the
bind parameters :data:`PARAMETERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.platform.bulk import column_arrays
from shared.settlements.cells import (
    DECIMAL,
    MAX_NUMBER_LENGTH,
    cached_exponent,
    currency_code,
    local_instant,
    zone_named,
)
from shared.values.money import MAX_AMOUNT_MINOR
from shared.values.text import IDENTIFIER_REFUSED_RANGES, MAX_TEXT_LENGTH

# What Python's str.strip() removes (every character whose str.isspace() is true).
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# PostgreSQL cannot hold NUL: a staged cell has U+0001 in its place (shared/settlements/
# staging.py), which the same bracket expression refuses.
PARAMETERS = {
    "whitespace": WHITESPACE,
    "refused": "[" + IDENTIFIER_REFUSED_RANGES.replace("\x00", "\x01") + "]",
    "decimal": f"^(?:{DECIMAL.pattern})$",
    "max_minor": MAX_AMOUNT_MINOR,
}
BATCH_VALUES = 5_000


def trimmed(cell: str) -> str:
    """The cell stripped as Python strips it, NULL when nothing is left."""
    return f"nullif(btrim({cell}, :whitespace), '')"


def decimal_is_written(cell: str) -> str:
    """Plain decimal notation (cells.decimal_minor_units' first refusal)."""
    return f"(length({cell}) <= {MAX_NUMBER_LENGTH} AND {cell} ~ :decimal)"


def exact_decimal_pattern(exponent: int) -> str:
    """A pattern of the plain decimals (cells.DECIMAL) with at most ``exponent`` decimals:
    one test where the rule asks two."""
    if exponent == 0:
        return "^[+-]?[0-9]+[.]?$"
    return f"^[+-]?(?:[0-9]+(?:[.][0-9]{{0,{exponent}}})?|[.][0-9]{{1,{exponent}}})$"


def currency_values(written: str) -> tuple[str | None, int | None, int | None, str | None]:
    """A currency cell's code, exponent, 10^exponent and exact_decimal_pattern (NULLs: not
    a currency), for :data:`CURRENCIES`."""
    try:
        code = currency_code(written)
    except ValueError:
        return None, None, None, None
    exponent = cached_exponent(code)
    return code, exponent, 10**exponent, exact_decimal_pattern(exponent)


def zone_values(written: str) -> tuple[bool]:
    """Whether a zone cell names a zone recon knows, for :data:`ZONES`."""
    try:
        zone_named(written)
    except ValueError:
        return (False,)
    return (True,)


def instant_values(written: str, zone: str) -> tuple[datetime | None]:
    """A local date and time cell in its zone cell's zone, in UTC, for :data:`INSTANTS`."""
    try:
        return (local_instant(written, zone_named(zone)),)
    except ValueError:
        return (None,)


def decimal_is_exact(cell: str, currency: str) -> str:
    """A plain decimal with at most the exponent of the currency joined as ``currency``
    (CURRENCY_COLUMNS) of decimals, within the largest amount: an amount of fewer digits
    than that amount's needs no arithmetic."""
    digits = len(str(MAX_AMOUNT_MINOR)) - 1
    return (
        f"(CASE WHEN length({cell}) <= {MAX_NUMBER_LENGTH} AND {cell} ~ {currency}.pattern "
        f"THEN length({cell}) <= {digits} - {currency}.exponent "
        f"OR abs(CAST({cell} AS numeric)) * {currency}.factor <= :max_minor ELSE false END)"
    )


def minor_units(cell: str, factor: str) -> str:
    """The exact minor units of a checked decimal cell (NULL when empty); ``factor`` is
    the SQL of 10^exponent of its currency."""
    return f"CAST(CAST({cell} AS numeric) * {factor} AS bigint)"


def exchange_rate_is_valid(cell: str) -> str:
    """A plain decimal above 0 (cells.exchange_rate)."""
    return f"(CASE WHEN {decimal_is_written(cell)} THEN CAST({cell} AS numeric) > 0 ELSE false END)"


def identifier_is_valid(cell: str, clean: str = "false") -> str:
    """At most MAX_TEXT_LENGTH characters, none refused (cells.identifier); ``clean``: SQL
    already true when the cell holds no refused character."""
    return f"(length({cell}) <= {MAX_TEXT_LENGTH} AND ({clean} OR {cell} !~ :refused))"


@dataclass(frozen=True)
class Lookup:
    """A TEMP table mapping a cell as written (and its ``keys``) to what its Python
    ``rule(written, keys…)`` made of it: ``columns`` ("name type"), NULLs where it refused."""

    table: str
    rule: Callable[..., tuple[Any, ...]]
    columns: tuple[str, ...]
    keys: tuple[str, ...] = ()

    def create(self, session: Session) -> None:
        """Create the (empty) table; the key is unique."""
        keys = ", ".join(["written", *self.keys])
        listed = ", ".join(["written text", *(f"{key} text" for key in self.keys), *self.columns])
        session.execute(text(f"DROP TABLE IF EXISTS {self.table}"))
        session.execute(text(
            f"CREATE TEMPORARY TABLE {self.table} ({listed}, PRIMARY KEY ({keys})) ON COMMIT DROP"
        ))  # fmt: skip

    def add(self, session: Session, found: list[tuple[str, ...]]) -> None:
        """Add the ``found`` (written, keys…) not added yet, each with its rule's values."""
        if not found:
            return
        names = ["written", *self.keys, *(column.split()[0] for column in self.columns)]
        kinds = ["text"] * (1 + len(self.keys)) + [column.split()[1] for column in self.columns]
        rows = [(*values, *self.rule(*values)) for values in found]
        arrays = ", ".join(
            f"CAST(:{name} AS {kind}[])" for name, kind in zip(names, kinds, strict=True)
        )
        session.execute(
            text(f"INSERT INTO {self.table} SELECT * FROM unnest({arrays}) "  # noqa: S608 - header positions and constants, never cell text
                 "ON CONFLICT DO NOTHING"),
            column_arrays(rows, names),
        )  # fmt: skip


CURRENCIES = Lookup(
    "settlement_currencies",
    currency_values,
    ("code text", "exponent int", "factor bigint", "pattern text"),
)
ZONES = Lookup("settlement_zones", zone_values, ("valid boolean",))
INSTANTS = Lookup("settlement_instants", instant_values, ("instant timestamptz",), ("zone",))
