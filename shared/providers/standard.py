"""Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``.

The secret is ``whsec_`` + base64 key; each signature is ``v1,<base64 HMAC-SHA256>`` of
``"{id}.{timestamp}.{raw body}"``, several separated by spaces. This service understands
one payload shape (README, "Standard Webhooks payload"), checked here at the door.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from shared.platform.errors import ValidationFailed, describe_validation_errors
from shared.providers import VerifiedEvent
from shared.providers.webhook_input import (
    InvalidSignature,
    any_signature_matches,
    check_timestamp,
    parse_json_object,
    parse_timestamp,
)
from shared.values.money import normalise_currency
from shared.values.text import check_identifier
from shared.values.timestamps import check_plausible

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format marker, not a secret
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
MAX_AMOUNT_MINOR = 10**15
EVENT_TYPES = (
    "payment.succeeded",
    "payment.failed",
    "payment.pending",
    "payment.canceled",
    "payment.refunded",
    "payment.partially_refunded",
)

AmountMinor = Annotated[int, Field(ge=0, le=MAX_AMOUNT_MINOR, strict=True)]


def _iso_only(value: object) -> object:
    # Lax pydantic reads a number as Unix seconds or milliseconds, guessing which.
    if isinstance(value, int | float):
        raise ValueError("must be an ISO 8601 date-time with a UTC offset")
    return value


class StandardPaymentData(BaseModel):
    """The payment an event describes; amounts are integers of minor units."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=255)
    merchant_reference: str | None = Field(default=None, max_length=255)
    amount: AmountMinor
    currency: str
    amount_refunded: AmountMinor = 0
    customer: str | None = Field(default=None, max_length=255)
    occurred_at: datetime

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, value: str) -> str:
        return normalise_currency(value)

    @field_validator("id", "merchant_reference", "customer")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value)

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _no_unix_number(cls, value: object) -> object:
        return _iso_only(value)

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a UTC offset")
        return check_plausible(value)


class StandardEvent(BaseModel):
    """``{"type": "payment.<status>", "timestamp": …, "data": {…}}``."""

    model_config = ConfigDict(extra="allow")

    type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    timestamp: AwareDatetime
    data: StandardPaymentData

    @field_validator("timestamp", mode="before")
    @classmethod
    def _no_unix_number(cls, value: object) -> object:
        return _iso_only(value)

    @field_validator("timestamp")
    @classmethod
    def _plausible(cls, value: datetime) -> datetime:
        return check_plausible(value)

    @field_validator("data")
    @classmethod
    def _refunds_fit_the_amount(
        cls, data: StandardPaymentData, info: ValidationInfo
    ) -> StandardPaymentData:
        if data.amount_refunded > data.amount:
            raise ValueError("data.amount_refunded cannot exceed data.amount")
        partial = info.data.get("type") == "payment.partially_refunded"
        if partial and not 0 < data.amount_refunded < data.amount:
            raise ValueError(
                "data.amount_refunded of a partial refund must be above 0 and below data.amount"
            )
        return data


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSignature("the account's signing secret is not whsec_<base64>") from None


def check_standard_secret(secret: str) -> None:
    """Raise ValidationFailed unless ``secret`` is ``whsec_`` + base64 of a 24–64 byte key.

    The Standard Webhooks specification asks for keys of 24 to 64 random bytes.
    """
    try:
        key = secret_key(secret) if secret.startswith(SECRET_PREFIX) else b""
    except InvalidSignature:
        key = b""
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValidationFailed(
            "a Standard Webhooks secret is whsec_ followed by base64 of 24 to 64 bytes"
        )


def standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> bytes:
    """The raw v1 signature of a message."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return hmac.new(secret_key(secret), signed, hashlib.sha256).digest()


def _decode_signatures(header: str) -> list[bytes]:
    signatures = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        try:
            signatures.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return signatures


def verify_standard_signature(
    body: bytes,
    headers: dict[str, str | None],
    secrets: list[str],
    *,
    now: float,
    tolerance: int,
) -> str:
    """Check the headers' signature of ``body``; return the message id (``webhook-id``)."""
    message_id = headers.get("webhook-id")
    timestamp_text = headers.get("webhook-timestamp")
    header = headers.get("webhook-signature")
    if not (message_id and timestamp_text and header):
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    timestamp = parse_timestamp(timestamp_text)
    expected = [standard_signature(s, message_id, timestamp, body) for s in secrets]
    if not any_signature_matches(expected, _decode_signatures(header)):
        raise InvalidSignature("no v1 signature matches an active secret")
    check_timestamp(timestamp, now=now, tolerance=tolerance)
    return message_id


def parse_standard_event(
    body: bytes,
    headers: dict[str, str | None],
    secrets: list[str],
    *,
    now: float,
    tolerance: int,
) -> list[VerifiedEvent]:
    """Verify the signature on the raw bytes, then validate the payload shape (422 if off)."""
    message_id = verify_standard_signature(body, headers, secrets, now=now, tolerance=tolerance)
    document = parse_json_object(body)
    try:
        event = StandardEvent.model_validate(document)
    except ValidationError as error:
        raise ValidationFailed(
            "payload does not match the Standard Webhooks payment shape",
            errors=describe_validation_errors(error),
        ) from None
    return [
        VerifiedEvent(
            provider_event_id=message_id, event_type=event.type, payload=document, raw=body
        )
    ]
