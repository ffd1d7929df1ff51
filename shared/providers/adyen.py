"""Adyen standard notifications: one request, many items, each HMAC-signed on its own.

Each ``NotificationRequestItem`` carries ``additionalData.hmacSignature``: base64
HMAC-SHA256, keyed with the hex-decoded HMAC key, of
``pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:
eventCode:success`` (missing fields empty, no escaping). Every item is verified — the
official helper checks only the first — and one bad item refuses the whole request.
Adyen expects the literal answer ``[accepted]``.

Modification events (CAPTURE, CANCELLATION, REFUND, …) carry no payment amount,
occurred_at, merchant or customer reference of the payment they change: they update
the payment named by ``originalReference`` without overwriting those fields.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets as random_secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.platform.errors import ValidationFailed
from shared.providers import Ignored, RecordUpdate, VerifiedEvent
from shared.providers.interface import (
    AccountOptions,
    Normalised,
    SignatureHeader,
    WebhookRequest,
)
from shared.providers.payload_fields import (
    amount_minor,
    currency_code,
    iso_time,
    optional_text,
    required_object,
    required_text,
)
from shared.providers.webhook_input import (
    InvalidSignature,
    MalformedPayload,
    any_signature_matches,
    parse_json_object,
)
from shared.values.timestamps import DEADLINE_HORIZON

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


# --- what its notifications say -----------------------------------------------------------

_ITEM = "NotificationRequestItem"


def _success(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValidationFailed(f"{_ITEM}.success must be true or false")


def _amount(item: dict[str, Any]) -> tuple[int, str]:
    amount = required_object(item.get("amount"), f"{_ITEM}.amount")
    value = amount_minor(amount.get("value"), f"{_ITEM}.amount.value")
    return value, currency_code(amount.get("currency"), f"{_ITEM}.amount.currency")


def _psp_reference(item: dict[str, Any]) -> str:
    return required_text(item.get("pspReference"), f"{_ITEM}.pspReference")


def _original_reference(item: dict[str, Any]) -> str:
    field = f"{_ITEM}.originalReference"
    return required_text(
        item.get("originalReference"), f"{field} (the payment a modification changes)"
    )


# Where notifications carry the shopper: ``recurring.`` with a stored payment method,
# ``tokenization.`` with the newer token flow, the plain key only with an optional
# webhook setting ("Include shopper details"). The first one present is read.
SHOPPER_REFERENCE_KEYS = (
    "shopperReference",
    "recurring.shopperReference",
    "tokenization.shopperReference",
)


def _shopper_reference(item: dict[str, Any]) -> str | None:
    additional = item.get("additionalData")
    if not isinstance(additional, dict):
        return None
    for key in SHOPPER_REFERENCE_KEYS:
        reference = optional_text(additional.get(key), f"{_ITEM}.additionalData.{key}")
        if reference:
            return reference
    return None


def _authorisation_status(success: bool, manual_capture: bool) -> str:
    if not success:
        return "failed"
    # With manual capture the money moves only at CAPTURE: until then it is pending.
    return "pending" if manual_capture else "succeeded"


@dataclass(frozen=True, slots=True)
class _Notification:
    """One item being read, with what every event code's mapping may need."""

    item: dict[str, Any]
    event_at: datetime
    success: bool
    manual_capture: bool


def _authorisation(notification: _Notification) -> Normalised:
    item = notification.item
    value, currency = _amount(item)
    return [
        RecordUpdate(
            provider_reference=_psp_reference(item),
            event_at=notification.event_at,
            currency=currency,
            amount_minor=value,
            merchant_reference=optional_text(
                item.get("merchantReference"), f"{_ITEM}.merchantReference"
            ),
            customer_ref=_shopper_reference(item),
            occurred_at=notification.event_at,
            payment_status=_authorisation_status(notification.success, notification.manual_capture),
        )
    ]


def _modification(
    notification: _Notification, refund_minor: int | None = None, **fields: Any
) -> Normalised:
    """An update of the payment the modification changes (``originalReference``).

    ``refund_minor`` counts the item as the refund ``pspReference`` of that amount. The
    item's amount is in the payment's currency, so its currency is stated too: a
    modification that arrives before its AUTHORISATION can then start the record.
    """
    reference = _original_reference(notification.item)
    if refund_minor is not None:
        fields["refunds"] = {_psp_reference(notification.item): refund_minor}
    if "currency" not in fields and isinstance(notification.item.get("amount"), dict):
        fields["currency"] = _amount(notification.item)[1]
    return [RecordUpdate(provider_reference=reference, event_at=notification.event_at, **fields)]


def _capture(notification: _Notification) -> Normalised:
    # No amount: a capture may be partial, and the payment's amount stays the authorised one.
    status = "succeeded" if notification.success else "failed"
    return _modification(notification, payment_status=status)


def _capture_failed(notification: _Notification) -> Normalised:
    return _modification(notification, payment_status="failed")


def _cancellation(notification: _Notification) -> Normalised:
    if not notification.success:
        psp = notification.item.get("pspReference")
        return Ignored(f"cancellation {psp} was refused by Adyen; the payment is unchanged")
    return _modification(notification, payment_status="canceled")


def _refund(notification: _Notification) -> Normalised:
    if not notification.success:
        psp = notification.item.get("pspReference")
        return Ignored(f"refund {psp} was refused by Adyen; nothing was refunded")
    value, currency = _amount(notification.item)
    return _modification(notification, refund_minor=value, currency=currency)


def _refund_failed(notification: _Notification) -> Normalised:
    # REFUND_FAILED carries the refund's own pspReference (the one its REFUND carried):
    # the scheme rejected a refund Adyen had accepted, so it is withdrawn whatever `success`.
    return _modification(notification, refund_minor=0)


# Each dispute event code's status (docs/decisions.md, "Dispute status vocabulary"). A
# chargeback is ``open`` until defended; CHARGEBACK and the end of the defense period
# leave the outcome to ``additionalData.disputeStatus`` (below) when it states one.
_DISPUTE_EVENTS = {
    "NOTIFICATION_OF_CHARGEBACK": "open",
    "REQUEST_FOR_INFORMATION": "open",
    "CHARGEBACK": "open",
    "INFORMATION_SUPPLIED": "under_review",
    "DISPUTE_DEFENSE_PERIOD_ENDED": "under_review",
    "CHARGEBACK_REVERSED": "won",
    "PREARBITRATION_WON": "won",
    "SECOND_CHARGEBACK": "lost",
    "PREARBITRATION_LOST": "lost",
}
# What a final ``disputeStatus`` says, on the codes that leave the outcome open: the
# chargeback stands once accepted, lost, or left undefended past the defense period.
_DISPUTE_OUTCOMES = {
    "CHARGEBACK": {"Lost": "lost", "Accepted": "lost", "Won": "won"},
    "DISPUTE_DEFENSE_PERIOD_ENDED": {
        "Lost": "lost",
        "Accepted": "lost",
        "Expired": "lost",
        "Undefended": "lost",
        "Won": "won",
    },
}


def _additional_text(item: dict[str, Any], name: str) -> str | None:
    additional = item.get("additionalData")
    if not isinstance(additional, dict):
        return None
    value = optional_text(additional.get(name), f"{_ITEM}.additionalData.{name}")
    return value.strip() or None if value else None


def _dispute(notification: _Notification) -> Normalised:
    """A dispute event: the disputed amount, its status, reason and defense deadline.

    The provider's status is ``disputeStatus`` after the event code (``CHARGEBACK/Undefended``),
    the reason the scheme's reason code, else the item's ``reason``.
    """
    item = notification.item
    code = item["eventCode"]
    value, currency = _amount(item)
    provider_status = _additional_text(item, "disputeStatus")
    status = _DISPUTE_OUTCOMES.get(code, {}).get(provider_status or "", _DISPUTE_EVENTS[code])
    due = _additional_text(item, "defensePeriodEndsAt")
    due_field = f"{_ITEM}.additionalData.defensePeriodEndsAt"
    return _modification(
        notification,
        currency=currency,
        dispute_status=status,
        dispute_provider_status=f"{code}/{provider_status}" if provider_status else code,
        dispute_amount_minor=value,
        dispute_reason=_additional_text(item, "chargebackReasonCode")
        or optional_text(item.get("reason"), f"{_ITEM}.reason"),
        dispute_evidence_due_at=(
            None if due is None else iso_time(due, due_field, ahead=DEADLINE_HORIZON)
        ),
    )


_MAPPINGS: dict[str, Callable[[_Notification], Normalised]] = {
    "AUTHORISATION": _authorisation,
    "CAPTURE": _capture,
    "CAPTURE_FAILED": _capture_failed,
    "CANCELLATION": _cancellation,
    "REFUND": _refund,
    "REFUND_FAILED": _refund_failed,
    **dict.fromkeys(_DISPUTE_EVENTS, _dispute),
}


def normalise_adyen_item(
    event_code: str, payload: dict[str, Any], *, manual_capture: bool = False
) -> Normalised:
    """What one stored item (``{"live": …, "NotificationRequestItem": {…}}``) says.

    ``manual_capture`` says the account captures manually: an authorisation is then
    pending until CAPTURE. See WebhookProvider.normalise for the guarantees.
    """
    mapping = _MAPPINGS.get(event_code)
    if mapping is None:
        return Ignored(f"Adyen event code {event_code} does not affect reconciliation")
    item = required_object(payload.get(_ITEM), _ITEM)
    event_at = iso_time(item.get("eventDate"), f"{_ITEM}.eventDate")
    return mapping(_Notification(item, event_at, _success(item.get("success")), manual_capture))


# --- the provider -------------------------------------------------------------------------


def _signed_item(item: dict[str, Any], hmac_key_hex: str) -> dict[str, Any]:
    additional = item.get("additionalData")
    signature = adyen_signature(hmac_key_hex, item).decode()
    return {
        **item,
        "additionalData": {**(additional or {}), "hmacSignature": signature},
    }


class AdyenProvider:
    """Adyen as a :class:`shared.providers.interface.WebhookProvider`."""

    name: str = "adyen"
    summary: str = "Adyen notifications; Adyen expects the literal body ``[accepted]``."
    # No header: each item carries its own signature, in the body.
    signature_headers: tuple[SignatureHeader, ...] = ()
    acknowledgement: str | None = ACCEPTED
    account_options: frozenset[str] = frozenset({"manual_capture"})

    def check_secret(self, secret: str) -> None:
        """Raise ValidationFailed unless ``secret`` is an HMAC key in hexadecimal."""
        check_adyen_secret(secret)

    def new_secret(self) -> str:
        """A fresh 32-byte HMAC key in upper-case hexadecimal, as the Customer Area shows it."""
        return random_secrets.token_hex(32).upper()

    def verify(
        self, request: WebhookRequest, secrets: list[str], *, tolerance: int
    ) -> list[VerifiedEvent]:
        """Every item of the notification (items carry no timestamp to check)."""
        return parse_adyen_notification(request.body, secrets)

    def sign(
        self, document: dict[str, Any], secret: str, *, now: int
    ) -> tuple[bytes, dict[str, str]]:
        """The notification with each item's ``hmacSignature`` set; no headers."""
        wrappers = [
            {_ITEM: _signed_item(wrapper[_ITEM], secret)}
            for wrapper in document["notificationItems"]
        ]
        return json.dumps({**document, "notificationItems": wrappers}).encode(), {}

    def normalise(
        self, event_type: str, payload: dict[str, Any], options: AccountOptions
    ) -> Normalised:
        """:func:`normalise_adyen_item` with the account's capture mode."""
        return normalise_adyen_item(event_type, payload, manual_capture=options.manual_capture)


PROVIDER = AdyenProvider()
