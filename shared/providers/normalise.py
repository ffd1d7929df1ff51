"""Provider events normalised into RecordUpdate values: pure functions, no I/O.

Each provider has one private function; ``normalise_event`` picks it. A known event type
whose payload lacks what the mapping needs raises ValidationFailed naming the field (the
worker marks the event failed: visible and replayable). An event type this service does
not act on returns Ignored with a reason and never raises, whatever its payload.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from shared.platform.errors import ValidationFailed, describe_validation_errors
from shared.providers import Ignored, RecordUpdate
from shared.providers.standard import MAX_AMOUNT_MINOR, StandardEvent
from shared.values.money import normalise_currency
from shared.values.timestamps import check_plausible

Normalised = list[RecordUpdate] | Ignored


def normalise_event(
    provider: str,
    event_type: str,
    payload: dict[str, Any],
    *,
    merchant_reference_key: str = "external_id",
    manual_capture: bool = False,
) -> Normalised:
    """What one stored provider event says, as RecordUpdates, or Ignored with a reason.

    ``payload`` is the stored payload: the whole Stripe event; ``{"live": …,
    "NotificationRequestItem": {…}}`` for Adyen; the whole Standard document.
    ``merchant_reference_key`` is the Stripe metadata key holding the internal payment's
    external_id; ``manual_capture`` says the Adyen account captures manually (an
    authorisation is then pending until CAPTURE).
    Every datetime returned is timezone-aware UTC; every amount an integer of minor units
    exactly as the provider sent it. Raises ValidationFailed naming the offending field
    when a known event type is malformed (or the provider is unknown).

    Choices the mapping table leaves open: Stripe ``charge.refunded`` also says
    ``succeeded`` (only a succeeded charge can be refunded, and the record then has a base
    status even when the refund arrives first), ``charge.updated`` leaves the status
    alone. Refund, dispute and Adyen modification events carry no payment amount,
    occurred_at, merchant or customer reference: those fields of a refund or dispute
    describe it, not the payment, and must not overwrite the payment's own.
    """
    if provider == "stripe":
        return _normalise_stripe(event_type, payload, merchant_reference_key)
    if provider == "adyen":
        return _normalise_adyen(event_type, payload, manual_capture)
    if provider == "standard":
        return _normalise_standard(event_type, payload)
    raise ValidationFailed("provider must be one of stripe, adyen, standard")


# --- reading untrusted values -------------------------------------------------------------


def _mapping(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed(f"{field} is required and must be an object")
    return value


# As the Standard payload and payments' external ids: a reference of thousands of
# characters would not fit PostgreSQL's index rows (an error the worker would retry).
MAX_TEXT_LENGTH = 255


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationFailed(f"{field} is required and must be a non-empty string")
    if len(value) > MAX_TEXT_LENGTH:
        raise ValidationFailed(f"{field} must be at most {MAX_TEXT_LENGTH} characters")
    return value


def _optional_text(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    return _text(value, field)


def _amount(value: Any, field: str) -> int:
    # bool is an int in Python; a float or a decimal string is a unit error, not a rounding job.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT_MINOR:
        raise ValidationFailed(
            f"{field} is required and must be an integer of minor units from 0 to 10^15"
        )
    return value


def _currency(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} is required and must be an ISO 4217 code")
    try:
        return normalise_currency(value)
    except ValidationFailed as error:
        raise ValidationFailed(f"{field}: {error.detail}") from None


def _unix_time(value: Any, field: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationFailed(f"{field} is required and must be a Unix time in seconds")
    try:
        moment = datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValidationFailed(f"{field} is not a representable Unix time") from None
    return check_plausible(moment, field=field)


def _iso_time(value: Any, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValidationFailed(f"{field} is required and must be an ISO 8601 date-time")
    return _as_utc(parsed, field)


def _as_utc(value: datetime, field: str) -> datetime:
    if value.utcoffset() is None:
        raise ValidationFailed(f"{field} must carry a UTC offset")
    try:
        return check_plausible(value.astimezone(UTC), field=field)
    except OverflowError:
        raise ValidationFailed(f"{field} is outside the supported range of dates") from None


# --- Stripe -------------------------------------------------------------------------------

_STRIPE_INTENT_STATUSES = {
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
_STRIPE_CHARGE_STATUSES: dict[str, str | None] = {
    "charge.succeeded": "succeeded",
    "charge.failed": "failed",
    "charge.pending": "pending",
    "charge.captured": "succeeded",
    "charge.refunded": "succeeded",
    "charge.updated": None,
}
_STRIPE_CHARGE_REFUND_EVENTS = frozenset({"charge.refunded", "charge.updated"})
_STRIPE_REFUND_EVENTS = frozenset(
    {"charge.refund.updated", "refund.created", "refund.updated", "refund.failed"}
)
_STRIPE_DISPUTE_EVENTS = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    }
)
_STRIPE_REFUND_WITHDRAWN = frozenset({"failed", "canceled"})
_STRIPE_REFUND_IN_FLIGHT = frozenset({"pending", "requires_action"})
_OBJECT = "data.object"


def _stripe_id(value: Any, field: str) -> str | None:
    """A Stripe reference that may be a bare id or an expanded object with an ``id``."""
    if isinstance(value, dict):
        return _text(value.get("id"), f"{field}.id")
    return _optional_text(value, field)


def _stripe_merchant_reference(obj: dict[str, Any], key: str) -> str | None:
    metadata = obj.get("metadata")
    if metadata is None:
        return None
    return _optional_text(
        _mapping(metadata, f"{_OBJECT}.metadata").get(key), f"{_OBJECT}.metadata.{key}"
    )


def _stripe_parent_reference(obj: dict[str, Any]) -> str:
    """The PaymentIntent a refund or dispute belongs to, else its charge."""
    intent = _stripe_id(obj.get("payment_intent"), f"{_OBJECT}.payment_intent")
    reference = intent or _stripe_id(obj.get("charge"), f"{_OBJECT}.charge")
    if reference is None:
        raise ValidationFailed(f"{_OBJECT}.charge or {_OBJECT}.payment_intent is required")
    return reference


def _stripe_payment_update(
    obj: dict[str, Any], reference: str, event_at: datetime, key: str, **fields: Any
) -> RecordUpdate:
    return RecordUpdate(
        provider_reference=reference,
        event_at=event_at,
        currency=_currency(obj.get("currency"), f"{_OBJECT}.currency"),
        amount_minor=_amount(obj.get("amount"), f"{_OBJECT}.amount"),
        merchant_reference=_stripe_merchant_reference(obj, key),
        customer_ref=_stripe_id(obj.get("customer"), f"{_OBJECT}.customer"),
        occurred_at=_unix_time(obj.get("created"), f"{_OBJECT}.created"),
        **fields,
    )


def _stripe_counted_refund(refund: Any, field: str) -> dict[str, int]:
    """``{id: amount}`` once succeeded, ``{id: 0}`` once failed or canceled, ``{}`` meanwhile."""
    refund = _mapping(refund, field)
    refund_id = _text(refund.get("id"), f"{field}.id")
    amount = _amount(refund.get("amount"), f"{field}.amount")
    status = refund.get("status")
    if status == "succeeded":
        return {refund_id: amount}
    if status in _STRIPE_REFUND_WITHDRAWN:
        return {refund_id: 0}
    if status in _STRIPE_REFUND_IN_FLIGHT:
        return {}
    raise ValidationFailed(f"{field}.status must be a Stripe refund status")


def _stripe_listed_refunds(charge: dict[str, Any]) -> dict[str, int]:
    # Since API version 2022-11-15 a charge no longer embeds its refunds unless expanded.
    listed = charge.get("refunds")
    if listed is None:
        return {}
    field = f"{_OBJECT}.refunds.data"
    entries = _mapping(listed, f"{_OBJECT}.refunds").get("data")
    if not isinstance(entries, list):
        raise ValidationFailed(f"{field} must be a list")
    refunds: dict[str, int] = {}
    for index, refund in enumerate(entries):
        refunds |= _stripe_counted_refund(refund, f"{field}[{index}]")
    return refunds


def _stripe_intent(
    event_type: str, obj: dict[str, Any], event_at: datetime, key: str
) -> Normalised:
    reference = _text(obj.get("id"), f"{_OBJECT}.id")
    status = _STRIPE_INTENT_STATUSES[event_type]
    return [_stripe_payment_update(obj, reference, event_at, key, payment_status=status)]


def _stripe_charge(
    event_type: str, obj: dict[str, Any], event_at: datetime, key: str
) -> Normalised:
    charge_id = _text(obj.get("id"), f"{_OBJECT}.id")
    reference = _stripe_id(obj.get("payment_intent"), f"{_OBJECT}.payment_intent") or charge_id
    refund_fields: dict[str, Any] = {}
    if event_type in _STRIPE_CHARGE_REFUND_EVENTS:
        refund_fields = {
            "reported_refunded_minor": _amount(
                obj.get("amount_refunded"), f"{_OBJECT}.amount_refunded"
            ),
            "refunds": _stripe_listed_refunds(obj),
        }
    status = _STRIPE_CHARGE_STATUSES[event_type]
    return [
        _stripe_payment_update(
            obj, reference, event_at, key, payment_status=status, **refund_fields
        )
    ]


def _stripe_refund(
    event_type: str, obj: dict[str, Any], event_at: datetime, key: str
) -> Normalised:
    # The refund's own amount, created time and metadata describe the refund, not the
    # payment, so they are not written on the payment's record.
    return [
        RecordUpdate(
            provider_reference=_stripe_parent_reference(obj),
            event_at=event_at,
            currency=_currency(obj.get("currency"), f"{_OBJECT}.currency"),
            refunds=_stripe_counted_refund(obj, _OBJECT),
        )
    ]


def _stripe_dispute(
    event_type: str, obj: dict[str, Any], event_at: datetime, key: str
) -> Normalised:
    return [
        RecordUpdate(
            provider_reference=_stripe_parent_reference(obj),
            event_at=event_at,
            currency=_currency(obj.get("currency"), f"{_OBJECT}.currency"),
            dispute_status=_text(obj.get("status"), f"{_OBJECT}.status"),
            dispute_amount_minor=_amount(obj.get("amount"), f"{_OBJECT}.amount"),
        )
    ]


_StripeMapping = Callable[[str, dict[str, Any], datetime, str], Normalised]
_STRIPE_MAPPINGS: dict[str, _StripeMapping] = {
    **dict.fromkeys(_STRIPE_INTENT_STATUSES, _stripe_intent),
    **dict.fromkeys(_STRIPE_CHARGE_STATUSES, _stripe_charge),
    **dict.fromkeys(_STRIPE_REFUND_EVENTS, _stripe_refund),
    **dict.fromkeys(_STRIPE_DISPUTE_EVENTS, _stripe_dispute),
}


def _normalise_stripe(event_type: str, payload: dict[str, Any], key: str) -> Normalised:
    mapping = _STRIPE_MAPPINGS.get(event_type)
    if mapping is None:
        return Ignored(f"Stripe event type {event_type} does not affect reconciliation")
    event_at = _unix_time(payload.get("created"), "created")
    obj = _mapping(_mapping(payload.get("data"), "data").get("object"), _OBJECT)
    return mapping(event_type, obj, event_at, key)


# --- Adyen --------------------------------------------------------------------------------

_ITEM = "NotificationRequestItem"


def _adyen_success(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValidationFailed(f"{_ITEM}.success must be true or false")


def _adyen_amount(item: dict[str, Any]) -> tuple[int, str]:
    amount = _mapping(item.get("amount"), f"{_ITEM}.amount")
    value = _amount(amount.get("value"), f"{_ITEM}.amount.value")
    return value, _currency(amount.get("currency"), f"{_ITEM}.amount.currency")


def _adyen_psp_reference(item: dict[str, Any]) -> str:
    return _text(item.get("pspReference"), f"{_ITEM}.pspReference")


def _adyen_original_reference(item: dict[str, Any]) -> str:
    field = f"{_ITEM}.originalReference"
    return _text(item.get("originalReference"), f"{field} (the payment a modification changes)")


def _adyen_shopper_reference(item: dict[str, Any]) -> str | None:
    additional = item.get("additionalData")
    if not isinstance(additional, dict):
        return None
    field = f"{_ITEM}.additionalData.shopperReference"
    return _optional_text(additional.get("shopperReference"), field)


def _adyen_authorisation_status(success: bool, manual_capture: bool) -> str:
    if not success:
        return "failed"
    # With manual capture the money moves only at CAPTURE: until then it is pending.
    return "pending" if manual_capture else "succeeded"


def _adyen_authorisation(
    item: dict[str, Any], event_at: datetime, success: bool, manual_capture: bool
) -> Normalised:
    status = _adyen_authorisation_status(success, manual_capture)
    value, currency = _adyen_amount(item)
    return [
        RecordUpdate(
            provider_reference=_adyen_psp_reference(item),
            event_at=event_at,
            currency=currency,
            amount_minor=value,
            merchant_reference=_optional_text(
                item.get("merchantReference"), f"{_ITEM}.merchantReference"
            ),
            customer_ref=_adyen_shopper_reference(item),
            occurred_at=event_at,
            payment_status=status,
        )
    ]


def _adyen_status_change(item: dict[str, Any], event_at: datetime, status: str) -> Normalised:
    return [
        RecordUpdate(
            provider_reference=_adyen_original_reference(item),
            event_at=event_at,
            payment_status=status,
        )
    ]


def _adyen_capture(
    item: dict[str, Any], event_at: datetime, success: bool, manual_capture: bool
) -> Normalised:
    # No amount: a capture may be partial, and the payment's amount stays the authorised one.
    return _adyen_status_change(item, event_at, "succeeded" if success else "failed")


def _adyen_capture_failed(
    item: dict[str, Any], event_at: datetime, success: bool, manual_capture: bool
) -> Normalised:
    return _adyen_status_change(item, event_at, "failed")


def _adyen_cancellation(
    item: dict[str, Any], event_at: datetime, success: bool, manual_capture: bool
) -> Normalised:
    if not success:
        psp = item.get("pspReference")
        return Ignored(f"cancellation {psp} was refused by Adyen; the payment is unchanged")
    return _adyen_status_change(item, event_at, "canceled")


def _adyen_refund(
    item: dict[str, Any], event_at: datetime, success: bool, manual_capture: bool
) -> Normalised:
    if not success:
        psp = item.get("pspReference")
        return Ignored(f"refund {psp} was refused by Adyen; nothing was refunded")
    value, currency = _adyen_amount(item)
    return [
        RecordUpdate(
            provider_reference=_adyen_original_reference(item),
            event_at=event_at,
            currency=currency,
            refunds={_adyen_psp_reference(item): value},
        )
    ]


def _adyen_refund_failed(
    item: dict[str, Any], event_at: datetime, success: bool, manual_capture: bool
) -> Normalised:
    # REFUND_FAILED carries the refund's own pspReference (the one its REFUND carried):
    # the scheme rejected a refund Adyen had accepted, so it is withdrawn whatever `success`.
    return [
        RecordUpdate(
            provider_reference=_adyen_original_reference(item),
            event_at=event_at,
            refunds={_adyen_psp_reference(item): 0},
        )
    ]


def _adyen_chargeback(
    item: dict[str, Any], event_at: datetime, success: bool, manual_capture: bool
) -> Normalised:
    value, currency = _adyen_amount(item)
    return [
        RecordUpdate(
            provider_reference=_adyen_original_reference(item),
            event_at=event_at,
            currency=currency,
            dispute_status="chargeback",
            dispute_amount_minor=value,
        )
    ]


_AdyenMapping = Callable[[dict[str, Any], datetime, bool, bool], Normalised]
_ADYEN_MAPPINGS: dict[str, _AdyenMapping] = {
    "AUTHORISATION": _adyen_authorisation,
    "CAPTURE": _adyen_capture,
    "CAPTURE_FAILED": _adyen_capture_failed,
    "CANCELLATION": _adyen_cancellation,
    "REFUND": _adyen_refund,
    "REFUND_FAILED": _adyen_refund_failed,
    "CHARGEBACK": _adyen_chargeback,
}


def _normalise_adyen(event_type: str, payload: dict[str, Any], manual_capture: bool) -> Normalised:
    mapping = _ADYEN_MAPPINGS.get(event_type)
    if mapping is None:
        return Ignored(f"Adyen event code {event_type} does not affect reconciliation")
    item = _mapping(payload.get(_ITEM), _ITEM)
    event_at = _iso_time(item.get("eventDate"), f"{_ITEM}.eventDate")
    return mapping(item, event_at, _adyen_success(item.get("success")), manual_capture)


# --- Standard -----------------------------------------------------------------------------

# Refunds are kept apart from the base lifecycle (see RecordUpdate): a refunded payment
# succeeded, and its refunded total says the rest.
_STANDARD_STATUSES = {
    "payment.succeeded": "succeeded",
    "payment.failed": "failed",
    "payment.pending": "pending",
    "payment.canceled": "canceled",
    "payment.refunded": "succeeded",
    "payment.partially_refunded": "succeeded",
}


def _parse_standard(payload: dict[str, Any]) -> StandardEvent:
    try:
        event = StandardEvent.model_validate(payload)
    except ValidationError as error:
        errors = describe_validation_errors(error)
        problems = "; ".join(f"{item['field']}: {item['message']}" for item in errors)
        raise ValidationFailed(
            f"invalid Standard payment event: {problems}", errors=errors
        ) from None
    return event


def _standard_reported_refunded(event_type: str, amount: int, refunded: int) -> int | None:
    # StandardEvent already holds refunds within the amount (and partial ones above 0).
    if event_type == "payment.refunded":
        return refunded or amount  # a refund without a figure is a full refund
    return refunded or None


def _normalise_standard(event_type: str, payload: dict[str, Any]) -> Normalised:
    if event_type not in _STANDARD_STATUSES:
        return Ignored(f"Standard event type {event_type} is not a payment.<status> event")
    event = _parse_standard(payload)
    data = event.data
    return [
        RecordUpdate(
            provider_reference=data.id,
            event_at=_as_utc(event.timestamp, "timestamp"),
            currency=data.currency,
            amount_minor=data.amount,
            merchant_reference=data.merchant_reference or None,
            customer_ref=data.customer or None,
            occurred_at=data.occurred_at.astimezone(UTC),
            payment_status=_STANDARD_STATUSES[event_type],
            reported_refunded_minor=_standard_reported_refunded(
                event_type, data.amount, data.amount_refunded
            ),
        )
    ]
