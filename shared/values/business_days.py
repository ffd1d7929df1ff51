"""Business days: weekdays that are not public holidays of a country's calendar.

Settlement delays and payout arrivals are counted in business days: a payout expected on
a Friday before a bank holiday arrives the next Tuesday, not "three days later". The
calendars come from the maintained `holidays` package (docs/decisions.md, "Business
days"); without a country only weekends are skipped.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

import holidays

from shared.platform.errors import ValidationFailed

SATURDAY = 5


class UnknownCalendar(ValidationFailed):
    """A country code the holiday calendars do not know."""


@cache
def _calendar(country: str | None) -> holidays.HolidayBase | None:
    if country is None:
        return None
    try:
        return holidays.country_holidays(country)
    except NotImplementedError as error:
        raise UnknownCalendar(f"no business-day calendar for country {country!r}") from error


def check_calendar(country: str | None) -> str | None:
    """``country`` (ISO 3166 alpha-2) when a calendar exists for it; raises
    :class:`UnknownCalendar` otherwise."""
    _calendar(country)
    return country


def is_business_day(day: date, country: str | None = None) -> bool:
    """True on a weekday that is not a public holiday of ``country`` (weekends only
    when ``country`` is None)."""
    calendar = _calendar(country)
    return day.weekday() < SATURDAY and (calendar is None or day not in calendar)


def add_business_days(day: date, count: int, country: str | None = None) -> date:
    """The ``count``-th business day after ``day`` (``count`` ≥ 0; 0 gives ``day`` itself
    when it is a business day, else the next one)."""
    if count < 0:
        raise ValueError("count must be >= 0")
    while not is_business_day(day, country):
        day += timedelta(days=1)
    for _ in range(count):
        day += timedelta(days=1)
        while not is_business_day(day, country):
            day += timedelta(days=1)
    return day
