"""How long the unresolved discrepancies have waited: the queue's ageing summary.

For the triage list's filters (the same :class:`DiscrepancyFilters`, the same conditions:
``listing.FILTER_CONDITIONS``), the open and acknowledged discrepancies are counted per
age bucket and currency, with their amounts, in one statement over the list indexes.

An age is counted in calendar days of the organisation's time zone, as a person there
reads it: opened today is 0 days old, yesterday 1 day, whatever the hour. The SQL
compares ``opened_at`` with the instants at which those local days began (computed here,
DST included), so the indexes still serve the statement.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from sqlalchemy import Select, bindparam, case, func, select
from sqlalchemy.orm import Session

from shared.access.organizations import get_organization
from shared.discrepancies.lifecycle import UNRESOLVED
from shared.discrepancies.listing import DiscrepancyFilters, filter_conditions, filter_values
from shared.models import ReconciliationDiscrepancy
from shared.values.timestamps import start_of_day

_D = ReconciliationDiscrepancy


@dataclass(frozen=True)
class AgeBucket:
    """Ages from ``min_days`` to ``max_days`` (inclusive; None: no upper bound)."""

    label: str
    min_days: int
    max_days: int | None


AGE_BUCKETS = (
    AgeBucket("0-1", 0, 1),
    AgeBucket("2-7", 2, 7),
    AgeBucket("8-30", 8, 30),
    AgeBucket("31+", 31, None),
)


@dataclass(frozen=True)
class CurrencyTotal:
    """How many discrepancies of one currency, and their amounts summed (minor units)."""

    currency: str
    count: int
    amount_minor: int


@dataclass(frozen=True)
class AgeingBucket:
    """One bucket's discrepancies: their count, and count and amount per currency."""

    label: str
    min_days: int
    max_days: int | None
    count: int
    by_currency: list[CurrencyTotal]


@dataclass(frozen=True)
class AgeingSummary:
    """Every bucket (empty ones included, youngest first) as of ``as_of``, in ``time_zone``."""

    as_of: datetime
    time_zone: str
    buckets: list[AgeingBucket]


def bucket_starts(now: datetime, time_zone: str) -> list[datetime]:
    """For each bucket but the last, the earliest ``opened_at`` it holds: the instant its
    oldest local day began (``now``'s local date minus its ``max_days``)."""
    zone = ZoneInfo(time_zone)
    today = now.astimezone(zone).date()
    return [
        start_of_day(today - timedelta(days=bucket.max_days), zone) for bucket in AGE_BUCKETS[:-1]
    ]


def bucket_window(
    label: str, now: datetime, time_zone: str
) -> tuple[datetime | None, datetime | None]:
    """The opening times bucket ``label`` holds, as the list's ``since`` (inclusive) and
    ``until`` (exclusive) filters: None for the oldest bucket's start and the youngest's
    end. Listing a bucket this way shows exactly the discrepancies the summary counts."""
    labels = [bucket.label for bucket in AGE_BUCKETS]
    index = labels.index(label)
    starts = bucket_starts(now, time_zone)
    since = starts[index] if index < len(starts) else None
    until = starts[index - 1] if index > 0 else None
    return since, until


@cache  # one statement per set of filters (at most 2**11)
def _ageing_statement(filtered: frozenset[str]) -> Select:
    bucket = case(
        *(
            (_D.opened_at >= bindparam(f"start_{index}"), index)
            for index in range(len(AGE_BUCKETS) - 1)
        ),
        else_=len(AGE_BUCKETS) - 1,
    ).label("bucket")
    return (
        select(bucket, _D.currency, func.count().label("count"), func.sum(_D.amount_minor))
        .where(
            _D.org_id == bindparam("org_id"),
            _D.status.in_(UNRESOLVED),
            *filter_conditions(filtered),
        )
        .group_by(bucket, _D.currency)
    )


def ageing_summary(
    *,
    session: Session,
    org_id: uuid.UUID,
    filters: DiscrepancyFilters,
    now: datetime,
) -> AgeingSummary:
    """The organisation's open and acknowledged discrepancies matching ``filters``, per age
    bucket (calendar days in its time zone, by ``opened_at``) and currency.

    A ``status`` filter narrows the unresolved ones (``resolved`` counts nothing). Amounts
    are exact sums of minor units, never added across currencies.
    """
    time_zone = get_organization(session=session, org_id=org_id).timezone
    values = filter_values(filters)
    starts = {f"start_{index}": start for index, start in enumerate(bucket_starts(now, time_zone))}
    rows = session.execute(
        _ageing_statement(frozenset(values)), {**values, **starts, "org_id": org_id}
    )
    totals: dict[int, list[CurrencyTotal]] = {index: [] for index in range(len(AGE_BUCKETS))}
    for index, currency, count, amount in rows:
        totals[index].append(CurrencyTotal(currency, count, int(amount)))
    return AgeingSummary(
        as_of=now,
        time_zone=time_zone,
        buckets=[_bucket(bucket, totals[index]) for index, bucket in enumerate(AGE_BUCKETS)],
    )


def _bucket(bucket: AgeBucket, by_currency: list[CurrencyTotal]) -> AgeingBucket:
    ordered = sorted(by_currency, key=lambda total: total.currency)
    return AgeingBucket(
        label=bucket.label,
        min_days=bucket.min_days,
        max_days=bucket.max_days,
        count=sum(total.count for total in ordered),
        by_currency=ordered,
    )
