"""Provider events normalised into RecordUpdates: every mapping of docs/design.md, per provider."""

from __future__ import annotations

import time
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.platform.errors import ValidationFailed
from shared.providers import Ignored, RecordUpdate
from shared.providers.adyen import parse_adyen_notification
from shared.providers.normalise import normalise_event
from shared.providers.standard import parse_standard_event
from shared.providers.stripe import parse_stripe_event
from tests.support import signing

EVENT_CREATED = 1_795_428_000  # 2026-11-23T10:00:00Z
OBJECT_CREATED = 1_795_427_940  # 2026-11-23T09:59:00Z
EVENT_AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
OCCURRED_AT = datetime(2026, 11, 23, 9, 59, tzinfo=UTC)
DROP = object()  # a field left out of a payload


def with_fields(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``overrides``; a field set to DROP is removed."""
    return {key: value for key, value in (base | overrides).items() if value is not DROP}


# --- Stripe payloads ----------------------------------------------------------------------


def stripe_payload(event_type: str, obj: dict[str, Any], **event: Any) -> dict[str, Any]:
    base = {
        "id": "evt_1",
        "object": "event",
        "type": event_type,
        "created": EVENT_CREATED,
        "data": {"object": obj},
    }
    return with_fields(base, event)


def stripe_intent(**overrides: Any) -> dict[str, Any]:
    base = {
        "id": "pi_1",
        "object": "payment_intent",
        "amount": 2500,
        "currency": "eur",
        "customer": "cus_1",
        "metadata": {"external_id": "inv_1"},
        "created": OBJECT_CREATED,
        "status": "succeeded",
    }
    return with_fields(base, overrides)


def stripe_charge(**overrides: Any) -> dict[str, Any]:
    base = {
        "id": "ch_1",
        "object": "charge",
        "amount": 2500,
        "amount_refunded": 0,
        "currency": "eur",
        "customer": "cus_1",
        "payment_intent": "pi_1",
        "metadata": {"external_id": "inv_1"},
        "created": OBJECT_CREATED,
        "status": "succeeded",
    }
    return with_fields(base, overrides)


def stripe_refund(**overrides: Any) -> dict[str, Any]:
    base = {
        "id": "re_1",
        "object": "refund",
        "amount": 1000,
        "currency": "eur",
        "charge": "ch_1",
        "payment_intent": "pi_1",
        "metadata": {"external_id": "refund_ref_not_a_payment"},
        "created": OBJECT_CREATED + 3600,
        "status": "succeeded",
    }
    return with_fields(base, overrides)


def stripe_dispute(**overrides: Any) -> dict[str, Any]:
    base = {
        "id": "dp_1",
        "object": "dispute",
        "amount": 2500,
        "currency": "eur",
        "charge": "ch_1",
        "payment_intent": "pi_1",
        "reason": "fraudulent",
        "created": OBJECT_CREATED + 86400,
        "status": "needs_response",
    }
    return with_fields(base, overrides)


def refund_list(*refunds: dict[str, Any]) -> dict[str, Any]:
    return {"object": "list", "data": list(refunds), "has_more": False}


STRIPE_PAYMENT = RecordUpdate(
    provider_reference="pi_1",
    event_at=EVENT_AT,
    currency="EUR",
    amount_minor=2500,
    merchant_reference="inv_1",
    customer_ref="cus_1",
    occurred_at=OCCURRED_AT,
)
STRIPE_REFUND = RecordUpdate(provider_reference="pi_1", event_at=EVENT_AT, currency="EUR")
STRIPE_DISPUTE = RecordUpdate(
    provider_reference="pi_1", event_at=EVENT_AT, currency="EUR", dispute_amount_minor=2500
)


def stripe_case(event_type: str, obj: dict[str, Any], expected: RecordUpdate, case_id: str):
    return pytest.param(event_type, obj, expected, id=case_id)


STRIPE_PAYMENT_INTENT_CASES = [
    stripe_case(
        "payment_intent.succeeded",
        stripe_intent(),
        replace(STRIPE_PAYMENT, payment_status="succeeded"),
        "intent-succeeded",
    ),
    stripe_case(
        "payment_intent.payment_failed",
        stripe_intent(status="requires_payment_method"),
        replace(STRIPE_PAYMENT, payment_status="failed"),
        "intent-payment-failed",
    ),
    stripe_case(
        "payment_intent.canceled",
        stripe_intent(status="canceled"),
        replace(STRIPE_PAYMENT, payment_status="canceled"),
        "intent-canceled",
    ),
    stripe_case(
        "payment_intent.processing",
        stripe_intent(status="processing"),
        replace(STRIPE_PAYMENT, payment_status="pending"),
        "intent-processing-is-pending",
    ),
    stripe_case(
        "payment_intent.requires_action",
        stripe_intent(status="requires_action"),
        replace(STRIPE_PAYMENT, payment_status="pending"),
        "intent-requires-action-is-pending",
    ),
    stripe_case(
        "payment_intent.amount_capturable_updated",
        stripe_intent(status="requires_capture"),
        replace(STRIPE_PAYMENT, payment_status="pending"),
        "intent-requires-capture-is-pending",
    ),
    stripe_case(
        "payment_intent.created",
        stripe_intent(status="requires_payment_method"),
        replace(STRIPE_PAYMENT, payment_status="pending"),
        "intent-created-is-pending",
    ),
    stripe_case(
        "payment_intent.succeeded",
        stripe_intent(customer={"id": "cus_9", "object": "customer"}),
        replace(STRIPE_PAYMENT, payment_status="succeeded", customer_ref="cus_9"),
        "intent-expanded-customer",
    ),
    stripe_case(
        "payment_intent.succeeded",
        stripe_intent(customer=None),
        replace(STRIPE_PAYMENT, payment_status="succeeded", customer_ref=None),
        "intent-without-customer",
    ),
    stripe_case(
        "payment_intent.succeeded",
        stripe_intent(metadata=DROP),
        replace(STRIPE_PAYMENT, payment_status="succeeded", merchant_reference=None),
        "intent-missing-metadata",
    ),
    stripe_case(
        "payment_intent.succeeded",
        stripe_intent(metadata=None),
        replace(STRIPE_PAYMENT, payment_status="succeeded", merchant_reference=None),
        "intent-null-metadata",
    ),
    stripe_case(
        "payment_intent.succeeded",
        stripe_intent(metadata={"order": "o_1"}),
        replace(STRIPE_PAYMENT, payment_status="succeeded", merchant_reference=None),
        "intent-metadata-without-the-key",
    ),
    stripe_case(
        "payment_intent.succeeded",
        stripe_intent(currency="jpy", amount=5000),
        replace(STRIPE_PAYMENT, payment_status="succeeded", currency="JPY", amount_minor=5000),
        "intent-zero-decimal-jpy-untouched",
    ),
    stripe_case(
        "payment_intent.succeeded",
        stripe_intent(currency="kwd", amount=12345),
        replace(STRIPE_PAYMENT, payment_status="succeeded", currency="KWD", amount_minor=12345),
        "intent-three-decimal-kwd-untouched",
    ),
]

STRIPE_CHARGE_CASES = [
    stripe_case(
        "charge.succeeded",
        stripe_charge(),
        replace(STRIPE_PAYMENT, payment_status="succeeded"),
        "charge-succeeded-belongs-to-its-intent",
    ),
    stripe_case(
        "charge.succeeded",
        stripe_charge(payment_intent=None),
        replace(STRIPE_PAYMENT, provider_reference="ch_1", payment_status="succeeded"),
        "charge-without-intent-is-its-own-record",
    ),
    stripe_case(
        "charge.succeeded",
        stripe_charge(payment_intent=DROP),
        replace(STRIPE_PAYMENT, provider_reference="ch_1", payment_status="succeeded"),
        "charge-with-no-intent-field",
    ),
    stripe_case(
        "charge.succeeded",
        stripe_charge(
            payment_intent={"id": "pi_9", "object": "payment_intent", "amount": 2500},
            customer={"id": "cus_9", "object": "customer", "email": "a@example.com"},
        ),
        replace(
            STRIPE_PAYMENT,
            provider_reference="pi_9",
            customer_ref="cus_9",
            payment_status="succeeded",
        ),
        "charge-expanded-intent-and-customer",
    ),
    stripe_case(
        "charge.failed",
        stripe_charge(status="failed"),
        replace(STRIPE_PAYMENT, payment_status="failed"),
        "charge-failed",
    ),
    stripe_case(
        "charge.pending",
        stripe_charge(status="pending"),
        replace(STRIPE_PAYMENT, payment_status="pending"),
        "charge-pending",
    ),
    stripe_case(
        "charge.captured",
        stripe_charge(),
        replace(STRIPE_PAYMENT, payment_status="succeeded"),
        "charge-captured",
    ),
    stripe_case(
        "charge.succeeded",
        stripe_charge(currency="bhd", amount=1005),
        replace(STRIPE_PAYMENT, payment_status="succeeded", currency="BHD", amount_minor=1005),
        "charge-three-decimal-bhd-untouched",
    ),
    stripe_case(
        "charge.refunded",
        stripe_charge(
            amount_refunded=2500,
            refunded=True,
            refunds=refund_list(stripe_refund(amount=2500)),
        ),
        replace(
            STRIPE_PAYMENT,
            payment_status="succeeded",
            reported_refunded_minor=2500,
            refunds={"re_1": 2500},
        ),
        "charge-fully-refunded",
    ),
    stripe_case(
        "charge.refunded",
        stripe_charge(
            amount_refunded=700,
            refunds=refund_list(
                stripe_refund(id="re_1", amount=500),
                stripe_refund(id="re_2", amount=200),
                stripe_refund(id="re_3", amount=300, status="failed"),
                stripe_refund(id="re_4", amount=100, status="canceled"),
                stripe_refund(id="re_5", amount=100, status="pending"),
            ),
        ),
        replace(
            STRIPE_PAYMENT,
            payment_status="succeeded",
            reported_refunded_minor=700,
            refunds={"re_1": 500, "re_2": 200, "re_3": 0, "re_4": 0},
        ),
        "charge-partially-refunded-lists-each-refund",
    ),
    stripe_case(
        "charge.refunded",
        stripe_charge(amount_refunded=2500, refunded=True),
        replace(STRIPE_PAYMENT, payment_status="succeeded", reported_refunded_minor=2500),
        "charge-refunded-without-embedded-refunds",
    ),
    stripe_case(
        "charge.refunded",
        stripe_charge(currency="jpy", amount=5000, amount_refunded=5000),
        replace(
            STRIPE_PAYMENT,
            payment_status="succeeded",
            currency="JPY",
            amount_minor=5000,
            reported_refunded_minor=5000,
        ),
        "charge-refunded-zero-decimal-jpy",
    ),
    stripe_case(
        "charge.updated",
        stripe_charge(amount_refunded=300, refunds=refund_list(stripe_refund(amount=300))),
        replace(STRIPE_PAYMENT, reported_refunded_minor=300, refunds={"re_1": 300}),
        "charge-updated-leaves-status-alone",
    ),
]

STRIPE_REFUND_CASES = [
    stripe_case(
        "refund.created",
        stripe_refund(),
        replace(STRIPE_REFUND, refunds={"re_1": 1000}),
        "refund-created-succeeded-counts",
    ),
    stripe_case(
        "refund.updated",
        stripe_refund(status="pending"),
        STRIPE_REFUND,
        "refund-pending-counts-nothing-yet",
    ),
    stripe_case(
        "refund.updated",
        stripe_refund(status="requires_action"),
        STRIPE_REFUND,
        "refund-requires-action-counts-nothing-yet",
    ),
    stripe_case(
        "refund.failed",
        stripe_refund(status="failed"),
        replace(STRIPE_REFUND, refunds={"re_1": 0}),
        "refund-failed-is-withdrawn",
    ),
    stripe_case(
        "refund.updated",
        stripe_refund(status="canceled"),
        replace(STRIPE_REFUND, refunds={"re_1": 0}),
        "refund-canceled-is-withdrawn",
    ),
    stripe_case(
        "charge.refund.updated",
        stripe_refund(),
        replace(STRIPE_REFUND, refunds={"re_1": 1000}),
        "charge-refund-updated-is-a-refund",
    ),
    stripe_case(
        "refund.created",
        stripe_refund(payment_intent=None),
        replace(STRIPE_REFUND, provider_reference="ch_1", refunds={"re_1": 1000}),
        "refund-without-intent-belongs-to-its-charge",
    ),
    stripe_case(
        "refund.created",
        stripe_refund(payment_intent=DROP, charge={"id": "ch_9", "object": "charge"}),
        replace(STRIPE_REFUND, provider_reference="ch_9", refunds={"re_1": 1000}),
        "refund-expanded-charge",
    ),
    stripe_case(
        "refund.created",
        stripe_refund(payment_intent={"id": "pi_9", "object": "payment_intent"}),
        replace(STRIPE_REFUND, provider_reference="pi_9", refunds={"re_1": 1000}),
        "refund-expanded-intent",
    ),
    stripe_case(
        "refund.created",
        stripe_refund(currency="kwd", amount=1234),
        replace(STRIPE_REFUND, currency="KWD", refunds={"re_1": 1234}),
        "refund-three-decimal-kwd-untouched",
    ),
]

STRIPE_DISPUTE_CASES = [
    stripe_case(
        f"charge.dispute.{action}",
        stripe_dispute(status=status),
        replace(STRIPE_DISPUTE, dispute_status=status),
        f"dispute-{action}",
    )
    for action, status in [
        ("created", "needs_response"),
        ("updated", "under_review"),
        ("closed", "lost"),
        ("funds_withdrawn", "needs_response"),
        ("funds_reinstated", "won"),
    ]
] + [
    stripe_case(
        "charge.dispute.created",
        stripe_dispute(payment_intent=None),
        replace(STRIPE_DISPUTE, provider_reference="ch_1", dispute_status="needs_response"),
        "dispute-without-intent-belongs-to-its-charge",
    ),
    stripe_case(
        "charge.dispute.created",
        stripe_dispute(currency="jpy", amount=5000, payment_intent=DROP, charge={"id": "ch_9"}),
        replace(
            STRIPE_DISPUTE,
            provider_reference="ch_9",
            currency="JPY",
            dispute_status="needs_response",
            dispute_amount_minor=5000,
        ),
        "dispute-expanded-charge-zero-decimal",
    ),
]


@pytest.mark.parametrize(("event_type", "obj", "expected"), STRIPE_PAYMENT_INTENT_CASES)
def test_stripe_payment_intent_event_sets_the_intent_status(event_type, obj, expected):
    assert normalise_event("stripe", event_type, stripe_payload(event_type, obj)) == [expected]


@pytest.mark.parametrize(("event_type", "obj", "expected"), STRIPE_CHARGE_CASES)
def test_stripe_charge_event_updates_its_intent_record(event_type, obj, expected):
    assert normalise_event("stripe", event_type, stripe_payload(event_type, obj)) == [expected]


@pytest.mark.parametrize(("event_type", "obj", "expected"), STRIPE_REFUND_CASES)
def test_stripe_refund_event_counts_the_refund_on_its_payment(event_type, obj, expected):
    assert normalise_event("stripe", event_type, stripe_payload(event_type, obj)) == [expected]


@pytest.mark.parametrize(("event_type", "obj", "expected"), STRIPE_DISPUTE_CASES)
def test_stripe_dispute_is_recorded_without_changing_the_status(event_type, obj, expected):
    assert normalise_event("stripe", event_type, stripe_payload(event_type, obj)) == [expected]


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        pytest.param({"external_id": "wrong", "order_ref": "ord_7"}, "ord_7", id="key-present"),
        pytest.param({"external_id": "inv_1"}, None, id="only-the-default-key"),
    ],
)
def test_stripe_merchant_reference_comes_from_the_configured_metadata_key(metadata, expected):
    payload = stripe_payload("payment_intent.succeeded", stripe_intent(metadata=metadata))
    [update] = normalise_event(
        "stripe", "payment_intent.succeeded", payload, merchant_reference_key="order_ref"
    )
    assert update.merchant_reference == expected


# --- Adyen payloads -----------------------------------------------------------------------


def adyen_item(**overrides: Any) -> dict[str, Any]:
    base = {
        "pspReference": "PSP1",
        "merchantAccountCode": "AcmeECOM",
        "merchantReference": "inv_1",
        "amount": {"value": 1000, "currency": "EUR"},
        "eventCode": "AUTHORISATION",
        "eventDate": "2026-11-23T11:00:00+01:00",  # 10:00 UTC
        "success": "true",
        "additionalData": {"shopperReference": "shopper_1", "hmacSignature": "c2ln"},
    }
    return with_fields(base, overrides)


def adyen_modification(event_code: str, **overrides: Any) -> dict[str, Any]:
    modification = {"eventCode": event_code, "pspReference": "MOD1", "originalReference": "PSP1"}
    return adyen_item(**(modification | overrides))


def adyen_payload(item: dict[str, Any]) -> dict[str, Any]:
    return {"live": "false", "NotificationRequestItem": item}


ADYEN_PAYMENT = RecordUpdate(
    provider_reference="PSP1",
    event_at=EVENT_AT,
    currency="EUR",
    amount_minor=1000,
    merchant_reference="inv_1",
    customer_ref="shopper_1",
    occurred_at=EVENT_AT,
)
ADYEN_MODIFICATION = RecordUpdate(provider_reference="PSP1", event_at=EVENT_AT)


def adyen_case(item: dict[str, Any], expected: RecordUpdate, case_id: str, manual: bool = False):
    return pytest.param(item, manual, expected, id=case_id)


ADYEN_CASES = [
    adyen_case(
        adyen_item(),
        replace(ADYEN_PAYMENT, payment_status="succeeded"),
        "authorisation-succeeded-auto-capture",
    ),
    adyen_case(
        adyen_item(success=True),
        replace(ADYEN_PAYMENT, payment_status="succeeded"),
        "authorisation-boolean-success",
    ),
    adyen_case(
        adyen_item(),
        replace(ADYEN_PAYMENT, payment_status="pending"),
        "authorisation-manual-capture-is-pending",
        manual=True,
    ),
    adyen_case(
        adyen_item(success="false"),
        replace(ADYEN_PAYMENT, payment_status="failed"),
        "authorisation-refused-fails",
    ),
    adyen_case(
        adyen_item(success=False),
        replace(ADYEN_PAYMENT, payment_status="failed"),
        "authorisation-refused-manual-capture-still-fails",
        manual=True,
    ),
    adyen_case(
        adyen_item(additionalData=DROP),
        replace(ADYEN_PAYMENT, payment_status="succeeded", customer_ref=None),
        "authorisation-without-additional-data",
    ),
    adyen_case(
        adyen_item(additionalData={"hmacSignature": "c2ln"}),
        replace(ADYEN_PAYMENT, payment_status="succeeded", customer_ref=None),
        "authorisation-without-shopper-reference",
    ),
    adyen_case(
        adyen_item(merchantReference=DROP),
        replace(ADYEN_PAYMENT, payment_status="succeeded", merchant_reference=None),
        "authorisation-without-merchant-reference",
    ),
    adyen_case(
        adyen_item(eventDate="2026-11-23T10:00:00Z"),
        replace(ADYEN_PAYMENT, payment_status="succeeded"),
        "authorisation-utc-event-date",
    ),
    adyen_case(
        adyen_item(amount={"value": 5000, "currency": "JPY"}),
        replace(ADYEN_PAYMENT, payment_status="succeeded", currency="JPY", amount_minor=5000),
        "authorisation-zero-decimal-jpy-untouched",
    ),
    adyen_case(
        adyen_item(amount={"value": 1005, "currency": "BHD"}),
        replace(ADYEN_PAYMENT, payment_status="succeeded", currency="BHD", amount_minor=1005),
        "authorisation-three-decimal-bhd-untouched",
    ),
    adyen_case(
        adyen_modification("CAPTURE"),
        replace(ADYEN_MODIFICATION, payment_status="succeeded"),
        "capture-succeeds-the-original-payment",
        manual=True,
    ),
    adyen_case(
        adyen_modification("CAPTURE", amount={"value": 400, "currency": "EUR"}),
        replace(ADYEN_MODIFICATION, payment_status="succeeded"),
        "partial-capture-leaves-the-amount-alone",
        manual=True,
    ),
    adyen_case(
        adyen_modification("CAPTURE", success="false"),
        replace(ADYEN_MODIFICATION, payment_status="failed"),
        "capture-refused-fails",
    ),
    adyen_case(
        adyen_modification("CAPTURE_FAILED"),
        replace(ADYEN_MODIFICATION, payment_status="failed"),
        "capture-failed-fails",
    ),
    adyen_case(
        adyen_modification("CANCELLATION"),
        replace(ADYEN_MODIFICATION, payment_status="canceled"),
        "cancellation-cancels",
    ),
    adyen_case(
        adyen_modification("REFUND"),
        replace(ADYEN_MODIFICATION, currency="EUR", refunds={"MOD1": 1000}),
        "full-refund",
    ),
    adyen_case(
        adyen_modification("REFUND", amount={"value": 250, "currency": "EUR"}),
        replace(ADYEN_MODIFICATION, currency="EUR", refunds={"MOD1": 250}),
        "partial-refund",
    ),
    adyen_case(
        adyen_modification("REFUND", amount={"value": 1500, "currency": "KWD"}),
        replace(ADYEN_MODIFICATION, currency="KWD", refunds={"MOD1": 1500}),
        "refund-three-decimal-kwd-untouched",
    ),
    adyen_case(
        adyen_modification("REFUND_FAILED"),
        replace(ADYEN_MODIFICATION, refunds={"MOD1": 0}),
        "refund-failed-is-withdrawn",
    ),
    adyen_case(
        adyen_modification("CHARGEBACK", amount={"value": 1000, "currency": "EUR"}),
        replace(
            ADYEN_MODIFICATION,
            currency="EUR",
            dispute_status="chargeback",
            dispute_amount_minor=1000,
        ),
        "chargeback-is-a-dispute",
    ),
]


@pytest.mark.parametrize(("item", "manual_capture", "expected"), ADYEN_CASES)
def test_adyen_notification_maps_to_record_update(item, manual_capture, expected):
    result = normalise_event(
        "adyen", item["eventCode"], adyen_payload(item), manual_capture=manual_capture
    )
    assert result == [expected]


# --- Standard payloads --------------------------------------------------------------------


def standard_payload(event_type: str, *, timestamp: Any = None, **data: Any) -> dict[str, Any]:
    base = {
        "id": "pay_1",
        "merchant_reference": "inv_1",
        "amount": 1999,
        "currency": "usd",
        "amount_refunded": 0,
        "customer": "cus_1",
        "occurred_at": "2026-11-23T10:59:00+01:00",  # 09:59 UTC
    }
    document = {"type": event_type, "timestamp": timestamp or "2026-11-23T10:00:00Z"}
    return with_fields(document, {"data": with_fields(base, data)})


STANDARD_PAYMENT = RecordUpdate(
    provider_reference="pay_1",
    event_at=EVENT_AT,
    currency="USD",
    amount_minor=1999,
    merchant_reference="inv_1",
    customer_ref="cus_1",
    occurred_at=OCCURRED_AT,
)


def standard_case(payload: dict[str, Any], expected: RecordUpdate, case_id: str):
    return pytest.param(payload, expected, id=case_id)


STANDARD_CASES = [
    *(
        standard_case(
            standard_payload(f"payment.{status}"),
            replace(STANDARD_PAYMENT, payment_status=status),
            f"payment-{status}",
        )
        for status in ("succeeded", "failed", "pending", "canceled")
    ),
    standard_case(
        standard_payload("payment.succeeded", amount_refunded=500),
        replace(STANDARD_PAYMENT, payment_status="succeeded", reported_refunded_minor=500),
        "succeeded-with-a-refunded-figure",
    ),
    standard_case(
        standard_payload("payment.refunded"),
        replace(STANDARD_PAYMENT, payment_status="succeeded", reported_refunded_minor=1999),
        "refunded-without-figure-is-a-full-refund",
    ),
    standard_case(
        standard_payload("payment.refunded", amount_refunded=1999),
        replace(STANDARD_PAYMENT, payment_status="succeeded", reported_refunded_minor=1999),
        "refunded-in-full",
    ),
    standard_case(
        standard_payload("payment.refunded", amount_refunded=500),
        replace(STANDARD_PAYMENT, payment_status="succeeded", reported_refunded_minor=500),
        "refunded-trusts-the-stated-figure",
    ),
    standard_case(
        standard_payload("payment.partially_refunded", amount_refunded=500),
        replace(STANDARD_PAYMENT, payment_status="succeeded", reported_refunded_minor=500),
        "partially-refunded",
    ),
    standard_case(
        standard_payload("payment.succeeded", amount=12345, currency="KWD"),
        replace(STANDARD_PAYMENT, payment_status="succeeded", currency="KWD", amount_minor=12345),
        "three-decimal-kwd-untouched",
    ),
    standard_case(
        standard_payload("payment.succeeded", amount=5000, currency="JPY"),
        replace(STANDARD_PAYMENT, payment_status="succeeded", currency="JPY", amount_minor=5000),
        "zero-decimal-jpy-untouched",
    ),
    standard_case(
        standard_payload("payment.succeeded", merchant_reference=DROP, customer=None),
        replace(
            STANDARD_PAYMENT, payment_status="succeeded", merchant_reference=None, customer_ref=None
        ),
        "without-references",
    ),
    standard_case(
        standard_payload("payment.succeeded", timestamp="2026-11-23T05:00:00-05:00"),
        replace(STANDARD_PAYMENT, payment_status="succeeded"),
        "timestamp-with-an-offset",
    ),
]


@pytest.mark.parametrize(("payload", "expected"), STANDARD_CASES)
def test_standard_event_maps_to_record_update(payload, expected):
    assert normalise_event("standard", payload["type"], payload) == [expected]


# --- across providers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "events"),
    [
        pytest.param(
            "stripe",
            [
                (
                    "payment_intent.payment_failed",
                    stripe_payload("payment_intent.payment_failed", stripe_intent()),
                ),
                (
                    "payment_intent.succeeded",
                    stripe_payload(
                        "payment_intent.succeeded", stripe_intent(), created=EVENT_CREATED + 60
                    ),
                ),
            ],
            id="stripe",
        ),
        pytest.param(
            "standard",
            [
                ("payment.failed", standard_payload("payment.failed")),
                (
                    "payment.succeeded",
                    standard_payload("payment.succeeded", timestamp="2026-11-23T10:01:00Z"),
                ),
            ],
            id="standard",
        ),
    ],
)
def test_failed_then_succeeded_retry_updates_one_record_with_a_newer_event(provider, events):
    [failed], [succeeded] = (normalise_event(provider, kind, payload) for kind, payload in events)
    assert failed.provider_reference == succeeded.provider_reference
    assert (failed.payment_status, succeeded.payment_status) == ("failed", "succeeded")
    assert succeeded.event_at - failed.event_at == timedelta(minutes=1)


def test_adyen_retry_after_refusal_is_a_new_payment_with_the_same_merchant_reference():
    [refused] = normalise_event(
        "adyen", "AUTHORISATION", adyen_payload(adyen_item(success="false"))
    )
    retry = adyen_item(pspReference="PSP2", eventDate="2026-11-23T11:01:00+01:00")
    [accepted] = normalise_event("adyen", "AUTHORISATION", adyen_payload(retry))
    assert (refused.payment_status, accepted.payment_status) == ("failed", "succeeded")
    assert (refused.provider_reference, accepted.provider_reference) == ("PSP1", "PSP2")
    assert refused.merchant_reference == accepted.merchant_reference == "inv_1"
    assert accepted.event_at > refused.event_at


def test_adyen_manual_capture_is_pending_until_captured():
    [authorised] = normalise_event(
        "adyen", "AUTHORISATION", adyen_payload(adyen_item()), manual_capture=True
    )
    capture = adyen_modification("CAPTURE", eventDate="2026-11-23T12:00:00+01:00")
    [captured] = normalise_event("adyen", "CAPTURE", adyen_payload(capture), manual_capture=True)
    assert (authorised.payment_status, captured.payment_status) == ("pending", "succeeded")
    assert authorised.provider_reference == captured.provider_reference


@pytest.mark.parametrize(
    ("provider", "event_type", "payload"),
    [
        pytest.param(
            "stripe",
            "charge.succeeded",
            stripe_payload("charge.succeeded", stripe_charge()),
            id="stripe-charge",
        ),
        pytest.param(
            "adyen",
            "AUTHORISATION",
            adyen_payload(adyen_item(eventDate="2026-11-23T19:00:00+09:00")),
            id="adyen-authorisation",
        ),
        pytest.param(
            "standard",
            "payment.succeeded",
            standard_payload("payment.succeeded", timestamp="2026-11-23T05:00:00-05:00"),
            id="standard",
        ),
    ],
)
def test_every_datetime_is_utc(provider, event_type, payload):
    [update] = normalise_event(provider, event_type, payload)
    datetimes = [getattr(update, f.name) for f in fields(update)]
    datetimes = [value for value in datetimes if isinstance(value, datetime)]
    assert len(datetimes) == 2
    assert all(value.utcoffset() == timedelta(0) for value in datetimes)
    assert update.event_at == EVENT_AT


@pytest.mark.parametrize(
    ("provider", "event_type", "payload"),
    [
        pytest.param("stripe", "customer.created", {"data": {"object": {}}}, id="stripe-customer"),
        pytest.param("stripe", "invoice.paid", {}, id="stripe-invoice-empty-payload"),
        pytest.param(
            "stripe",
            "payment_intent.partially_funded",
            stripe_payload("payment_intent.partially_funded", stripe_intent()),
            id="stripe-unlisted-intent-event",
        ),
        pytest.param(
            "adyen",
            "REPORT_AVAILABLE",
            adyen_payload(adyen_item(eventCode="REPORT_AVAILABLE")),
            id="adyen-report",
        ),
        pytest.param("adyen", "OFFER_CLOSED", {}, id="adyen-offer-closed-empty-payload"),
        pytest.param("standard", "payment.disputed", {}, id="standard-unknown-status"),
        pytest.param("standard", "invoice.paid", {"type": "invoice.paid"}, id="standard-other"),
    ],
)
def test_unknown_event_type_is_ignored_with_a_reason(provider, event_type, payload):
    result = normalise_event(provider, event_type, payload)
    assert isinstance(result, Ignored)
    assert event_type in result.reason


@pytest.mark.parametrize("event_code", ["CANCELLATION", "REFUND"])
def test_adyen_refused_modification_is_ignored_with_a_reason(event_code):
    item = adyen_modification(event_code, success="false")
    result = normalise_event("adyen", event_code, adyen_payload(item))
    assert isinstance(result, Ignored)
    assert "refused by Adyen" in result.reason
    assert "MOD1" in result.reason


def malformed(provider: str, event_type: str, payload: dict[str, Any], field: str, case_id: str):
    return pytest.param(provider, event_type, payload, field, id=case_id)


def stripe_malformed(event_type: str, obj: dict[str, Any], field: str, case_id: str, **event):
    return malformed(
        "stripe", event_type, stripe_payload(event_type, obj, **event), field, f"stripe-{case_id}"
    )


def adyen_malformed(item: dict[str, Any], field: str, case_id: str):
    return malformed("adyen", item["eventCode"], adyen_payload(item), field, f"adyen-{case_id}")


def standard_malformed(payload: dict[str, Any], field: str, case_id: str):
    return malformed("standard", payload["type"], payload, field, f"standard-{case_id}")


PI_SUCCEEDED = "payment_intent.succeeded"
AMOUNT = "data.object.amount"
ITEM = "NotificationRequestItem"

MALFORMED_CASES = [
    stripe_malformed(PI_SUCCEEDED, stripe_intent(amount=DROP), AMOUNT, "no-amount"),
    stripe_malformed(PI_SUCCEEDED, stripe_intent(amount="25.00"), AMOUNT, "decimal-string"),
    stripe_malformed(PI_SUCCEEDED, stripe_intent(amount=25.0), AMOUNT, "float-amount"),
    stripe_malformed(PI_SUCCEEDED, stripe_intent(amount=-1), AMOUNT, "negative-amount"),
    stripe_malformed(PI_SUCCEEDED, stripe_intent(amount=True), AMOUNT, "boolean-amount"),
    stripe_malformed(PI_SUCCEEDED, stripe_intent(amount=10**16), AMOUNT, "huge-amount"),
    stripe_malformed(
        PI_SUCCEEDED, stripe_intent(currency="zzz"), "data.object.currency", "unknown-currency"
    ),
    stripe_malformed(
        PI_SUCCEEDED, stripe_intent(currency=DROP), "data.object.currency", "no-currency"
    ),
    stripe_malformed(
        PI_SUCCEEDED, stripe_intent(currency=978), "data.object.currency", "numeric-currency"
    ),
    stripe_malformed(PI_SUCCEEDED, stripe_intent(), "created", "no-event-created", created=DROP),
    stripe_malformed(
        PI_SUCCEEDED, stripe_intent(), "created", "text-event-created", created="2026-11-23"
    ),
    stripe_malformed(
        PI_SUCCEEDED, stripe_intent(), "created", "event-created-out-of-range", created=10**20
    ),
    stripe_malformed(PI_SUCCEEDED, stripe_intent(id=DROP), "data.object.id", "intent-without-id"),
    stripe_malformed(
        PI_SUCCEEDED, stripe_intent(created=DROP), "data.object.created", "no-object-created"
    ),
    stripe_malformed(
        PI_SUCCEEDED, stripe_intent(metadata=["inv_1"]), "data.object.metadata", "list-metadata"
    ),
    stripe_malformed(
        PI_SUCCEEDED,
        stripe_intent(metadata={"external_id": 42}),
        "data.object.metadata.external_id",
        "numeric-merchant-reference",
    ),
    malformed(
        "stripe",
        PI_SUCCEEDED,
        {"created": EVENT_CREATED, "data": {}},
        "data.object",
        "stripe-no-object",
    ),
    malformed("stripe", PI_SUCCEEDED, {"created": EVENT_CREATED}, "data", "stripe-no-data"),
    stripe_malformed(
        "charge.succeeded",
        stripe_charge(payment_intent=42),
        "data.object.payment_intent",
        "numeric-intent",
    ),
    stripe_malformed(
        "charge.succeeded",
        stripe_charge(payment_intent={"object": "payment_intent"}),
        "data.object.payment_intent.id",
        "expanded-intent-without-id",
    ),
    stripe_malformed(
        "charge.refunded",
        stripe_charge(amount_refunded=DROP),
        "data.object.amount_refunded",
        "refunded-without-total",
    ),
    stripe_malformed(
        "charge.refunded",
        stripe_charge(amount_refunded=1000, refunds=refund_list(stripe_refund(amount=DROP))),
        "data.object.refunds.data[0].amount",
        "listed-refund-without-amount",
    ),
    stripe_malformed(
        "charge.refunded",
        stripe_charge(amount_refunded=1000, refunds={"object": "list", "data": "re_1"}),
        "data.object.refunds.data",
        "refund-list-not-a-list",
    ),
    stripe_malformed(
        "refund.updated", stripe_refund(status="mystery"), "data.object.status", "refund-status"
    ),
    stripe_malformed("refund.created", stripe_refund(id=DROP), "data.object.id", "refund-no-id"),
    stripe_malformed(
        "refund.created",
        stripe_refund(amount="10.00"),
        "data.object.amount",
        "refund-decimal-amount",
    ),
    stripe_malformed(
        "refund.created",
        stripe_refund(charge=DROP, payment_intent=None),
        "data.object.charge",
        "refund-without-payment",
    ),
    stripe_malformed(
        "refund.created",
        stripe_refund(currency=DROP),
        "data.object.currency",
        "refund-without-currency",
    ),
    stripe_malformed(
        "charge.dispute.created",
        stripe_dispute(status=DROP),
        "data.object.status",
        "dispute-without-status",
    ),
    stripe_malformed(
        "charge.dispute.created",
        stripe_dispute(amount=DROP),
        "data.object.amount",
        "dispute-without-amount",
    ),
    malformed("adyen", "AUTHORISATION", {"live": "false"}, ITEM, "adyen-no-item"),
    adyen_malformed(adyen_item(amount=DROP), f"{ITEM}.amount", "no-amount"),
    adyen_malformed(
        adyen_item(amount={"currency": "EUR"}), f"{ITEM}.amount.value", "no-amount-value"
    ),
    adyen_malformed(
        adyen_item(amount={"value": "10.00", "currency": "EUR"}),
        f"{ITEM}.amount.value",
        "decimal-string-value",
    ),
    adyen_malformed(
        adyen_item(amount={"value": 10.5, "currency": "EUR"}), f"{ITEM}.amount.value", "float"
    ),
    adyen_malformed(
        adyen_item(amount={"value": -5, "currency": "EUR"}), f"{ITEM}.amount.value", "negative"
    ),
    adyen_malformed(
        adyen_item(amount={"value": 10, "currency": "ABC"}),
        f"{ITEM}.amount.currency",
        "unknown-currency",
    ),
    adyen_malformed(adyen_item(eventDate=DROP), f"{ITEM}.eventDate", "no-event-date"),
    adyen_malformed(
        adyen_item(eventDate="2026-11-23T10:00:00"), f"{ITEM}.eventDate", "naive-event-date"
    ),
    adyen_malformed(adyen_item(eventDate="yesterday"), f"{ITEM}.eventDate", "bad-event-date"),
    adyen_malformed(adyen_item(success="maybe"), f"{ITEM}.success", "unclear-success"),
    adyen_malformed(adyen_item(success=DROP), f"{ITEM}.success", "no-success"),
    adyen_malformed(adyen_item(pspReference=DROP), f"{ITEM}.pspReference", "no-psp-reference"),
    adyen_malformed(
        adyen_item(additionalData={"shopperReference": 42}),
        f"{ITEM}.additionalData.shopperReference",
        "numeric-shopper-reference",
    ),
    *(
        adyen_malformed(
            adyen_modification(code, originalReference=DROP),
            f"{ITEM}.originalReference",
            f"{code.lower()}-without-original-reference",
        )
        for code in ("CAPTURE", "CAPTURE_FAILED", "CANCELLATION", "REFUND", "REFUND_FAILED")
    ),
    adyen_malformed(
        adyen_modification("CHARGEBACK", originalReference=""),
        f"{ITEM}.originalReference",
        "chargeback-with-empty-original-reference",
    ),
    adyen_malformed(
        adyen_modification("CHARGEBACK", amount=DROP), f"{ITEM}.amount", "chargeback-no-amount"
    ),
    adyen_malformed(
        adyen_modification("REFUND", amount={"currency": "EUR"}),
        f"{ITEM}.amount.value",
        "refund-without-value",
    ),
    standard_malformed(standard_payload("payment.succeeded", amount=DROP), "data.amount", "none"),
    standard_malformed(
        standard_payload("payment.succeeded", amount="19.99"), "data.amount", "decimal-string"
    ),
    standard_malformed(standard_payload("payment.succeeded", amount=19.5), "data.amount", "float"),
    standard_malformed(standard_payload("payment.succeeded", amount=-1), "data.amount", "negative"),
    standard_malformed(
        standard_payload("payment.succeeded", currency="ZZZ"), "data.currency", "unknown-currency"
    ),
    standard_malformed(standard_payload("payment.succeeded", id=DROP), "data.id", "no-id"),
    standard_malformed(
        standard_payload("payment.succeeded", occurred_at="2026-11-23T09:59:00"),
        "data.occurred_at",
        "naive-occurred-at",
    ),
    standard_malformed(
        standard_payload("payment.succeeded", timestamp="2026-11-23T10:00:00"),
        "timestamp",
        "naive-timestamp",
    ),
    standard_malformed({"type": "payment.succeeded", "timestamp": 1}, "data", "no-data"),
    *(
        standard_malformed(
            standard_payload("payment.partially_refunded", amount_refunded=refunded),
            "data.amount_refunded",
            f"partial-refund-of-{refunded}",
        )
        for refunded in (0, 1999, 2500)
    ),
    standard_malformed(
        standard_payload("payment.refunded", amount_refunded=2500),
        "data.amount_refunded",
        "refund-above-amount",
    ),
    standard_malformed(
        standard_payload("payment.succeeded", amount_refunded=2000),
        "data.amount_refunded",
        "succeeded-refund-above-amount",
    ),
]


@pytest.mark.parametrize(("provider", "event_type", "payload", "field"), MALFORMED_CASES)
def test_malformed_known_event_fails_naming_the_field(provider, event_type, payload, field):
    with pytest.raises(ValidationFailed) as raised:
        normalise_event(provider, event_type, payload)
    assert field in raised.value.detail


def test_standard_validation_failure_lists_each_field():
    payload = standard_payload("payment.succeeded", amount="19.99", currency="ZZZ")
    with pytest.raises(ValidationFailed) as raised:
        normalise_event("standard", "payment.succeeded", payload)
    reported = {error["field"] for error in raised.value.extra["errors"]}
    assert reported == {"data.amount", "data.currency"}


def test_unknown_provider_fails():
    with pytest.raises(ValidationFailed, match="provider"):
        normalise_event("paypal", "PAYMENT.CAPTURE.COMPLETED", {})


# --- payloads exactly as ingestion stores them --------------------------------------------


def test_stripe_event_as_ingested_is_normalised():
    event = signing.stripe_event("payment_intent.succeeded")
    body, headers = signing.stripe_request(event)
    [verified] = parse_stripe_event(
        body,
        headers["Stripe-Signature"],
        [signing.STRIPE_SECRET],
        now=time.time(),
        tolerance=300,
    )
    [update] = normalise_event("stripe", verified.event_type, verified.payload)
    intent = event["data"]["object"]
    assert update.provider_reference == intent["id"]
    assert update.merchant_reference == intent["metadata"]["external_id"]
    assert (update.payment_status, update.amount_minor, update.currency) == (
        "succeeded",
        2500,
        "EUR",
    )


def test_adyen_item_as_ingested_is_normalised():
    item = signing.adyen_item()
    body, _ = signing.adyen_request(item)
    [verified] = parse_adyen_notification(body, [signing.ADYEN_KEY])
    [update] = normalise_event("adyen", verified.event_type, verified.payload)
    assert update.provider_reference == item["pspReference"]
    assert update.merchant_reference == item["merchantReference"]
    assert update.event_at == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert (update.payment_status, update.amount_minor, update.currency) == (
        "succeeded",
        1000,
        "EUR",
    )


def test_standard_event_as_ingested_is_normalised():
    payload = signing.standard_payload("payment.partially_refunded", amount_refunded=500)
    body, headers = signing.standard_request(payload)
    [verified] = parse_standard_event(
        body, headers, [signing.STANDARD_SECRET], now=time.time(), tolerance=300
    )
    [update] = normalise_event("standard", verified.event_type, verified.payload)
    assert update.provider_reference == payload["data"]["id"]
    assert (update.payment_status, update.reported_refunded_minor) == ("succeeded", 500)
