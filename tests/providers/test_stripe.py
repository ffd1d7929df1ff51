"""Stripe: its signature scheme against the stripe library, every rejection path, its
secrets, and every mapping of its events (docs/design.md).

Pure functions only: no database, no HTTP. The clock is always passed as ``now=`` so the
tolerance cases are exact; only the library's verifier, which reads the real clock
itself, is given headers stamped with the current time.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import stripe

from shared.platform.errors import ValidationFailed
from shared.providers import Ignored, RecordUpdate
from shared.providers.interface import AccountOptions
from shared.providers.stripe import (
    PROVIDER,
    check_stripe_secret,
    normalise_stripe_event,
    parse_stripe_event,
    stripe_signature,
    verify_stripe_signature,
)
from shared.providers.webhook_input import (
    InvalidSignature,
    MalformedPayload,
)
from tests.support import signing
from tests.support.payloads import (
    DROP,
    EVENT_AT,
    EVENT_CREATED,
    OBJECT_CREATED,
    OCCURRED_AT,
    assert_every_datetime_is_utc,
    with_fields,
)

NOW = 1_750_000_000  # 2025-06-15T15:06:40Z
TOLERANCE = 300

STRIPE_SECRET = "whsec_4eC39HqLyjWDarjtT1zdp7dcSigningSecretA"
STRIPE_OLD_SECRET = "whsec_oLdRotatedSecretStillActiveUntilRemoved"


# --- Signatures ---------------------------------------------------------------------


def stripe_event(event_id: str = "evt_3PQ1rT2eZvKYlo2C0m9q8XyZ", **intent: Any) -> dict[str, Any]:
    """A payment_intent.succeeded event as Stripe sends it (trimmed to what matters)."""
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": NOW - 2,
        "livemode": False,
        "pending_webhooks": 1,
        "type": "payment_intent.succeeded",
        "data": {
            "object": {
                "id": "pi_3PQ1rT2eZvKYlo2C0abcdEF1",
                "object": "payment_intent",
                "amount": 2500,
                "amount_received": 2500,
                "currency": "eur",
                "customer": "cus_Q1w2e3r4t5y6",
                "latest_charge": "ch_3PQ1rT2eZvKYlo2C0xyz",
                "metadata": {"external_id": "inv_2025_0001"},
                "created": NOW - 5,
                "status": "succeeded",
                **intent,
            }
        },
    }


def stripe_body(event: dict[str, Any] | None = None) -> bytes:
    return json.dumps(stripe_event() if event is None else event).encode()


def stripe_header(body: bytes, secret: str = STRIPE_SECRET, timestamp: int = NOW) -> str:
    return f"t={timestamp},v1={stripe_signature(secret, timestamp, body)}"


STRIPE_BODIES = {
    "ascii": stripe_body(),
    "non-ascii description": stripe_body(stripe_event(description="Café ☕ – 東京")),
    "whitespace and newline": b'{\n  "id": "evt_1",\n  "type": "charge.succeeded"\n}\n',
}


@pytest.mark.parametrize("body", STRIPE_BODIES.values(), ids=STRIPE_BODIES.keys())
def test_stripe_library_header_is_accepted(body):
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), STRIPE_SECRET, timestamp=NOW
    )

    [event] = parse_stripe_event(body, header, [STRIPE_SECRET], now=NOW, tolerance=TOLERANCE)

    document = json.loads(body)
    assert event.provider_event_id == document["id"]
    assert event.event_type == document["type"]
    assert event.payload == document


@pytest.mark.parametrize("body", STRIPE_BODIES.values(), ids=STRIPE_BODIES.keys())
def test_our_stripe_header_passes_the_stripe_library_verifier(body):
    # construct_event checks the timestamp against the real clock, so stamp it now.
    header = stripe_header(body, timestamp=int(time.time()))

    event = stripe.Webhook.construct_event(body, header, STRIPE_SECRET)

    assert event.id == json.loads(body)["id"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, header, STRIPE_OLD_SECRET)


def test_stripe_signature_matches_the_library_signature():
    body = stripe_body()
    library = stripe.WebhookSignature.generate_signature_header(
        body.decode(), STRIPE_SECRET, timestamp=NOW
    )
    assert library == stripe_header(body)


@pytest.mark.parametrize(
    "header_for",
    [
        lambda good: f"t={NOW},v1={'0' * 64},v1={good}",
        lambda good: f"t={NOW},v1={good},v1={'f' * 64}",
        lambda good: f"t={NOW},v0={'0' * 64},v1={'a' * 64},v1={good}",
        lambda good: f"v1={good},t={NOW}",
    ],
    ids=["valid-last", "valid-first", "among-v0-and-stale-v1", "t-after-v1"],
)
def test_stripe_any_matching_v1_entry_is_accepted(header_for):
    body = stripe_body()
    header = header_for(stripe_signature(STRIPE_SECRET, NOW, body))

    verify_stripe_signature(body, header, [STRIPE_SECRET], now=NOW, tolerance=TOLERANCE)


@pytest.mark.parametrize("signing_secret", [STRIPE_OLD_SECRET, STRIPE_SECRET])
def test_stripe_any_active_secret_verifies_during_rotation(signing_secret):
    body = stripe_body()
    header = stripe_header(body, secret=signing_secret)

    [event] = parse_stripe_event(
        body, header, [STRIPE_OLD_SECRET, STRIPE_SECRET], now=NOW, tolerance=TOLERANCE
    )

    assert event.provider_event_id == stripe_event()["id"]


@pytest.mark.parametrize("timestamp", [NOW - TOLERANCE, NOW, NOW + TOLERANCE])
def test_stripe_timestamp_within_tolerance_is_accepted(timestamp):
    body = stripe_body()
    header = stripe_header(body, timestamp=timestamp)

    verify_stripe_signature(body, header, [STRIPE_SECRET], now=NOW, tolerance=TOLERANCE)


STRIPE_BODY = stripe_body()
STRIPE_GOOD_SIGNATURE = stripe_signature(STRIPE_SECRET, NOW, STRIPE_BODY)


@pytest.mark.parametrize(
    ("body", "header"),
    [
        (STRIPE_BODY, stripe_header(STRIPE_BODY, secret=STRIPE_OLD_SECRET)),
        (STRIPE_BODY.replace(b"2500", b"2501"), stripe_header(STRIPE_BODY)),
        (STRIPE_BODY, None),
        (STRIPE_BODY, ""),
        (STRIPE_BODY, f"v1={STRIPE_GOOD_SIGNATURE}"),
        (STRIPE_BODY, f"t={NOW}"),
        (STRIPE_BODY, f"t={NOW},v0={STRIPE_GOOD_SIGNATURE}"),
        (STRIPE_BODY, f"t=yesterday,v1={STRIPE_GOOD_SIGNATURE}"),
        (STRIPE_BODY, f"t=-{NOW},v1={STRIPE_GOOD_SIGNATURE}"),
        (STRIPE_BODY, f"t={NOW}.5,v1={STRIPE_GOOD_SIGNATURE}"),
        (STRIPE_BODY, f"t={NOW},t={NOW},v1={STRIPE_GOOD_SIGNATURE}"),
        (STRIPE_BODY, f"t={NOW},v1={STRIPE_GOOD_SIGNATURE.upper()}"),
        (STRIPE_BODY, stripe_header(STRIPE_BODY, timestamp=NOW - TOLERANCE - 1)),
        (STRIPE_BODY, stripe_header(STRIPE_BODY, timestamp=NOW + TOLERANCE + 1)),
        (STRIPE_BODY, stripe_header(STRIPE_BODY, timestamp=NOW + 86_400)),
        (b"{not json", stripe_header(STRIPE_BODY)),
    ],
    ids=[
        "wrong-secret",
        "tampered-body",
        "missing-header",
        "empty-header",
        "no-timestamp",
        "no-v1",
        "only-v0-scheme",
        "non-numeric-timestamp",
        "negative-timestamp",
        "fractional-timestamp",
        "two-timestamps",
        "upper-case-hex",
        "older-than-tolerance",
        "just-beyond-future-tolerance",
        "a-day-in-the-future",
        "malformed-body-checked-after-signature",
    ],
)
def test_stripe_invalid_signature_is_refused(body, header):
    with pytest.raises(InvalidSignature):
        parse_stripe_event(body, header, [STRIPE_SECRET], now=NOW, tolerance=TOLERANCE)


def test_stripe_tolerance_is_the_argument_not_a_constant():
    header = stripe_header(STRIPE_BODY, timestamp=NOW - 60)

    verify_stripe_signature(STRIPE_BODY, header, [STRIPE_SECRET], now=NOW, tolerance=60)
    with pytest.raises(InvalidSignature):
        verify_stripe_signature(STRIPE_BODY, header, [STRIPE_SECRET], now=NOW, tolerance=59)


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "evt_1", "type": ',
        b"\xff\xfe{}",
        b'[{"id": "evt_1", "type": "charge.succeeded"}]',
        b'"evt_1"',
        b'{"type": "charge.succeeded"}',
        b'{"id": "evt_1"}',
        b'{"id": "", "type": "charge.succeeded"}',
        b'{"id": 42, "type": "charge.succeeded"}',
        b'{"id": "evt_1", "type": null}',
    ],
    ids=[
        "truncated-json",
        "not-utf8",
        "array",
        "string",
        "missing-id",
        "missing-type",
        "empty-id",
        "numeric-id",
        "null-type",
    ],
)
def test_stripe_validly_signed_but_malformed_event_is_refused(body):
    with pytest.raises(MalformedPayload):
        parse_stripe_event(body, stripe_header(body), [STRIPE_SECRET], now=NOW, tolerance=TOLERANCE)


# --- Secrets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(STRIPE_SECRET, id="stripe"),
        pytest.param("whsec_x", id="stripe-short"),
    ],
)
def test_well_formed_stripe_secret_is_accepted(secret):
    check_stripe_secret(secret)


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("whsec_", id="stripe-prefix-only"),
        pytest.param("sk_test_4eC39HqLyjWDarjtT1zdp7dc", id="stripe-api-key"),
        pytest.param("WHSEC_abc", id="stripe-upper-case-prefix"),
        pytest.param("", id="stripe-empty"),
    ],
)
def test_malformed_stripe_secret_is_refused(secret):
    with pytest.raises(ValidationFailed):
        check_stripe_secret(secret)


# --- Payloads -----------------------------------------------------------------------


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
        "evidence_details": {"due_by": DISPUTE_DUE_BY, "has_evidence": False},
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
DISPUTE_DUE_BY = OBJECT_CREATED + 14 * 86400
STRIPE_DISPUTE = RecordUpdate(
    provider_reference="pi_1",
    event_at=EVENT_AT,
    currency="EUR",
    dispute_status="open",
    dispute_provider_status="needs_response",
    dispute_amount_minor=2500,
    dispute_reason="fraudulent",
    dispute_evidence_due_at=OCCURRED_AT + timedelta(days=14),
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
        stripe_intent(customer=None, charges={"data": [stripe_charge(customer="cus_7")]}),
        replace(STRIPE_PAYMENT, payment_status="succeeded", customer_ref="cus_7"),
        "intent-customer-from-its-listed-charge",
    ),
    stripe_case(
        "payment_intent.succeeded",
        stripe_intent(customer=None, latest_charge=stripe_charge(customer="cus_8")),
        replace(STRIPE_PAYMENT, payment_status="succeeded", customer_ref="cus_8"),
        "intent-customer-from-its-expanded-latest-charge",
    ),
    stripe_case(
        "payment_intent.succeeded",
        stripe_intent(customer=None, latest_charge="ch_1", charges={"data": []}),
        replace(STRIPE_PAYMENT, payment_status="succeeded", customer_ref=None),
        "intent-with-unexpanded-charge-and-no-customer",
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
        replace(STRIPE_DISPUTE, dispute_status=normalised, dispute_provider_status=status),
        f"dispute-{action}-{status}",
    )
    for action, status, normalised in [
        ("created", "warning_needs_response", "open"),
        ("created", "needs_response", "open"),
        ("updated", "warning_under_review", "under_review"),
        ("updated", "under_review", "under_review"),
        ("closed", "warning_closed", "won"),
        ("closed", "prevented", "won"),
        ("closed", "won", "won"),
        ("closed", "lost", "lost"),
        ("funds_withdrawn", "needs_response", "open"),
        ("funds_reinstated", "won", "won"),
    ]
] + [
    stripe_case(
        "charge.dispute.closed",
        stripe_dispute(status="won", reason=None, evidence_details={"due_by": None}),
        replace(
            STRIPE_DISPUTE,
            dispute_status="won",
            dispute_provider_status="won",
            dispute_reason=None,
            dispute_evidence_due_at=None,
        ),
        "dispute-closed-without-reason-or-due-date",
    ),
    stripe_case(
        "charge.dispute.created",
        stripe_dispute(evidence_details=DROP),
        replace(STRIPE_DISPUTE, dispute_evidence_due_at=None),
        "dispute-without-evidence-details",
    ),
    stripe_case(
        "charge.dispute.created",
        stripe_dispute(payment_intent=None),
        replace(STRIPE_DISPUTE, provider_reference="ch_1"),
        "dispute-without-intent-belongs-to-its-charge",
    ),
    stripe_case(
        "charge.dispute.created",
        stripe_dispute(currency="jpy", amount=5000, payment_intent=DROP, charge={"id": "ch_9"}),
        replace(
            STRIPE_DISPUTE,
            provider_reference="ch_9",
            currency="JPY",
            dispute_amount_minor=5000,
        ),
        "dispute-expanded-charge-zero-decimal",
    ),
]


@pytest.mark.parametrize(("event_type", "obj", "expected"), STRIPE_PAYMENT_INTENT_CASES)
def test_stripe_payment_intent_event_sets_the_intent_status(event_type, obj, expected):
    assert normalise_stripe_event(event_type, stripe_payload(event_type, obj)) == [expected]


@pytest.mark.parametrize(("event_type", "obj", "expected"), STRIPE_CHARGE_CASES)
def test_stripe_charge_event_updates_its_intent_record(event_type, obj, expected):
    assert normalise_stripe_event(event_type, stripe_payload(event_type, obj)) == [expected]


@pytest.mark.parametrize(("event_type", "obj", "expected"), STRIPE_REFUND_CASES)
def test_stripe_refund_event_counts_the_refund_on_its_payment(event_type, obj, expected):
    assert normalise_stripe_event(event_type, stripe_payload(event_type, obj)) == [expected]


@pytest.mark.parametrize(("event_type", "obj", "expected"), STRIPE_DISPUTE_CASES)
def test_stripe_dispute_is_recorded_without_changing_the_status(event_type, obj, expected):
    assert normalise_stripe_event(event_type, stripe_payload(event_type, obj)) == [expected]


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        pytest.param({"external_id": "wrong", "order_ref": "ord_7"}, "ord_7", id="key-present"),
        pytest.param({"external_id": "inv_1"}, None, id="only-the-default-key"),
    ],
)
def test_stripe_merchant_reference_comes_from_the_configured_metadata_key(metadata, expected):
    payload = stripe_payload("payment_intent.succeeded", stripe_intent(metadata=metadata))
    options = AccountOptions(merchant_reference_key="order_ref")
    [update] = PROVIDER.normalise("payment_intent.succeeded", payload, options)
    assert update.merchant_reference == expected


# --- Across event types -------------------------------------------------------------


def test_stripe_failed_then_succeeded_retry_updates_one_record_with_a_newer_event():
    events = [
        (
            "payment_intent.payment_failed",
            stripe_payload("payment_intent.payment_failed", stripe_intent()),
        ),
        (
            "payment_intent.succeeded",
            stripe_payload("payment_intent.succeeded", stripe_intent(), created=EVENT_CREATED + 60),
        ),
    ]
    [failed], [succeeded] = (normalise_stripe_event(kind, payload) for kind, payload in events)
    assert failed.provider_reference == succeeded.provider_reference
    assert (failed.payment_status, succeeded.payment_status) == ("failed", "succeeded")
    assert succeeded.event_at - failed.event_at == timedelta(minutes=1)


def test_every_stripe_datetime_is_utc():
    payload = stripe_payload("charge.succeeded", stripe_charge())
    [update] = normalise_stripe_event("charge.succeeded", payload)
    assert_every_datetime_is_utc(update)


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        pytest.param("customer.created", {"data": {"object": {}}}, id="stripe-customer"),
        pytest.param("invoice.paid", {}, id="stripe-invoice-empty-payload"),
        pytest.param(
            "payment_intent.partially_funded",
            stripe_payload("payment_intent.partially_funded", stripe_intent()),
            id="stripe-unlisted-intent-event",
        ),
    ],
)
def test_unknown_stripe_event_type_is_ignored_with_a_reason(event_type, payload):
    result = normalise_stripe_event(event_type, payload)
    assert isinstance(result, Ignored)
    assert event_type in result.reason


# --- Malformed events ---------------------------------------------------------------


def malformed(event_type: str, payload: dict[str, Any], field: str, case_id: str):
    return pytest.param(event_type, payload, field, id=case_id)


def stripe_malformed(event_type: str, obj: dict[str, Any], field: str, case_id: str, **event):
    return malformed(
        event_type, stripe_payload(event_type, obj, **event), field, f"stripe-{case_id}"
    )


PI_SUCCEEDED = "payment_intent.succeeded"
AMOUNT = "data.object.amount"

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
        PI_SUCCEEDED,
        {"created": EVENT_CREATED, "data": {}},
        "data.object",
        "stripe-no-object",
    ),
    malformed(PI_SUCCEEDED, {"created": EVENT_CREATED}, "data", "stripe-no-data"),
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
    stripe_malformed(
        "charge.dispute.updated",
        stripe_dispute(status="charge_refunded"),
        "data.object.status",
        "dispute-unknown-status",
    ),
    stripe_malformed(
        "charge.dispute.created",
        stripe_dispute(evidence_details={"due_by": "2026-12-07"}),
        "data.object.evidence_details.due_by",
        "dispute-due-date-not-unix",
    ),
    stripe_malformed(
        "charge.dispute.created",
        stripe_dispute(evidence_details={"due_by": OBJECT_CREATED * 1000}),
        "data.object.evidence_details.due_by",
        "dispute-due-date-in-milliseconds",
    ),
    stripe_malformed(
        "charge.dispute.created",
        stripe_dispute(evidence_details={"due_by": int(time.time()) + 400 * 86400}),
        "data.object.evidence_details.due_by",
        "dispute-due-date-over-a-year-ahead",
    ),
    stripe_malformed(
        "charge.dispute.created",
        stripe_dispute(evidence_details="soon"),
        "data.object.evidence_details",
        "dispute-evidence-details-not-an-object",
    ),
]


@pytest.mark.parametrize(("event_type", "payload", "field"), MALFORMED_CASES)
def test_malformed_known_stripe_event_fails_naming_the_field(event_type, payload, field):
    with pytest.raises(ValidationFailed) as raised:
        normalise_stripe_event(event_type, payload)
    assert field in raised.value.detail


# --- Payloads exactly as ingestion stores them --------------------------------------


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
    [update] = normalise_stripe_event(verified.event_type, verified.payload)
    intent = event["data"]["object"]
    assert update.provider_reference == intent["id"]
    assert update.merchant_reference == intent["metadata"]["external_id"]
    assert (update.payment_status, update.amount_minor, update.currency) == (
        "succeeded",
        2500,
        "EUR",
    )
