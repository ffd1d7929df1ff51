"""Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``.

The secret is ``whsec_`` + base64 key; each signature is ``v1,<base64 HMAC-SHA256>`` of
``"{id}.{timestamp}.{raw body}"``, several separated by spaces. This service understands
one payload shape (README, "Standard Webhooks payload"), checked here at the door and
again when the stored event is read: ``payment.<status>`` of one payment. A signed
message of any other type (or of none) is stored and ignored, never refused: the spec
counts any non-2xx answer as a failed delivery, and a sender that keeps failing disables
the endpoint, payment events included.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets as random_secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from shared.platform.errors import ValidationFailed, describe_validation_errors
from shared.providers import Ignored, RecordUpdate, VerifiedEvent
from shared.providers.interface import AccountOptions, Normalised, SignatureHeader, WebhookRequest
from shared.providers.payload_fields import as_utc
from shared.providers.webhook_input import (
    InvalidSignature,
    any_signature_matches,
    check_timestamp,
    parse_json_object,
    parse_timestamp,
)
from shared.values.money import AmountMinor, CurrencyCode
from shared.values.text import MAX_TEXT_LENGTH, check_identifier
from shared.values.timestamps import check_plausible, refuse_unix_number

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format marker, not a secret
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
MESSAGE_ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
UNTYPED = "(untyped)"  # the stored event type of a message without a string ``type``
EVENT_TYPES = (
    "payment.succeeded",
    "payment.failed",
    "payment.pending",
    "payment.canceled",
    "payment.refunded",
    "payment.partially_refunded",
)


def _with_offset(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a UTC offset")
    return value


ISO_ONLY = BeforeValidator(refuse_unix_number)
PLAUSIBLE = AfterValidator(check_plausible)


class StandardPaymentData(BaseModel):
    """The payment an event describes; amounts are integers of minor units."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=MAX_TEXT_LENGTH)
    merchant_reference: str | None = Field(default=None, max_length=MAX_TEXT_LENGTH)
    amount: AmountMinor
    currency: CurrencyCode
    amount_refunded: AmountMinor = 0
    customer: str | None = Field(default=None, max_length=MAX_TEXT_LENGTH)
    occurred_at: Annotated[datetime, ISO_ONLY, AfterValidator(_with_offset), PLAUSIBLE]

    @field_validator("id", "merchant_reference", "customer")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value)


class StandardEvent(BaseModel):
    """``{"type": "payment.<status>", "timestamp": …, "data": {…}}``."""

    model_config = ConfigDict(extra="allow")

    type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    timestamp: Annotated[AwareDatetime, ISO_ONLY, PLAUSIBLE]
    data: StandardPaymentData

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


def _verified_message_id(
    body: bytes, headers: Mapping[str, str | None], secrets: list[str], now: float, tolerance: int
) -> str:
    """Check the headers' signature of ``body``; return the message id (``webhook-id``)."""
    message_id = headers.get(MESSAGE_ID_HEADER)
    timestamp_text = headers.get(TIMESTAMP_HEADER)
    header = headers.get(SIGNATURE_HEADER)
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
    headers: Mapping[str, str | None],
    secrets: list[str],
    *,
    now: float,
    tolerance: int,
) -> list[VerifiedEvent]:
    """Verify the signature on the raw bytes, then read the message: a ``payment.<status>``
    one must have the payment shape (422 if off); any other is kept as it came."""
    message_id = _verified_message_id(body, headers, secrets, now, tolerance)
    document = parse_json_object(body)
    event_type = document.get("type")
    if event_type in EVENT_TYPES:
        try:
            StandardEvent.model_validate(document)
        except ValidationError as error:
            raise ValidationFailed(
                "payload does not match the Standard Webhooks payment shape",
                errors=describe_validation_errors(error),
            ) from None
    elif not isinstance(event_type, str) or not event_type:
        event_type = UNTYPED
    return [
        VerifiedEvent(
            provider_event_id=message_id, event_type=event_type, payload=document, raw=body
        )
    ]


# --- what its events say ------------------------------------------------------------------

# Refunds are kept apart from the base lifecycle (see RecordUpdate): a refunded payment
# succeeded, and its refunded total says the rest.
_STATUSES = {
    "payment.succeeded": "succeeded",
    "payment.failed": "failed",
    "payment.pending": "pending",
    "payment.canceled": "canceled",
    "payment.refunded": "succeeded",
    "payment.partially_refunded": "succeeded",
}


def _stored_event(payload: dict[str, Any]) -> StandardEvent:
    try:
        event = StandardEvent.model_validate(payload)
    except ValidationError as error:
        errors = describe_validation_errors(error)
        problems = "; ".join(f"{item['field']}: {item['message']}" for item in errors)
        raise ValidationFailed(
            f"invalid Standard payment event: {problems}", errors=errors
        ) from None
    return event


def _reported_refunded(event_type: str, amount: int, refunded: int) -> int | None:
    # StandardEvent already holds refunds within the amount (and partial ones above 0).
    if event_type == "payment.refunded":
        return refunded or amount  # a refund without a figure is a full refund
    return refunded or None


def normalise_standard_event(event_type: str, payload: dict[str, Any]) -> Normalised:
    """What one stored Standard document says (see WebhookProvider.normalise)."""
    if event_type not in _STATUSES:
        return Ignored(f"Standard event type {event_type} is not a payment.<status> event")
    event = _stored_event(payload)
    data = event.data
    return [
        RecordUpdate(
            provider_reference=data.id,
            event_at=as_utc(event.timestamp, "timestamp"),
            currency=data.currency,
            amount_minor=data.amount,
            merchant_reference=data.merchant_reference or None,
            customer_ref=data.customer or None,
            occurred_at=data.occurred_at.astimezone(UTC),
            payment_status=_STATUSES[event_type],
            reported_refunded_minor=_reported_refunded(
                event_type, data.amount, data.amount_refunded
            ),
        )
    ]


# --- the provider -------------------------------------------------------------------------


class StandardProvider:
    """Standard Webhooks as a :class:`shared.providers.interface.WebhookProvider`."""

    name: str = "standard"
    summary: str = "Standard Webhooks messages (``webhook-id``/``-timestamp``/``-signature``)."
    signature_headers: tuple[SignatureHeader, ...] = (
        SignatureHeader(MESSAGE_ID_HEADER, "The message id"),
        SignatureHeader(TIMESTAMP_HEADER, "Unix time in seconds"),
        SignatureHeader(SIGNATURE_HEADER, "v1,<base64 HMAC-SHA256>, space-separated"),
    )
    acknowledgement: str | None = None
    account_options: frozenset[str] = frozenset()

    def check_secret(self, secret: str) -> None:
        """Raise ValidationFailed unless ``secret`` is ``whsec_`` + base64 of a 24–64 byte key."""
        check_standard_secret(secret)

    def new_secret(self) -> str:
        """A fresh ``whsec_`` secret of a 24-byte key."""
        return SECRET_PREFIX + base64.b64encode(random_secrets.token_bytes(24)).decode()

    def verify(
        self, request: WebhookRequest, secrets: list[str], *, tolerance: int
    ) -> list[VerifiedEvent]:
        """The one message of a request, signed and of the payment shape."""
        return parse_standard_event(
            request.body, request.headers, secrets, now=request.received_at, tolerance=tolerance
        )

    def sign(
        self, document: dict[str, Any], secret: str, *, now: int
    ) -> tuple[bytes, dict[str, str]]:
        """The message with its three headers; the id derives from the body, so the same
        message always gets the same id (it is the deduplication key)."""
        body = json.dumps(document).encode()
        message_id = "msg_" + hashlib.sha256(body).hexdigest()[:24]
        signature = base64.b64encode(standard_signature(secret, message_id, now, body)).decode()
        return body, {
            MESSAGE_ID_HEADER: message_id,
            TIMESTAMP_HEADER: str(now),
            SIGNATURE_HEADER: f"v1,{signature}",
        }

    def normalise(
        self, event_type: str, payload: dict[str, Any], options: AccountOptions
    ) -> Normalised:
        """:func:`normalise_standard_event` (no account option changes it)."""
        return normalise_standard_event(event_type, payload)


PROVIDER = StandardProvider()
