"""The cell rules asked in SQL agree with the Python rules, case by case."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text

from shared.settlements.cell_sql import (
    PARAMETERS,
    WHITESPACE,
    currency_values,
    decimal_is_exact,
    exchange_rate_is_valid,
    identifier_is_valid,
    minor_units,
)
from shared.settlements.cells import decimal_minor_units, exchange_rate, identifier

AMOUNTS = [
    "0.29", ".91", "10.", "-0.11", "+5", "3158", "12.345", "1.5", "0.000", "-.5", "00.10",
    "10000000000000.00", "10000000000000.01", "-10000000000000.00", "1000000000000000",
    "5000.5", "3158.0", "12.3456", "1.001", "1,000.00", "1e3", "NaN", "Infinity", "1 000",
    "٣", ".", "+", "-", "+.", "1" * 40, "1" * 41, "9" * 16, "0." + "0" * 38,
]  # fmt: skip


def python_minor(cell: str, currency: str) -> int | None:
    try:
        return decimal_minor_units(cell, currency)
    except ValueError:
        return None


@pytest.mark.parametrize("currency", ["USD", "JPY", "KWD", "CLF"])
def test_sql_reads_every_amount_as_the_python_rule_does(session, currency):
    code, exponent, factor, pattern = currency_values(currency)
    statement = text(f"""
SELECT v.cell, CASE WHEN {decimal_is_exact("v.cell", "cur")}
                    THEN {minor_units("v.cell", "cur.factor")} END AS minor
FROM unnest(CAST(:cells AS text[])) AS v(cell),
     (SELECT CAST(:code AS text) AS code, CAST(:exponent AS int) AS exponent,
             CAST(:factor AS bigint) AS factor, CAST(:pattern AS text) AS pattern) AS cur
""")
    parameters = {"cells": AMOUNTS, "code": code, "exponent": exponent, "factor": factor,
                  "pattern": pattern}  # fmt: skip
    read = dict(session.execute(statement, PARAMETERS | parameters).all())
    assert read == {cell: python_minor(cell, currency) for cell in AMOUNTS}


IDENTIFIERS = ["PSP9", "P\x1b[2J", "A\u202eB", "A\u2067B", "x" * 255, "x" * 256, "Ünïcødé ✓",
               "tab\there", "\x85x", "line\nbreak", "\x7f", "\x01"]  # fmt: skip
RATES = ["1", "0.00662", "0", "-1", "abc", ".5", "10.", "1e3", "0.0000001", "+2", "-0"]


def python_accepts(rule, cell: str) -> bool:
    try:
        rule(cell)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    ("cells", "sql", "rule"),
    [(IDENTIFIERS, identifier_is_valid("v.cell"), identifier),
     (RATES, exchange_rate_is_valid("v.cell"), exchange_rate)],
)  # fmt: skip
def test_sql_accepts_the_identifiers_and_rates_the_python_rules_accept(session, cells, sql, rule):
    statement = text(f"SELECT v.cell, {sql} FROM unnest(CAST(:cells AS text[])) AS v(cell)")
    read = dict(session.execute(statement, PARAMETERS | {"cells": cells}).all())
    assert read == {cell: python_accepts(rule, cell) for cell in cells}


def test_sql_stores_a_rate_as_the_decimal_python_reads():
    # The stored numeric keeps the digits as written, as Decimal does.
    assert exchange_rate("0.006733333333333") == Decimal("0.006733333333333")


def test_the_whitespace_trimmed_in_sql_is_what_python_strips():
    assert set(WHITESPACE) == {chr(code) for code in range(0x110000) if chr(code).isspace()}
