"""Reading fields of a stored provider event: each reader raises ValidationFailed naming the field.

The payload was authentic but is still untrusted input: a missing field, a float or a
decimal string where minor units belong, an unknown currency or an implausible date
must fail the event (visible and replayable), never be guessed at.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.platform.errors import ValidationFailed
from shared.values.money import MAX_AMOUNT_MINOR, normalise_currency
from shared.values.text import MAX_TEXT_LENGTH
from shared.values.timestamps import FUTURE_SKEW, check_plausible


def required_object(value: Any, field: str) -> dict[str, Any]:
    """``value`` if it is a JSON object."""
    if not isinstance(value, dict):
        raise ValidationFailed(f"{field} is required and must be an object")
    return value


def required_text(value: Any, field: str) -> str:
    """``value`` if it is a non-empty string of at most MAX_TEXT_LENGTH characters."""
    if not isinstance(value, str) or not value:
        raise ValidationFailed(f"{field} is required and must be a non-empty string")
    if len(value) > MAX_TEXT_LENGTH:
        raise ValidationFailed(f"{field} must be at most {MAX_TEXT_LENGTH} characters")
    return value


def optional_text(value: Any, field: str) -> str | None:
    """None for a missing or empty value, else :func:`required_text`."""
    if value is None or value == "":
        return None
    return required_text(value, field)


def amount_minor(value: Any, field: str) -> int:
    """``value`` if it is an integer of minor units from 0 to MAX_AMOUNT_MINOR."""
    # bool is an int in Python; a float or a decimal string is a unit error, not a rounding job.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT_MINOR:
        raise ValidationFailed(
            f"{field} is required and must be an integer of minor units from 0 to 10^15"
        )
    return value


def currency_code(value: Any, field: str) -> str:
    """The ISO 4217 code ``value`` names, upper case."""
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} is required and must be an ISO 4217 code")
    try:
        return normalise_currency(value)
    except ValidationFailed as error:
        raise ValidationFailed(f"{field}: {error.detail}") from None


def unix_time(value: Any, field: str, *, ahead: timedelta = FUTURE_SKEW) -> datetime:
    """The plausible UTC moment of a Unix time in whole seconds (at most ``ahead`` of now)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationFailed(f"{field} is required and must be a Unix time in seconds")
    try:
        moment = datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValidationFailed(f"{field} is not a representable Unix time") from None
    return check_plausible(moment, field=field, ahead=ahead)


def iso_time(value: Any, field: str, *, ahead: timedelta = FUTURE_SKEW) -> datetime:
    """The plausible UTC moment of an ISO 8601 date-time with a UTC offset (at most
    ``ahead`` of now)."""
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValidationFailed(f"{field} is required and must be an ISO 8601 date-time")
    return as_utc(parsed, field, ahead=ahead)


def as_utc(value: datetime, field: str, *, ahead: timedelta = FUTURE_SKEW) -> datetime:
    """``value`` (which must carry an offset) in UTC, if plausible."""
    if value.utcoffset() is None:
        raise ValidationFailed(f"{field} must carry a UTC offset")
    try:
        return check_plausible(value.astimezone(UTC), field=field, ahead=ahead)
    except OverflowError:
        raise ValidationFailed(f"{field} is outside the supported range of dates") from None
