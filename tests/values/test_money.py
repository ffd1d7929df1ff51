"""Money: exponents from the ISO 4217 table, never a float, never /100."""

from __future__ import annotations

import pytest

from shared.platform.errors import ValidationFailed
from shared.values.money import (
    InvalidAmount,
    currency_exponent,
    format_minor,
    minor_units,
    normalise_currency,
)


@pytest.mark.parametrize(
    ("currency", "exponent"), [("JPY", 0), ("USD", 2), ("EUR", 2), ("KWD", 3), ("BHD", 3)]
)
def test_exponent_comes_from_the_iso_table(currency, exponent):
    assert currency_exponent(currency) == exponent


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (123456, "USD", "1,234.56"),
        (123456, "JPY", "123,456"),
        (123456, "KWD", "123.456"),
        (-5, "EUR", "-0.05"),
        (0, "USD", "0.00"),
    ],
)
def test_format_uses_the_currency_exponent(amount, currency, text):
    assert format_minor(amount, currency) == text


def test_currency_codes_are_upper_cased():
    assert normalise_currency(" usd ") == "USD"


@pytest.mark.parametrize("code", ["ZZZ", "US", "", "XAU"])
def test_unknown_or_unitless_currency_is_refused(code):
    with pytest.raises(ValidationFailed):
        normalise_currency(code)


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("1250.50", "EUR", 125050),
        ("1250.5", "EUR", 125050),
        ("1250.", "EUR", 125000),
        (".91", "USD", 91),
        ("-0.01", "USD", -1),
        ("2700", "JPY", 2700),
        ("2700.000", "JPY", 2700),
        ("1.234", "KWD", 1234),
        # 0.1 + 0.2 is not 0.3 in floats; each amount is exact here.
        ("0.30", "EUR", 30),
        ("9999999999999.99", "EUR", 999999999999999),
    ],
)
def test_minor_units_are_exact_with_the_currency_exponent(text, currency, minor):
    assert minor_units(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("1.005", "EUR"),
        ("1.5", "JPY"),
        ("1e3", "EUR"),
        ("NaN", "EUR"),
        ("Infinity", "USD"),
        ("1,000.00", "USD"),
        ("", "EUR"),
        ("10000000000000.01", "EUR"),
        # More digits than Python converts to an int by default: refused, not a crash.
        ("1" * 5000, "EUR"),
    ],
)
def test_minor_units_refuse_inexact_or_odd_text(text, currency):
    with pytest.raises(InvalidAmount):
        minor_units(text, currency)
