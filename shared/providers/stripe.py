"""Stripe: the ``Stripe-Signature`` scheme, and what its events say about a payment.

``t=<unix>,v1=<hex>[,v1=<hex>…]`` where each v1 is HMAC-SHA256, keyed with the whole
``whsec_…`` secret, of ``"{t}.{raw body}"``. Any matching v1 is accepted.

Choices the mapping table leaves open: ``charge.refunded`` also says ``succeeded`` (only
a succeeded charge can be refunded, and the record then has a base status even when the
refund arrives first), ``charge.updated`` leaves the status alone. Refund and dispute
events carry no payment amount, occurred_at, merchant or customer reference: those
fields of a refund or dispute describe it, not the payment, and must not overwrite the
payment's own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as random_secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.platform.errors import ValidationFailed
from shared.providers import Ignored, PayoutUpdate, RecordUpdate, VerifiedEvent
from shared.providers.interface import AccountOptions, Normalised, SignatureHeader, WebhookRequest
from shared.providers.payload_fields import (
    amount_minor,
    currency_code,
    optional_text,
    required_object,
    required_text,
    unix_time,
)
from shared.providers.webhook_input import (
    InvalidSignature,
    MalformedPayload,
    any_signature_matches,
    check_timestamp,
    parse_json_object,
    parse_timestamp,
)
from shared.settlements.cells import SettlementCellInvalid
from shared.settlements.stripe_json import parse_payout
from shared.values.timestamps import DEADLINE_HORIZON

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


# --- what its events say ------------------------------------------------------------------

_INTENT_STATUSES = {
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "failed",
    "payment_intent.canceled": "canceled",
    "payment_intent.processing": "pending",
    "payment_intent.requires_action": "pending",
    "payment_intent.amount_capturable_updated": "pending",  # requires_capture
    "payment_intent.created": "pending",
}
# charge.refunded implies succeeded: Stripe refunds only succeeded charges, and saying so
# gives the record a base status even when the refund is the first event to arrive.
_CHARGE_STATUSES: dict[str, str | None] = {
    "charge.succeeded": "succeeded",
    "charge.failed": "failed",
    "charge.pending": "pending",
    "charge.captured": "succeeded",
    "charge.refunded": "succeeded",
    "charge.updated": None,
}
_CHARGE_REFUND_EVENTS = frozenset({"charge.refunded", "charge.updated"})
_REFUND_EVENTS = frozenset(
    {"charge.refund.updated", "refund.created", "refund.updated", "refund.failed"}
)
_DISPUTE_EVENTS = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    }
)
# A dispute's status (docs/decisions.md, "Dispute status vocabulary"). An inquiry
# (``warning_*``) closed without a chargeback, and a dispute prevented before one, took no
# money: the merchant won.
_DISPUTE_STATUSES = {
    "warning_needs_response": "open",
    "needs_response": "open",
    "warning_under_review": "under_review",
    "under_review": "under_review",
    "warning_closed": "won",
    "prevented": "won",
    "won": "won",
    "lost": "lost",
}
# A payout's events state the payout object (read as a settlement file reads it).
_PAYOUT_EVENTS = frozenset(
    {"payout.created", "payout.updated", "payout.paid", "payout.failed", "payout.canceled"}
)
_REFUND_WITHDRAWN = frozenset({"failed", "canceled"})
_REFUND_IN_FLIGHT = frozenset({"pending", "requires_action"})
_OBJECT = "data.object"
_Mapping = Callable[[str, dict[str, Any], datetime, str], Normalised]


def _stripe_id(value: Any, field: str) -> str | None:
    """A Stripe reference that may be a bare id or an expanded object with an ``id``."""
    if isinstance(value, dict):
        return required_text(value.get("id"), f"{field}.id")
    return optional_text(value, field)


def _merchant_reference(obj: dict[str, Any], key: str) -> str | None:
    metadata = obj.get("metadata")
    if metadata is None:
        return None
    return optional_text(
        required_object(metadata, f"{_OBJECT}.metadata").get(key), f"{_OBJECT}.metadata.{key}"
    )


def _embedded_charges(intent: dict[str, Any]) -> list[Any]:
    """The charges a PaymentIntent embeds: ``latest_charge`` when expanded, and the
    ``charges`` list of API versions before 2022-11-15."""
    latest = intent.get("latest_charge")
    listed = intent.get("charges")
    entries = listed.get("data") if isinstance(listed, dict) else None
    return [latest] + (entries if isinstance(entries, list) else [])


def _customer(obj: dict[str, Any]) -> str | None:
    """The customer of a PaymentIntent or Charge: its own, else that of a charge it embeds
    (a guest checkout's intent names none, while its charge may)."""
    customer = _stripe_id(obj.get("customer"), f"{_OBJECT}.customer")
    if customer is not None:
        return customer
    for charge in _embedded_charges(obj):
        if isinstance(charge, dict):
            customer = _stripe_id(charge.get("customer"), f"{_OBJECT}.charges.data[].customer")
            if customer is not None:
                return customer
    return None


def _parent_reference(obj: dict[str, Any]) -> str:
    """The PaymentIntent a refund or dispute belongs to, else its charge."""
    intent = _stripe_id(obj.get("payment_intent"), f"{_OBJECT}.payment_intent")
    reference = intent or _stripe_id(obj.get("charge"), f"{_OBJECT}.charge")
    if reference is None:
        raise ValidationFailed(f"{_OBJECT}.charge or {_OBJECT}.payment_intent is required")
    return reference


def _payment_update(
    obj: dict[str, Any], reference: str, event_at: datetime, key: str, **fields: Any
) -> RecordUpdate:
    return RecordUpdate(
        provider_reference=reference,
        event_at=event_at,
        currency=currency_code(obj.get("currency"), f"{_OBJECT}.currency"),
        amount_minor=amount_minor(obj.get("amount"), f"{_OBJECT}.amount"),
        merchant_reference=_merchant_reference(obj, key),
        customer_ref=_customer(obj),
        occurred_at=unix_time(obj.get("created"), f"{_OBJECT}.created"),
        **fields,
    )


def _counted_refund(refund: Any, field: str) -> dict[str, int]:
    """``{id: amount}`` once succeeded, ``{id: 0}`` once failed or canceled, ``{}`` meanwhile."""
    refund = required_object(refund, field)
    refund_id = required_text(refund.get("id"), f"{field}.id")
    amount = amount_minor(refund.get("amount"), f"{field}.amount")
    status = refund.get("status")
    if status == "succeeded":
        return {refund_id: amount}
    if status in _REFUND_WITHDRAWN:
        return {refund_id: 0}
    if status in _REFUND_IN_FLIGHT:
        return {}
    raise ValidationFailed(f"{field}.status must be a Stripe refund status")


def _listed_refunds(charge: dict[str, Any]) -> dict[str, int]:
    # Since API version 2022-11-15 a charge no longer embeds its refunds unless expanded.
    listed = charge.get("refunds")
    if listed is None:
        return {}
    field = f"{_OBJECT}.refunds.data"
    entries = required_object(listed, f"{_OBJECT}.refunds").get("data")
    if not isinstance(entries, list):
        raise ValidationFailed(f"{field} must be a list")
    refunds: dict[str, int] = {}
    for index, refund in enumerate(entries):
        refunds |= _counted_refund(refund, f"{field}[{index}]")
    return refunds


def _intent(event_type: str, obj: dict[str, Any], event_at: datetime, key: str) -> Normalised:
    reference = required_text(obj.get("id"), f"{_OBJECT}.id")
    status = _INTENT_STATUSES[event_type]
    return [_payment_update(obj, reference, event_at, key, payment_status=status)]


def _charge(event_type: str, obj: dict[str, Any], event_at: datetime, key: str) -> Normalised:
    charge_id = required_text(obj.get("id"), f"{_OBJECT}.id")
    reference = _stripe_id(obj.get("payment_intent"), f"{_OBJECT}.payment_intent") or charge_id
    refund_fields: dict[str, Any] = {}
    if event_type in _CHARGE_REFUND_EVENTS:
        refund_fields = {
            "reported_refunded_minor": amount_minor(
                obj.get("amount_refunded"), f"{_OBJECT}.amount_refunded"
            ),
            "refunds": _listed_refunds(obj),
        }
    status = _CHARGE_STATUSES[event_type]
    return [_payment_update(obj, reference, event_at, key, payment_status=status, **refund_fields)]


def _refund_fields(obj: dict[str, Any]) -> dict[str, Any]:
    return {"refunds": _counted_refund(obj, _OBJECT)}


def _dispute_fields(obj: dict[str, Any]) -> dict[str, Any]:
    status = required_text(obj.get("status"), f"{_OBJECT}.status")
    if status not in _DISPUTE_STATUSES:
        raise ValidationFailed(f"{_OBJECT}.status must be a Stripe dispute status")
    details = obj.get("evidence_details")
    due_by = None
    if details is not None:
        due_by = required_object(details, f"{_OBJECT}.evidence_details").get("due_by")
    field = f"{_OBJECT}.evidence_details.due_by"
    return {
        "dispute_status": _DISPUTE_STATUSES[status],
        "dispute_provider_status": status,
        "dispute_amount_minor": amount_minor(obj.get("amount"), f"{_OBJECT}.amount"),
        "dispute_reason": optional_text(obj.get("reason"), f"{_OBJECT}.reason"),
        "dispute_evidence_due_at": (
            None if due_by is None else unix_time(due_by, field, ahead=DEADLINE_HORIZON)
        ),
    }


def _payout(obj: dict[str, Any], event_at: datetime) -> PayoutUpdate:
    try:
        (payout,) = parse_payout(obj)
    except SettlementCellInvalid as error:
        raise ValidationFailed(
            f"{_OBJECT}.{error.extra['column']}: {error.detail.split(': ', 1)[-1]}"
        ) from None
    return PayoutUpdate(payout, event_at)


def _parent_update(own_fields: Callable[[dict[str, Any]], dict[str, Any]]) -> _Mapping:
    """The mapping of an event about a refund or dispute: it updates its payment.

    Only ``own_fields`` of the refund or dispute are written: its amount, created time
    and metadata describe it, not the payment, so they stay off the payment's record.
    """

    def mapping(event_type: str, obj: dict[str, Any], event_at: datetime, key: str) -> Normalised:
        reference = _parent_reference(obj)
        currency = currency_code(obj.get("currency"), f"{_OBJECT}.currency")
        return [
            RecordUpdate(
                provider_reference=reference,
                event_at=event_at,
                currency=currency,
                **own_fields(obj),
            )
        ]

    return mapping


_MAPPINGS: dict[str, _Mapping] = {
    **dict.fromkeys(_INTENT_STATUSES, _intent),
    **dict.fromkeys(_CHARGE_STATUSES, _charge),
    **dict.fromkeys(_REFUND_EVENTS, _parent_update(_refund_fields)),
    **dict.fromkeys(_DISPUTE_EVENTS, _parent_update(_dispute_fields)),
}


def normalise_stripe_event(
    event_type: str, payload: dict[str, Any], *, merchant_reference_key: str = "external_id"
) -> Normalised:
    """What one stored Stripe event (the whole event) says (see WebhookProvider.normalise).

    ``merchant_reference_key`` is the metadata key holding the internal payment's
    external_id.
    """
    mapping = _MAPPINGS.get(event_type)
    if mapping is None and event_type not in _PAYOUT_EVENTS:
        return Ignored(f"Stripe event type {event_type} does not affect reconciliation")
    event_at = unix_time(payload.get("created"), "created")
    obj = required_object(required_object(payload.get("data"), "data").get("object"), _OBJECT)
    if mapping is None:
        return _payout(obj, event_at)
    return mapping(event_type, obj, event_at, merchant_reference_key)


# --- the provider -------------------------------------------------------------------------


class StripeProvider:
    """Stripe as a :class:`shared.providers.interface.WebhookProvider`."""

    name: str = "stripe"
    summary: str = "Stripe events, signed with ``Stripe-Signature``."
    signature_headers: tuple[SignatureHeader, ...] = (
        SignatureHeader(SIGNATURE_HEADER, "t=<unix time>,v1=<HMAC-SHA256>"),
    )
    acknowledgement: str | None = None
    account_options: frozenset[str] = frozenset({"merchant_reference_key"})

    def check_secret(self, secret: str) -> None:
        """Raise ValidationFailed unless ``secret`` looks like a Stripe endpoint secret."""
        check_stripe_secret(secret)

    def new_secret(self) -> str:
        """A fresh ``whsec_…`` secret."""
        return SECRET_PREFIX + random_secrets.token_urlsafe(24)

    def verify(
        self, request: WebhookRequest, secrets: list[str], *, tolerance: int
    ) -> list[VerifiedEvent]:
        """The one event of a request signed with ``Stripe-Signature``."""
        return parse_stripe_event(
            request.body,
            request.headers.get(SIGNATURE_HEADER),
            secrets,
            now=request.received_at,
            tolerance=tolerance,
        )

    def sign(
        self, document: dict[str, Any], secret: str, *, now: int
    ) -> tuple[bytes, dict[str, str]]:
        """The event as Stripe posts it, with its ``Stripe-Signature``."""
        body = json.dumps(document).encode()
        return body, {SIGNATURE_HEADER: f"t={now},v1={stripe_signature(secret, now, body)}"}

    def normalise(
        self, event_type: str, payload: dict[str, Any], options: AccountOptions
    ) -> Normalised:
        """:func:`normalise_stripe_event` with the account's metadata key."""
        return normalise_stripe_event(
            event_type, payload, merchant_reference_key=options.merchant_reference_key
        )


PROVIDER = StripeProvider()
