from datetime import date

import pytest

from shared.values.business_days import (
    UnknownCalendar,
    add_business_days,
    check_calendar,
    is_business_day,
)

FRIDAY = date(2026, 12, 4)


@pytest.mark.parametrize(
    ("start", "count", "country", "expected"),
    [
        (FRIDAY, 0, None, FRIDAY),
        (FRIDAY, 1, None, date(2026, 12, 7)),  # over the weekend
        (date(2026, 12, 5), 0, None, date(2026, 12, 7)),  # a Saturday starts on Monday
        (date(2026, 12, 23), 2, None, date(2026, 12, 25)),  # weekends only: Christmas counts
        (date(2026, 12, 23), 2, "DE", date(2026, 12, 28)),  # the 24th, then Christmas off
        (date(2026, 4, 2), 1, "DE", date(2026, 4, 7)),  # Good Friday and Easter Monday
        (date(2026, 4, 2), 1, "US", date(2026, 4, 3)),  # Good Friday is worked in the US
        (date(2026, 5, 22), 1, "GB", date(2026, 5, 26)),  # spring bank holiday Monday
    ],
)
def test_business_days_skip_weekends_and_the_countrys_holidays(start, count, country, expected):
    assert add_business_days(start, count, country) == expected


def test_a_holiday_is_not_a_business_day_in_its_country_only():
    christmas = date(2026, 12, 25)
    assert not is_business_day(christmas, "FR")
    assert is_business_day(christmas)


def test_an_unknown_country_is_refused_clearly():
    assert check_calendar("NL") == "NL"
    with pytest.raises(UnknownCalendar, match="'XX'"):
        check_calendar("XX")


def test_a_negative_count_is_a_programming_error():
    with pytest.raises(ValueError, match=">= 0"):
        add_business_days(FRIDAY, -1)
