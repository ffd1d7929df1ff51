"""The settlement leg's rules: pure functions over plain values, no Session, no I/O.

shared/settlements/matching.py finds the candidates with set-based SQL and asks these
functions for the verdict, on the file path and in the period run alike.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from shared.matching.rules import MatchSettings
from shared.values.business_days import add_business_days

# Without a setting for its provider, a captured payment is expected on a settlement
# report within this many business days.
DEFAULT_SETTLEMENT_DELAY_DAYS = 3
MAX_SETTLEMENT_DELAY_DAYS = 60
# The lines that move a payment's money: each must link to an internal payment or record.
PAYMENT_LINE_TYPES = ("capture", "refund", "chargeback")
# The lines a report's "gross settled" counts: payments' money and its reversals.
SETTLED_LINE_TYPES = (*PAYMENT_LINE_TYPES, "refund_reversal", "chargeback_reversal")
# Lines that are a fee in themselves (Adyen's Fee, MiscCosts, PaymentCost rows).
FEE_LINE_TYPE = "fee"
# The line whose gross is the payment's charged amount.
CAPTURE = "capture"
# Ageing of unsettled payments, in calendar days since the payment: (label, first, last).
AGEING_BUCKETS = (("0-3", 0, 3), ("4-7", 4, 7), ("8-30", 8, 30), (">30", 31, None))


def payout_difference(amount_minor: int, lines_net_minor: int) -> int | None:
    """A payout's amount minus its lines' net when they differ (exact, no tolerance: a
    payout is money in the bank), else None."""
    difference = amount_minor - lines_net_minor
    return difference or None


def settlement_amount_disagrees(
    gross_minor: int,
    gross_currency: str | None,
    payment_amount_minor: int,
    payment_currency: str,
    settings: MatchSettings,
) -> bool:
    """Whether a capture line's gross (in the transaction currency, so an FX line is
    compared before conversion) disagrees with its payment's amount: another currency, or
    a difference beyond the organisation's tolerance (``MatchSettings.amount_tolerance``)."""
    if gross_currency != payment_currency:
        return True
    return abs(gross_minor - payment_amount_minor) > settings.amount_tolerance(payment_amount_minor)


def settlement_delay(delays: dict[str, int], provider: str) -> int:
    """The organisation's expected settlement delay for ``provider``, in business days."""
    return delays.get(provider, DEFAULT_SETTLEMENT_DELAY_DAYS)


def last_overdue_day(today: date, delay_days: int, country: str | None = None) -> date:
    """The last day whose payments are overdue on ``today``: a payment of day D is due on
    a settlement report by the ``delay_days``-th business day after D, and overdue after it.
    Every earlier day is overdue too (the due day never moves back)."""
    day = today - timedelta(days=1)
    while add_business_days(day, delay_days, country) >= today:
        day -= timedelta(days=1)
    return day


def ageing_bucket(age_days: int) -> str:
    """The ageing bucket of an unsettled payment ``age_days`` calendar days old."""
    for label, first, last in AGEING_BUCKETS:
        if age_days >= first and (last is None or age_days <= last):
            return label
    return AGEING_BUCKETS[0][0]  # a payment dated after the report's day counts as new


def expected_fee(gross_minor: int, percent: Decimal, fixed_minor: int) -> int:
    """The fee a schedule of ``percent`` of the gross plus ``fixed_minor`` expects, to the
    minor unit (half to even: the amount a provider's own rounding may give)."""
    share = (Decimal(abs(gross_minor)) * percent / 100).quantize(
        Decimal(1), rounding=ROUND_HALF_EVEN
    )
    return int(share) + fixed_minor


def fee_excess(fees_minor: int, expected_minor: int, tolerance_minor: int) -> int | None:
    """How much the fees charged exceed the schedule, when beyond ``tolerance_minor``;
    None when they are within it (fees below the schedule are not a finding)."""
    excess = fees_minor - expected_minor
    return excess if excess > tolerance_minor else None
