"""The settlement leg's pure rules, table-driven (no database)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from shared.matching.rules import MatchSettings
from shared.settlements.rules import (
    ageing_bucket,
    expected_fee,
    fee_excess,
    last_overdue_day,
    payout_difference,
    settlement_amount_disagrees,
    settlement_delay,
)


@pytest.mark.parametrize(
    ("amount", "net", "difference"),
    [(1000, 1000, None), (99900, 2482, 97418), (403, -480, 883), (0, 0, None), (966, 965, 1)],
)
def test_a_payout_differs_from_its_lines_to_the_minor_unit(amount, net, difference):
    assert payout_difference(amount, net) == difference


@pytest.mark.parametrize(
    ("gross", "gross_currency", "amount", "currency", "settings", "disagrees"),
    [
        (1000, "EUR", 1000, "EUR", MatchSettings(), False),
        (1001, "EUR", 1000, "EUR", MatchSettings(), True),
        (999, "EUR", 1000, "EUR", MatchSettings(amount_tolerance_minor=1), False),
        (998, "EUR", 1000, "EUR", MatchSettings(amount_tolerance_minor=1), True),
        # The percentage tolerance is of the payment's amount, exact: 0.5 % of 1000 is 5.
        (1005, "EUR", 1000, "EUR", MatchSettings(amount_tolerance_percent=Decimal("0.5")), False),
        (1006, "EUR", 1000, "EUR", MatchSettings(amount_tolerance_percent=Decimal("0.5")), True),
        # An FX line is compared in its transaction currency, never after conversion.
        (5000, "JPY", 5000, "JPY", MatchSettings(), False),
        (1000, "USD", 1000, "EUR", MatchSettings(amount_tolerance_minor=10**6), True),
        (1000, None, 1000, "EUR", MatchSettings(), True),
    ],
)
def test_a_capture_line_disagrees_with_its_payment_beyond_the_tolerance(
    gross, gross_currency, amount, currency, settings, disagrees
):
    assert settlement_amount_disagrees(gross, gross_currency, amount, currency, settings) is (
        disagrees
    )


@pytest.mark.parametrize(
    ("delays", "provider", "days"),
    [
        ({}, "adyen", 3),
        ({"adyen": 1}, "adyen", 1),
        ({"adyen": 1}, "stripe", 3),
        ({"paypal": 0}, "paypal", 0),
    ],
)
def test_the_settlement_delay_is_per_provider_with_a_default_of_three(delays, provider, days):
    assert settlement_delay(delays, provider) == days


@pytest.mark.parametrize(
    ("today", "delay", "country", "last_overdue"),
    [
        # A Monday's payment is due by Thursday (3 business days), late from Friday.
        (date(2026, 5, 8), 3, None, date(2026, 5, 4)),
        # A weekend's payments count from Monday (due Thursday): Friday's is the last late.
        (date(2026, 5, 7), 3, None, date(2026, 5, 1)),
        # A Friday's payment is due by Wednesday: on Monday nothing after Tuesday is late.
        (date(2026, 5, 11), 3, None, date(2026, 5, 5)),
        (date(2026, 5, 11), 0, None, date(2026, 5, 8)),  # no delay: the weekend's is not late
        # Good Friday and Easter Monday 2026 (3 and 6 April) are German holidays: Tuesday's
        # payment is due the next Tuesday, Wednesday's on the Wednesday.
        (date(2026, 4, 8), 3, "DE", date(2026, 3, 31)),
        (date(2026, 4, 8), 3, None, date(2026, 4, 2)),
    ],
)
def test_the_last_overdue_day_counts_business_days(today, delay, country, last_overdue):
    assert last_overdue_day(today, delay, country) == last_overdue


@pytest.mark.parametrize(
    ("age", "bucket"),
    [(0, "0-3"), (3, "0-3"), (4, "4-7"), (7, "4-7"), (8, "8-30"), (30, "8-30"), (31, ">30"),
     (400, ">30"), (-1, "0-3")],
)  # fmt: skip
def test_unsettled_payments_age_in_four_buckets(age, bucket):
    assert ageing_bucket(age) == bucket


@pytest.mark.parametrize(
    ("gross", "percent", "fixed", "expected"),
    [(10000, Decimal("1.4"), 25, 165), (1050, Decimal("1.5"), 0, 16), (1150, Decimal("1.5"), 0, 17),
     (-10000, Decimal("1.4"), 25, 165), (0, Decimal("2.9"), 30, 30)],
)  # fmt: skip
def test_the_expected_fee_is_a_share_of_the_gross_plus_a_fixed_part(
    gross, percent, fixed, expected
):
    assert expected_fee(gross, percent, fixed) == expected


@pytest.mark.parametrize(
    ("fees", "expected", "tolerance", "excess"),
    [(165, 165, 0, None), (166, 165, 0, 1), (166, 165, 1, None), (100, 165, 0, None)],
)
def test_only_fees_above_the_schedule_beyond_the_tolerance_are_found(
    fees, expected, tolerance, excess
):
    assert fee_excess(fees, expected, tolerance) == excess
