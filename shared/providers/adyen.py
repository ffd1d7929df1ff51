"""Adyen standard notifications: one request, many items, each HMAC-signed on its own.

Each ``NotificationRequestItem`` carries ``additionalData.hmacSignature``: base64
HMAC-SHA256, keyed with the hex-decoded HMAC key, of
``pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:
eventCode:success`` (missing fields empty, no escaping). Every item is verified — the
official helper checks only the first — and one bad item refuses the whole request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

from shared.platform.errors import ValidationFailed
from shared.providers import VerifiedEvent
from shared.providers.webhook_input import (
    InvalidSignature,
    MalformedPayload,
    any_signature_matches,
    parse_json_object,
)

SIGNED_FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)
ACCEPTED = "[accepted]"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_adyen_secret(secret: str) -> None:
    """Raise ValidationFailed unless ``secret`` is an HMAC key in hexadecimal."""
    try:
        key = binascii.unhexlify(secret)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise ValidationFailed("an Adyen HMAC key is hexadecimal (as shown in the Customer Area)")


def signing_string(item: dict[str, Any]) -> str:
    """The colon-joined string Adyen signs for one notification item."""
    amount = item.get("amount") if isinstance(item.get("amount"), dict) else {}
    fields = {**item, "value": amount.get("value"), "currency": amount.get("currency")}
    return ":".join(_text(fields.get(name)) for name in SIGNED_FIELDS)


def adyen_signature(hmac_key_hex: str, item: dict[str, Any]) -> bytes:
    """The base64 signature Adyen computes for ``item`` with the hex HMAC key."""
    try:
        key = binascii.unhexlify(hmac_key_hex)
    except (binascii.Error, ValueError):
        raise InvalidSignature("the account's HMAC key is not hexadecimal") from None
    digest = hmac.new(key, signing_string(item).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest)


def notification_items(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``NotificationRequestItem`` objects of a notification, or MalformedPayload."""
    wrappers = document.get("notificationItems")
    if not isinstance(wrappers, list) or not wrappers:
        raise MalformedPayload("notificationItems must be a non-empty list")
    items = []
    for index, wrapper in enumerate(wrappers):
        item = wrapper.get("NotificationRequestItem") if isinstance(wrapper, dict) else None
        if not isinstance(item, dict):
            raise MalformedPayload(f"notificationItems[{index}] has no NotificationRequestItem")
        for field in ("pspReference", "eventCode"):
            if not isinstance(item.get(field), str) or not item[field]:
                raise MalformedPayload(f"notificationItems[{index}] needs a string {field}")
        items.append(item)
    return items


def verify_adyen_item(item: dict[str, Any], secrets: list[str], index: int) -> None:
    """Raise InvalidSignature unless the item's hmacSignature matches an active key."""
    additional = item.get("additionalData")
    received = additional.get("hmacSignature") if isinstance(additional, dict) else None
    if not isinstance(received, str) or not received:
        raise InvalidSignature(f"notificationItems[{index}] has no hmacSignature")
    expected = [adyen_signature(secret, item) for secret in secrets]
    if not any_signature_matches(expected, [received.encode()]):
        raise InvalidSignature(f"notificationItems[{index}] has an invalid hmacSignature")


def adyen_event_id(item: dict[str, Any]) -> str:
    """Adyen's identity of a notification: pspReference, eventCode and success."""
    return f"{item['pspReference']}:{item['eventCode']}:{_text(item.get('success'))}"


def parse_adyen_notification(body: bytes, secrets: list[str]) -> list[VerifiedEvent]:
    """Every item of the notification, each verified; one failure refuses them all."""
    document = parse_json_object(body)
    items = notification_items(document)
    for index, item in enumerate(items):
        verify_adyen_item(item, secrets, index)
    live = document.get("live")
    return [
        VerifiedEvent(
            provider_event_id=adyen_event_id(item),
            event_type=item["eventCode"],
            payload={"live": live, "NotificationRequestItem": item},
        )
        for item in items
    ]
