"""Money: exponents from the ISO 4217 table, never a float, never /100."""

from __future__ import annotations

import pytest

from shared.platform.errors import ValidationFailed
from shared.values.money import currency_exponent, format_minor, normalise_currency


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
