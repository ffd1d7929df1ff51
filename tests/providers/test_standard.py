"""Standard Webhooks: its signatures against the standardwebhooks library, every rejection
path, the payload shape at the door, its secrets, and every mapping of its events.

Pure functions only: no database, no HTTP. The clock is always passed as ``now=``; only
the library's verifier, which reads the real clock itself, gets headers stamped now.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import standardwebhooks

from shared.platform.errors import ValidationFailed
from shared.providers import Ignored, RecordUpdate
from shared.providers.standard import (
    UNTYPED,
    check_standard_secret,
    normalise_standard_event,
    parse_standard_event,
    standard_signature,
)
from shared.providers.webhook_input import (
    InvalidSignature,
    MalformedPayload,
)
from tests.support import signing
from tests.support.payloads import (
    DROP,
    EVENT_AT,
    OCCURRED_AT,
    assert_every_datetime_is_utc,
    with_fields,
)

NOW = 1_750_000_000  # 2025-06-15T15:06:40Z
TOLERANCE = 300

STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STANDARD_OLD_SECRET = "whsec_" + base64.b64encode(b"the previous standard webhooks key").decode()


# --- Signatures and the payload shape at the door -----------------------------------


def standard_document(**data: Any) -> dict[str, Any]:
    """The one payload shape the service understands (shared/providers/standard.py)."""
    return {
        "type": "payment.succeeded",
        "timestamp": "2025-06-15T15:06:38Z",
        "data": {
            "id": "pay_01J0ZK6Q2T9B7",
            "merchant_reference": "inv_2025_0001",
            "amount": 2500,
            "currency": "EUR",
            "amount_refunded": 0,
            "customer": "cus_42",
            "occurred_at": "2025-06-15T15:06:30+00:00",
            **data,
        },
    }


def library_headers(
    body: str,
    secret: str = STANDARD_SECRET,
    message_id: str = "msg_2hS8dYwmCHWDR3mKp1",
    timestamp: int = NOW,
) -> dict[str, str]:
    """Headers as the ``standardwebhooks`` package signs them."""
    sent_at = datetime.fromtimestamp(timestamp, tz=UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standardwebhooks.Webhook(secret).sign(message_id, sent_at, body),
    }


def our_signature_entry(body: bytes, secret: str = STANDARD_SECRET, timestamp: int = NOW) -> str:
    raw = standard_signature(secret, "msg_2hS8dYwmCHWDR3mKp1", timestamp, body)
    return "v1," + base64.b64encode(raw).decode()


def parse_standard(body: bytes, headers: dict[str, str | None], **kwargs: Any):
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("tolerance", TOLERANCE)
    return parse_standard_event(body, headers, kwargs.pop("secrets", [STANDARD_SECRET]), **kwargs)


STANDARD_BODY_TEXT = json.dumps(standard_document())
STANDARD_BODY = STANDARD_BODY_TEXT.encode()


@pytest.mark.parametrize(
    "payload",
    [
        standard_document(),
        {
            **standard_document(),
            "type": "payment.partially_refunded",
            "data": {**standard_document()["data"], "amount_refunded": 500},
        },
        standard_document(merchant_reference=None, customer=None, currency="jpy"),
        standard_document(merchant_reference="Größe ☕", extra_field={"kept": True}),
    ],
    ids=["succeeded", "partially-refunded", "optional-nulls", "non-ascii-and-extra-fields"],
)
def test_standard_library_signed_message_is_accepted(payload):
    body = json.dumps(payload, ensure_ascii=False)

    [event] = parse_standard(body.encode(), library_headers(body))

    assert event.provider_event_id == "msg_2hS8dYwmCHWDR3mKp1"
    assert event.event_type == payload["type"]
    assert event.payload == payload


def test_our_standard_signature_passes_the_standardwebhooks_verifier():
    # Webhook.verify checks the timestamp against the real clock, so stamp it now.
    now = int(time.time())
    headers = {
        "webhook-id": "msg_2hS8dYwmCHWDR3mKp1",
        "webhook-timestamp": str(now),
        "webhook-signature": our_signature_entry(STANDARD_BODY, timestamp=now),
    }

    assert standardwebhooks.Webhook(STANDARD_SECRET).verify(STANDARD_BODY, headers) == (
        standard_document()
    )
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(STANDARD_OLD_SECRET).verify(STANDARD_BODY, headers)


def test_standard_signature_matches_the_library_signature():
    headers = library_headers(STANDARD_BODY_TEXT)
    assert headers["webhook-signature"] == our_signature_entry(STANDARD_BODY)


@pytest.mark.parametrize(
    "signature_header",
    [
        f"v1,{base64.b64encode(b'x' * 32).decode()} {our_signature_entry(STANDARD_BODY)}",
        f"{our_signature_entry(STANDARD_BODY)} v1,{base64.b64encode(b'x' * 32).decode()}",
        f"v1a,{base64.b64encode(b'x' * 32).decode()} {our_signature_entry(STANDARD_BODY)}",
        f"v1,not-base64!! {our_signature_entry(STANDARD_BODY)}",
        f"{our_signature_entry(STANDARD_BODY, secret=STANDARD_OLD_SECRET)} "
        f"{our_signature_entry(STANDARD_BODY)}",
    ],
    ids=["valid-last", "valid-first", "other-scheme-first", "garbled-entry-first", "two-keys"],
)
def test_standard_any_valid_space_separated_signature_is_accepted(signature_header):
    headers = library_headers(STANDARD_BODY_TEXT) | {"webhook-signature": signature_header}

    [event] = parse_standard(STANDARD_BODY, headers)

    assert event.event_type == "payment.succeeded"


@pytest.mark.parametrize("signing_secret", [STANDARD_OLD_SECRET, STANDARD_SECRET])
def test_standard_any_active_secret_verifies_during_rotation(signing_secret):
    headers = library_headers(STANDARD_BODY_TEXT, secret=signing_secret)

    parse_standard(STANDARD_BODY, headers, secrets=[STANDARD_OLD_SECRET, STANDARD_SECRET])


@pytest.mark.parametrize("timestamp", [NOW - TOLERANCE, NOW + TOLERANCE])
def test_standard_timestamp_at_the_edge_of_tolerance_is_accepted(timestamp):
    parse_standard(STANDARD_BODY, library_headers(STANDARD_BODY_TEXT, timestamp=timestamp))


def _standard_headers_without(name: str) -> dict[str, str | None]:
    return library_headers(STANDARD_BODY_TEXT) | {name: None}


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (STANDARD_BODY, library_headers(STANDARD_BODY_TEXT, timestamp=NOW - TOLERANCE - 1)),
        (STANDARD_BODY, library_headers(STANDARD_BODY_TEXT, timestamp=NOW + TOLERANCE + 1)),
        (STANDARD_BODY, library_headers(STANDARD_BODY_TEXT, secret=STANDARD_OLD_SECRET)),
        (STANDARD_BODY.replace(b"2500", b"2501"), library_headers(STANDARD_BODY_TEXT)),
        (
            STANDARD_BODY,
            library_headers(STANDARD_BODY_TEXT) | {"webhook-id": "msg_someone_else"},
        ),
        (
            STANDARD_BODY,
            library_headers(STANDARD_BODY_TEXT) | {"webhook-timestamp": str(NOW + 1)},
        ),
        (STANDARD_BODY, library_headers(STANDARD_BODY_TEXT) | {"webhook-timestamp": "soon"}),
        (STANDARD_BODY, _standard_headers_without("webhook-id")),
        (STANDARD_BODY, _standard_headers_without("webhook-timestamp")),
        (STANDARD_BODY, _standard_headers_without("webhook-signature")),
        (
            STANDARD_BODY,
            library_headers(STANDARD_BODY_TEXT)
            | {"webhook-signature": our_signature_entry(STANDARD_BODY).replace("v1,", "v2,")},
        ),
        (b"{not json", library_headers(STANDARD_BODY_TEXT)),
    ],
    ids=[
        "stale",
        "future",
        "wrong-secret",
        "tampered-body",
        "other-message-id",
        "other-timestamp",
        "non-numeric-timestamp",
        "missing-id",
        "missing-timestamp",
        "missing-signature",
        "only-unknown-scheme",
        "malformed-body-checked-after-signature",
    ],
)
def test_standard_invalid_signature_is_refused(body, headers):
    with pytest.raises(InvalidSignature):
        parse_standard(body, headers)


def test_standard_tolerance_is_the_argument():
    headers = library_headers(STANDARD_BODY_TEXT, timestamp=NOW - 120)

    parse_standard(STANDARD_BODY, headers, tolerance=120)
    with pytest.raises(InvalidSignature):
        parse_standard(STANDARD_BODY, headers, tolerance=119)


def _payload_with(path: str, value: Any) -> dict[str, Any]:
    payload = copy.deepcopy(standard_document())
    *parents, leaf = path.split(".")
    target = payload
    for name in parents:
        target = target[name]
    target[leaf] = value
    return payload


def _payload_without(path: str) -> dict[str, Any]:
    payload = copy.deepcopy(standard_document())
    *parents, leaf = path.split(".")
    target = payload
    for name in parents:
        target = target[name]
    del target[leaf]
    return payload


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (_payload_with("data.amount", -1), "data.amount"),
        (_payload_with("data.amount", 10.5), "data.amount"),
        (_payload_with("data.amount", 10.0), "data.amount"),
        (_payload_with("data.amount", "2500"), "data.amount"),
        (_payload_with("data.amount", True), "data.amount"),
        (_payload_with("data.amount", 10**15 + 1), "data.amount"),
        (_payload_with("data.amount_refunded", -5), "data.amount_refunded"),
        (_payload_with("data.currency", "ZZZ"), "data.currency"),
        (_payload_with("data.currency", "XAU"), "data.currency"),
        (_payload_without("data.id"), "data.id"),
        (_payload_with("data.id", ""), "data.id"),
        (_payload_without("data.amount"), "data.amount"),
        (_payload_with("data.occurred_at", "2025-06-15T15:06:30"), "data.occurred_at"),
        (_payload_with("data.occurred_at", "yesterday"), "data.occurred_at"),
        (_payload_without("data"), "data"),
        (_payload_with("data", [1, 2]), "data"),
    ],
    ids=[
        "negative-amount",
        "fractional-amount",
        "float-amount",
        "string-amount",
        "boolean-amount",
        "amount-too-large",
        "negative-refund",
        "unknown-currency",
        "currency-without-minor-unit",
        "missing-data-id",
        "empty-data-id",
        "missing-amount",
        "naive-occurred-at",
        "unparseable-occurred-at",
        "missing-data",
        "data-not-an-object",
    ],
)
def test_standard_payload_outside_the_shape_fails_validation_naming_the_field(payload, field):
    body = json.dumps(payload)

    with pytest.raises(ValidationFailed) as raised:
        parse_standard(body.encode(), library_headers(body))

    assert raised.value.status == 422
    assert field in [error["field"] for error in raised.value.extra["errors"]]


@pytest.mark.parametrize(
    ("payload", "stored_type"),
    [
        (_payload_with("type", "payment.exploded"), "payment.exploded"),
        (_payload_with("type", "contact.created"), "contact.created"),
        (_payload_with("type", 7), UNTYPED),
        (_payload_without("type"), UNTYPED),
    ],
    ids=["unknown-payment-type", "other-type", "type-not-text", "missing-type"],
)
def test_a_signed_message_of_another_type_is_accepted_as_it_came(payload, stored_type):
    """Refusing it would count as a failed delivery: the sender retries, then disables
    the endpoint. It is stored, and processing ignores it with the reason."""
    body = json.dumps(payload)

    [event] = parse_standard(body.encode(), library_headers(body))

    assert (event.event_type, event.payload, event.raw) == (stored_type, payload, body.encode())
    ignored = normalise_standard_event(event.event_type, event.payload)
    assert isinstance(ignored, Ignored)
    assert stored_type in ignored.reason


@pytest.mark.parametrize(
    "body",
    [b'{"type": "payment.succeeded", "data": ', b"\xc3\x28", b"[]", b"null"],
    ids=["truncated-json", "not-utf8", "array", "null"],
)
def test_standard_validly_signed_unreadable_body_is_malformed(body):
    headers = {
        "webhook-id": "msg_2hS8dYwmCHWDR3mKp1",
        "webhook-timestamp": str(NOW),
        "webhook-signature": our_signature_entry(body),
    }

    with pytest.raises(MalformedPayload):
        parse_standard(body, headers)


# --- Secrets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(STANDARD_SECRET, id="standard-unpadded"),
        pytest.param(STANDARD_OLD_SECRET, id="standard-padded"),
        pytest.param("whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", id="standard-short"),
    ],
)
def test_well_formed_standard_secret_is_accepted(secret):
    check_standard_secret(secret)


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("whsec_", id="standard-prefix-only"),
        pytest.param("whsec_!!!!", id="standard-not-base64"),
        pytest.param("whsec_a", id="standard-truncated-base64"),
        pytest.param("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", id="standard-without-prefix"),
        pytest.param("whsec_c2VjcmV0", id="standard-key-too-short"),
    ],
)
def test_malformed_standard_secret_is_refused(secret):
    with pytest.raises(ValidationFailed):
        check_standard_secret(secret)


# --- Payloads -----------------------------------------------------------------------


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
    assert normalise_standard_event(payload["type"], payload) == [expected]


# --- Across event types -------------------------------------------------------------


def test_standard_failed_then_succeeded_retry_updates_one_record_with_a_newer_event():
    events = [
        ("payment.failed", standard_payload("payment.failed")),
        (
            "payment.succeeded",
            standard_payload("payment.succeeded", timestamp="2026-11-23T10:01:00Z"),
        ),
    ]
    [failed], [succeeded] = (normalise_standard_event(kind, payload) for kind, payload in events)
    assert failed.provider_reference == succeeded.provider_reference
    assert (failed.payment_status, succeeded.payment_status) == ("failed", "succeeded")
    assert succeeded.event_at - failed.event_at == timedelta(minutes=1)


def test_every_standard_datetime_is_utc():
    payload = standard_payload("payment.succeeded", timestamp="2026-11-23T05:00:00-05:00")
    [update] = normalise_standard_event("payment.succeeded", payload)
    assert_every_datetime_is_utc(update)


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        pytest.param("payment.disputed", {}, id="standard-unknown-status"),
        pytest.param("invoice.paid", {"type": "invoice.paid"}, id="standard-other"),
    ],
)
def test_unknown_standard_event_type_is_ignored_with_a_reason(event_type, payload):
    result = normalise_standard_event(event_type, payload)
    assert isinstance(result, Ignored)
    assert event_type in result.reason


# --- Malformed events ---------------------------------------------------------------


def malformed(event_type: str, payload: dict[str, Any], field: str, case_id: str):
    return pytest.param(event_type, payload, field, id=case_id)


def standard_malformed(payload: dict[str, Any], field: str, case_id: str):
    return malformed(payload["type"], payload, field, f"standard-{case_id}")


MALFORMED_CASES = [
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


@pytest.mark.parametrize(("event_type", "payload", "field"), MALFORMED_CASES)
def test_malformed_known_standard_event_fails_naming_the_field(event_type, payload, field):
    with pytest.raises(ValidationFailed) as raised:
        normalise_standard_event(event_type, payload)
    assert field in raised.value.detail


def test_standard_validation_failure_lists_each_field():
    payload = standard_payload("payment.succeeded", amount="19.99", currency="ZZZ")
    with pytest.raises(ValidationFailed) as raised:
        normalise_standard_event("payment.succeeded", payload)
    reported = {error["field"] for error in raised.value.extra["errors"]}
    assert reported == {"data.amount", "data.currency"}


# --- Payloads exactly as ingestion stores them --------------------------------------


def test_standard_event_as_ingested_is_normalised():
    payload = signing.standard_payload("payment.partially_refunded", amount_refunded=500)
    body, headers = signing.standard_request(payload)
    [verified] = parse_standard_event(
        body, headers, [signing.STANDARD_SECRET], now=time.time(), tolerance=300
    )
    [update] = normalise_standard_event(verified.event_type, verified.payload)
    assert update.provider_reference == payload["data"]["id"]
    assert (update.payment_status, update.reported_refunded_minor) == ("succeeded", 500)
