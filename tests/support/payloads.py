"""Building provider payloads field by field, and one sample delivery per registered provider."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.providers import RecordUpdate
from tests.support import signing

EVENT_CREATED = 1_795_428_000  # 2026-11-23T10:00:00Z
OBJECT_CREATED = 1_795_427_940  # 2026-11-23T09:59:00Z
EVENT_AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
OCCURRED_AT = datetime(2026, 11, 23, 9, 59, tzinfo=UTC)
DROP = object()  # a field left out of a payload


def with_fields(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``overrides``; a field set to DROP is removed."""
    return {key: value for key, value in (base | overrides).items() if value is not DROP}


def datetimes_of(update: RecordUpdate) -> list[datetime]:
    """Every datetime field of ``update`` that is set."""
    values = [getattr(update, field.name) for field in fields(update)]
    return [value for value in values if isinstance(value, datetime)]


def assert_every_datetime_is_utc(update: RecordUpdate) -> None:
    """A payment update's two datetimes are UTC, and it happened at EVENT_AT."""
    datetimes = datetimes_of(update)
    assert len(datetimes) == 2
    assert all(value.utcoffset() == timedelta(0) for value in datetimes)
    assert update.event_at == EVENT_AT


def sample_deliveries() -> dict[str, dict[str, Any]]:
    """A fresh document per provider, as it posts one payment event (before signing).

    Every registered provider needs one here: the contract test refuses a provider
    without a sample.
    """
    authorisation = signing.adyen_item()
    psp_reference = authorisation["pspReference"]
    capture = signing.adyen_item(event_code="CAPTURE")
    return {
        "stripe": signing.stripe_event("payment_intent.succeeded"),
        "adyen": {
            "live": "false",
            "notificationItems": [
                {"NotificationRequestItem": authorisation},
                {"NotificationRequestItem": capture | {"originalReference": psp_reference}},
            ],
        },
        "standard": signing.standard_payload("payment.succeeded"),
    }
