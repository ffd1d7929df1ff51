"""Amounts, rates and times read from the providers' strings: exact, or refused."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shared.settlements.cells import (
    decimal_minor_units,
    exchange_rate,
    integer_minor_units,
    local_instant,
    zone_named,
)
from shared.settlements.model import Fees


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("0.29", "USD", 29),  # 0.29 * 100 is 28.999… as a float
        ("1.15", "EUR", 115),
        (".91", "USD", 91),
        ("10.", "USD", 1000),
        ("-0.11", "USD", -11),
        ("+5", "EUR", 500),
        ("3158", "JPY", 3158),
        ("12.345", "KWD", 12345),
        ("1.5", "BHD", 1500),
        ("0.000", "KWD", 0),
        ("10000000000000.00", "USD", 10**15),
        ("454331.99", "USD", 45433199),
    ],
)
def test_decimal_strings_become_exact_minor_units(text, currency, minor):
    assert decimal_minor_units(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "reason"),
    [
        ("5000.5", "JPY", "more than 0 decimals"),
        ("3158.0", "JPY", "more than 0 decimals"),
        ("12.3456", "KWD", "more than 3 decimals"),
        ("1.001", "USD", "more than 2 decimals"),
        ("1,000.00", "USD", "not a decimal number"),
        ("1e3", "USD", "not a decimal number"),
        ("NaN", "USD", "not a decimal number"),
        ("Infinity", "USD", "not a decimal number"),
        ("1 000", "USD", "not a decimal number"),
        ("٣", "USD", "not a decimal number"),  # a non-ASCII digit
        ("", "USD", "not a decimal number"),
        ("1" * 41, "USD", "not a decimal number"),
        ("10000000000000.01", "USD", "beyond the largest amount"),
    ],
)
def test_a_decimal_string_that_is_not_exact_is_refused(text, currency, reason):
    with pytest.raises(ValueError, match=reason):
        decimal_minor_units(text, currency)


def test_minor_unit_integers_are_whole_numbers_only():
    assert integer_minor_units("5200") == 5200
    for text in ("10.5", "1e3", "", "12a"):
        with pytest.raises(ValueError, match="whole number"):
            integer_minor_units(text)


def test_exchange_rates_keep_every_digit_and_are_positive():
    assert exchange_rate("0.006733333333333") == Decimal("0.006733333333333")
    for text, reason in (("0", "above 0"), ("-1", "above 0"), ("abc", "not a decimal")):
        with pytest.raises(ValueError, match=reason):
            exchange_rate(text)


@pytest.mark.parametrize(
    ("text", "zone", "utc"),
    [
        ("2025-09-11 11:44:20", "PDT", datetime(2025, 9, 11, 18, 44, 20, tzinfo=UTC)),
        ("2016-02-10 10:25:36", "PST", datetime(2016, 2, 10, 18, 25, 36, tzinfo=UTC)),
        ("2021-01-05 00:21:32", "CET", datetime(2021, 1, 4, 23, 21, 32, tzinfo=UTC)),
        ("2025-09-08", "PDT", datetime(2025, 9, 8, 7, 0, tzinfo=UTC)),
        ("2026-05-04 10:00:00", "Europe/Amsterdam", datetime(2026, 5, 4, 8, 0, tzinfo=UTC)),
    ],
)
def test_local_times_are_read_in_their_zone_and_kept_in_utc(text, zone, utc):
    assert local_instant(text, zone_named(zone)) == utc


def test_unknown_or_ambiguous_zones_and_implausible_times_are_refused():
    for name in ("CST", "XYZ", "Mars/Olympus"):
        with pytest.raises(ValueError, match="not a time zone"):
            zone_named(name)
    with pytest.raises(ValueError, match="not a date"):
        local_instant("05/04/2026", zone_named("UTC"))
    with pytest.raises(ValueError, match="before 2000"):
        local_instant("1999-12-31 00:00:00", zone_named("UTC"))


def test_fees_total_every_component():
    fees = Fees(commission=1, markup=2, scheme_fee=3, interchange=4, processing=5, other=-6)
    assert fees.total == 9
