"""The instants a payment, a provider event or a run period may plausibly carry.

A payment cannot have happened before card processors kept electronic records this
service can reconcile, nor (beyond clock skew) in the future. Outside that window a
value is a unit error (milliseconds sent as seconds) or hostile, and accepting it would
do harm: a provider record stamped in the year 5000 would never accept a newer event.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from shared.platform.errors import ValidationFailed

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SKEW = timedelta(days=1)
# A deadline a provider sets (a dispute's evidence due date) lies weeks ahead, rarely
# months: further than this is a unit error too.
DEADLINE_HORIZON = timedelta(days=366)


class ImplausibleTime(ValidationFailed, ValueError):
    """An instant outside the plausible window (a ValueError too, for pydantic)."""


def latest(now: datetime | None = None, ahead: timedelta = FUTURE_SKEW) -> datetime:
    """The latest plausible instant at ``now``: clock skew into the future is tolerated
    (``ahead``: how far a deadline may lie instead)."""
    return (now or datetime.now(UTC)) + ahead


def _refuse(field: str | None, rule: str) -> ImplausibleTime:
    return ImplausibleTime(f"{field} {rule}" if field else rule)


def check_plausible(
    moment: datetime,
    *,
    field: str | None = None,
    now: datetime | None = None,
    ahead: timedelta = FUTURE_SKEW,
) -> datetime:
    """``moment`` unchanged if it lies from EARLIEST to ``now`` + ``ahead`` (FUTURE_SKEW,
    or DEADLINE_HORIZON for a deadline), else refused.

    The message starts with ``field`` when given (pydantic adds the field itself).
    """
    if moment < EARLIEST:
        raise _refuse(field, f"must not be before {EARLIEST.date().isoformat()}")
    if moment > latest(now, ahead):
        raise _refuse(
            field,
            "must not be in the future"
            if ahead == FUTURE_SKEW
            else f"must not be more than {ahead.days} days ahead",
        )
    return moment


def check_plausible_day(
    day: date, *, field: str | None = None, now: datetime | None = None
) -> date:
    """``day`` unchanged if some instant of it is plausible (in any time zone), else refused."""
    if day < EARLIEST.date():
        raise _refuse(field, f"must not be before {EARLIEST.date().isoformat()}")
    if day > latest(now).date():
        raise _refuse(field, "must not be in the future")
    return day


def refuse_unix_number(value: object) -> object:
    """``value`` unchanged unless it is a number, which is refused: lax pydantic would read
    it as Unix seconds or milliseconds, guessing which, where the sender should say."""
    if isinstance(value, int | float):
        raise ValueError("must be an ISO 8601 date-time with a UTC offset")
    return value


def plausible_in_utc(moment: datetime) -> datetime:
    """``moment`` in UTC if :func:`check_plausible` accepts it, else a ``ValueError``."""
    try:
        return check_plausible(moment.astimezone(UTC))
    except OverflowError:
        raise ValueError("is outside the supported range of dates") from None


# A pydantic field holding an ISO 8601 date-time with an offset, never a Unix number.
IsoInstant = Annotated[AwareDatetime, BeforeValidator(refuse_unix_number)]
# The same, plausible (see check_plausible) and stored in UTC.
PlausibleUtcInstant = Annotated[IsoInstant, AfterValidator(plausible_in_utc)]


def start_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The instant ``day`` begins in ``zone`` (a local midnight skipped by a DST change
    reads as the instant the day begins there)."""
    return datetime.combine(day, time(0), tzinfo=zone)
