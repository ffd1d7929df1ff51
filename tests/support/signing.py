"""Signing test webhooks the way each provider does (with the service's own helpers)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from shared.providers.adyen import adyen_signature
from shared.providers.standard import standard_signature
from shared.providers.stripe import stripe_signature
from tests.support.log_leaks import register_secret

# Every secret and signature made here is registered: none may appear in a log line.
STRIPE_SECRET = register_secret("whsec_test_stripe_secret_value")
ADYEN_KEY = register_secret("44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056")
STANDARD_SECRET = register_secret(
    "whsec_" + base64.b64encode(b"standard-webhooks-test-key").decode()
)


def stripe_event(event_type: str = "payment_intent.succeeded", **data: Any) -> dict[str, Any]:
    """A realistic Stripe event with a fresh id."""
    intent = {
        "id": f"pi_{uuid.uuid4().hex[:24]}",
        "object": "payment_intent",
        "amount": 2500,
        "amount_received": 2500,
        "currency": "eur",
        "metadata": {"external_id": f"inv_{uuid.uuid4().hex[:8]}"},
        "created": int(time.time()),
        "status": "succeeded",
    } | data
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": intent},
    }


def stripe_request(
    event: dict[str, Any] | bytes, secret: str = STRIPE_SECRET, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a signed Stripe delivery."""
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = register_secret(stripe_signature(secret, timestamp, body))
    return body, {"Stripe-Signature": f"t={timestamp},v1={signature}"}


def adyen_item(
    psp_reference: str | None = None, event_code: str = "AUTHORISATION", success: str = "true"
) -> dict[str, Any]:
    """An unsigned Adyen NotificationRequestItem."""
    return {
        "pspReference": psp_reference or uuid.uuid4().hex[:16].upper(),
        "merchantAccountCode": "AcmeECOM",
        "merchantReference": f"inv_{uuid.uuid4().hex[:8]}",
        "amount": {"value": 1000, "currency": "EUR"},
        "eventCode": event_code,
        "eventDate": "2026-11-23T10:00:00+01:00",
        "success": success,
    }


def adyen_request(*items: dict[str, Any], key: str = ADYEN_KEY) -> tuple[bytes, dict[str, str]]:
    """A notification whose items are each signed with ``key`` (unless already signed)."""
    wrapped = []
    for item in items:
        signed = dict(item)
        if "additionalData" not in signed:
            signature = register_secret(adyen_signature(key, item).decode())
            signed["additionalData"] = {"hmacSignature": signature}
        wrapped.append({"NotificationRequestItem": signed})
    body = {"live": "false", "notificationItems": wrapped}
    return json.dumps(body).encode(), {}


def standard_payload(event_type: str = "payment.succeeded", **data: Any) -> dict[str, Any]:
    """A payload of the Standard Webhooks shape this service understands."""
    return {
        "type": event_type,
        "timestamp": "2026-11-23T10:00:00Z",
        "data": {
            "id": f"pay_{uuid.uuid4().hex[:12]}",
            "merchant_reference": f"inv_{uuid.uuid4().hex[:8]}",
            "amount": 1999,
            "currency": "USD",
            "amount_refunded": 0,
            "customer": "cus_1",
            "occurred_at": "2026-11-23T09:59:00Z",
        }
        | data,
    }


def standard_request(
    payload: dict[str, Any] | bytes,
    secret: str = STANDARD_SECRET,
    message_id: str | None = None,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a signed Standard Webhooks message."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = register_secret(
        base64.b64encode(standard_signature(secret, message_id, timestamp, body)).decode()
    )
    return body, {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{signature}",
    }
