"""The cell rules of shared/settlements/cells.py asked in SQL, for staged rows.

Amounts, exchange rates and references are checked row by row with the same patterns
and limits as the Python rules (their constants, not copies). What a file holds only a
few distinct values of (currencies, zones, booking times, types) is read by the Python
rules themselves, once per distinct value, into a TEMP lookup table (:func:`fill_lookup`):
Unicode case, ISO 4217, zone names and ISO 8601 stay in one place.

Every expression below takes SQL text of a trimmed cell (NULL when empty) and needs the
bind parameters :data:`PARAMETERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.settlements.cells import DECIMAL, MAX_NUMBER_LENGTH
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
# The lookups' TEMP tables: each maps a cell as written to what its Python rule made of
# it (NULLs: the rule refused it).
CURRENCIES = "settlement_currencies"
ZONES = "settlement_zones"
INSTANTS = "settlement_instants"
BATCH_VALUES = 5_000


def trimmed(cell: str) -> str:
    """The cell stripped as Python strips it, NULL when nothing is left."""
    return f"nullif(btrim({cell}, :whitespace), '')"


def decimal_is_written(cell: str) -> str:
    """Plain decimal notation (cells.decimal_minor_units' first refusal)."""
    return f"(length({cell}) <= {MAX_NUMBER_LENGTH} AND {cell} ~ :decimal)"


def decimal_is_exact(cell: str, currency: str) -> str:
    """A plain decimal with at most the exponent of the currency joined as ``currency``
    (columns exponent, factor = 10^exponent) of decimals, within the largest amount."""
    return (
        f"(CASE WHEN coalesce(length(substring({cell} FROM '\\.([0-9]*)$')), 0) "
        f"<= {currency}.exponent THEN abs(CAST({cell} AS numeric)) * {currency}.factor "
        f"<= :max_minor ELSE false END)"
    )


def minor_units(cell: str, currency: str) -> str:
    """The exact minor units of a checked decimal cell (NULL when empty)."""
    return f"CAST(CAST({cell} AS numeric) * {currency}.factor AS bigint)"


def exchange_rate_is_valid(cell: str) -> str:
    """A plain decimal above 0 (cells.exchange_rate)."""
    return f"(CASE WHEN {decimal_is_written(cell)} THEN CAST({cell} AS numeric) > 0 ELSE false END)"


def identifier_is_valid(cell: str) -> str:
    """At most MAX_TEXT_LENGTH characters, none refused (cells.identifier)."""
    return f"(length({cell}) <= {MAX_TEXT_LENGTH} AND {cell} !~ :refused)"


def fill_lookup(
    session: Session,
    table: str,
    distinct: str,
    rule: Callable[..., tuple[Any, ...]],
    columns: str,
    *,
    keys: tuple[str, ...] = (),
) -> None:
    """Create the TEMP table ``table`` (written, ``keys``…, ``columns``…) of the rows of the
    query ``distinct`` (written, ``keys``…), each with ``rule(written, keys…)``'s values.

    Read in batches: a hostile file of a million distinct values does not fill memory.
    """
    key_columns = "".join(f", {key} text" for key in keys)
    session.execute(text(f"DROP TABLE IF EXISTS {table}"))
    session.execute(text(
        f"CREATE TEMPORARY TABLE {table} (written text{key_columns}, {columns}) ON COMMIT DROP"
    ))  # fmt: skip
    names = ["written", *keys, *(column.split()[0] for column in columns.split(","))]
    raw = session.connection().connection.driver_connection
    statement = text(distinct).execution_options(stream_results=True, yield_per=BATCH_VALUES)
    for batch in session.execute(statement, PARAMETERS).partitions():
        with raw.cursor().copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
            for values in batch:
                if values[0] is not None:
                    copy.write_row((*values, *rule(*values)))
    session.execute(text(f"ANALYZE {table}"))
