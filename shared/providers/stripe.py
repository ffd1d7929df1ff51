"""Stripe webhooks: the ``Stripe-Signature`` scheme, as Stripe documents it.

``t=<unix>,v1=<hex>[,v1=<hex>…]`` where each v1 is HMAC-SHA256, keyed with the whole
``whsec_…`` secret, of ``"{t}.{raw body}"``. Any matching v1 is accepted.
"""

from __future__ import annotations

import hashlib
import hmac

from shared.platform.errors import ValidationFailed
from shared.providers import VerifiedEvent
from shared.providers.webhook_input import (
    InvalidSignature,
    MalformedPayload,
    any_signature_matches,
    check_timestamp,
    parse_json_object,
    parse_timestamp,
)

SIGNATURE_HEADER = "Stripe-Signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format marker, not a secret


def check_stripe_secret(secret: str) -> None:
    """Raise ValidationFailed unless ``secret`` looks like a Stripe endpoint secret."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) <= len(SECRET_PREFIX):
        raise ValidationFailed("a Stripe webhook secret starts with whsec_")


def stripe_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The v1 signature Stripe computes for ``body`` sent at ``timestamp``."""
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_stripe_signature(
    body: bytes, header: str | None, secrets: list[str], *, now: float, tolerance: int
) -> None:
    """Raise InvalidSignature unless ``header`` carries a valid, fresh v1 signature of ``body``."""
    if not header:
        raise InvalidSignature(f"missing {SIGNATURE_HEADER} header")
    timestamps: list[str] = []
    signatures: list[bytes] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value.encode())
    if len(timestamps) != 1 or not signatures:
        raise InvalidSignature(f"{SIGNATURE_HEADER} needs one t= and at least one v1=")
    timestamp = parse_timestamp(timestamps[0])
    expected = [stripe_signature(secret, timestamp, body).encode() for secret in secrets]
    if not any_signature_matches(expected, signatures):
        raise InvalidSignature("no v1 signature matches an active secret")
    check_timestamp(timestamp, now=now, tolerance=tolerance)


def parse_stripe_event(
    body: bytes, header: str | None, secrets: list[str], *, now: float, tolerance: int
) -> list[VerifiedEvent]:
    """Verify the signature on the raw bytes, then read the one event of the body."""
    verify_stripe_signature(body, header, secrets, now=now, tolerance=tolerance)
    event = parse_json_object(body)
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
        raise MalformedPayload("a Stripe event needs string 'id' and 'type'")
    return [
        VerifiedEvent(provider_event_id=event_id, event_type=event_type, payload=event, raw=body)
    ]
