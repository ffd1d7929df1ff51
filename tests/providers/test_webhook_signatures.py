"""Webhook signatures against the providers' own libraries, and every rejection path.

Pure functions only: no database, no HTTP. The clock is always passed as ``now=`` so the
tolerance cases are exact; only the providers' verifiers, which read the real clock
themselves, are given headers stamped with the current time.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from datetime import UTC, datetime
from typing import Any

import Adyen.util
import pytest
import standardwebhooks
import stripe

from shared.platform.errors import ValidationFailed
from shared.providers.adyen import (
    adyen_signature,
    check_adyen_secret,
    parse_adyen_notification,
    signing_string,
)
from shared.providers.standard import (
    check_standard_secret,
    parse_standard_event,
    standard_signature,
)
from shared.providers.stripe import (
    check_stripe_secret,
    parse_stripe_event,
    stripe_signature,
    verify_stripe_signature,
)
from shared.providers.webhook_input import (
    MAX_JSON_DEPTH,
    InvalidSignature,
    MalformedPayload,
    parse_json_object,
)

NOW = 1_750_000_000  # 2025-06-15T15:06:40Z
TOLERANCE = 300

STRIPE_SECRET = "whsec_4eC39HqLyjWDarjtT1zdp7dcSigningSecretA"
STRIPE_OLD_SECRET = "whsec_oLdRotatedSecretStillActiveUntilRemoved"
ADYEN_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
ADYEN_OLD_KEY = "A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F90"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STANDARD_OLD_SECRET = "whsec_" + base64.b64encode(b"the previous standard webhooks key").decode()


# --- Stripe -------------------------------------------------------------------------------


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


# --- Adyen --------------------------------------------------------------------------------


def adyen_item(**fields: Any) -> dict[str, Any]:
    """An unsigned NotificationRequestItem; a field given as None is left out."""
    item = {
        "pspReference": "8835511210681009",
        "originalReference": "",
        "merchantAccountCode": "AcmeECOM",
        "merchantReference": "inv_2025_0001",
        "amount": {"value": 2500, "currency": "EUR"},
        "eventCode": "AUTHORISATION",
        "eventDate": "2025-06-15T17:06:40+02:00",
        "success": "true",
        "paymentMethod": "visa",
        "reason": "046591:1111:03/2030",
    } | fields
    return {name: value for name, value in item.items() if value is not None}


def signed_by_adyen_library(item: dict[str, Any], key: str = ADYEN_KEY) -> dict[str, Any]:
    """``item`` with the hmacSignature the ``Adyen`` package computes for it."""
    unsigned = {name: value for name, value in item.items() if name != "additionalData"}
    signature = Adyen.util.generate_notification_sig(unsigned, key).decode()
    return {
        **item,
        "additionalData": {**item.get("additionalData", {}), "hmacSignature": signature},
    }


def signed_by_us(item: dict[str, Any], key: str = ADYEN_KEY) -> dict[str, Any]:
    return {**item, "additionalData": {"hmacSignature": adyen_signature(key, item).decode()}}


def notification(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "live": "false",
        "notificationItems": [{"NotificationRequestItem": item} for item in items],
    }


def adyen_body(*items: dict[str, Any]) -> bytes:
    return json.dumps(notification(*items)).encode()


ADYEN_ITEMS = {
    "authorisation": adyen_item(),
    "refund-with-original-reference": adyen_item(
        pspReference="8835511210681077",
        originalReference="8835511210681009",
        eventCode="REFUND",
        amount={"value": 1000, "currency": "EUR"},
    ),
    "refused": adyen_item(success="false", reason="Refused"),
    "no-original-reference": adyen_item(originalReference=None),
    "no-merchant-reference": adyen_item(merchantReference=None),
    "non-ascii-merchant-reference": adyen_item(merchantReference="Bestellung-Größe-東京"),
    "zero-decimal-currency": adyen_item(amount={"value": 2500, "currency": "JPY"}),
    "extra-additional-data": {**adyen_item(), "additionalData": {"authCode": "046591"}},
}


@pytest.mark.parametrize("item", ADYEN_ITEMS.values(), ids=ADYEN_ITEMS.keys())
def test_adyen_library_signed_items_are_accepted(item):
    signed = signed_by_adyen_library(item)

    [event] = parse_adyen_notification(adyen_body(signed), [ADYEN_KEY])

    assert event.event_type == item["eventCode"]
    assert event.payload == {"live": "false", "NotificationRequestItem": signed}


@pytest.mark.parametrize("item", ADYEN_ITEMS.values(), ids=ADYEN_ITEMS.keys())
def test_our_adyen_signature_agrees_with_the_adyen_library(item):
    ours = signed_by_us(item)

    assert Adyen.util.is_valid_hmac_notification(notification(ours), ADYEN_KEY) is True
    assert ours["additionalData"] == {
        "hmacSignature": signed_by_adyen_library(item)["additionalData"]["hmacSignature"]
    }
    with_other_key = signed_by_us(item, key=ADYEN_OLD_KEY)
    assert Adyen.util.is_valid_hmac_notification(notification(with_other_key), ADYEN_KEY) is False


def test_adyen_lower_case_hex_key_is_the_same_key():
    item = adyen_item()
    assert adyen_signature(ADYEN_KEY.lower(), item) == adyen_signature(ADYEN_KEY, item)


def test_adyen_bad_second_item_refuses_the_whole_request_that_the_official_helper_accepts():
    good = signed_by_adyen_library(adyen_item())
    forged = signed_by_adyen_library(
        adyen_item(pspReference="8835511210681088", amount={"value": 999_999, "currency": "EUR"})
    )
    forged["amount"] = {"value": 1, "currency": "EUR"}
    document = notification(good, forged)

    # The pitfall the issue names: Adyen's helper looks at the first item only.
    assert Adyen.util.is_valid_hmac_notification(document, ADYEN_KEY) is True
    with pytest.raises(InvalidSignature, match=r"notificationItems\[1\]"):
        parse_adyen_notification(json.dumps(document).encode(), [ADYEN_KEY])


def test_adyen_every_item_of_a_valid_request_becomes_its_own_event():
    authorisation = signed_by_adyen_library(adyen_item())
    refund = signed_by_adyen_library(ADYEN_ITEMS["refund-with-original-reference"])

    events = parse_adyen_notification(adyen_body(authorisation, refund), [ADYEN_KEY])

    assert [event.provider_event_id for event in events] == [
        "8835511210681009:AUTHORISATION:true",
        "8835511210681077:REFUND:true",
    ]
    assert [event.payload["NotificationRequestItem"] for event in events] == [
        authorisation,
        refund,
    ]


@pytest.mark.parametrize(
    ("item", "event_id"),
    [
        (adyen_item(), "8835511210681009:AUTHORISATION:true"),
        (adyen_item(success="false"), "8835511210681009:AUTHORISATION:false"),
        (adyen_item(eventCode="CAPTURE"), "8835511210681009:CAPTURE:true"),
        (adyen_item(eventCode="CHARGEBACK", success=None), "8835511210681009:CHARGEBACK:"),
    ],
    ids=["authorised", "refused", "capture", "no-success-field"],
)
def test_adyen_event_id_is_psp_reference_event_code_and_success(item, event_id):
    [event] = parse_adyen_notification(adyen_body(signed_by_adyen_library(item)), [ADYEN_KEY])

    assert event.provider_event_id == event_id


def test_adyen_missing_optional_fields_sign_as_empty_strings():
    item = adyen_item(originalReference=None, merchantReference=None)

    assert signing_string(item) == "8835511210681009::AcmeECOM::2500:EUR:AUTHORISATION:true"
    assert adyen_signature(ADYEN_KEY, item) == adyen_signature(
        ADYEN_KEY, {**item, "originalReference": "", "merchantReference": ""}
    )
    parse_adyen_notification(adyen_body(signed_by_adyen_library(item)), [ADYEN_KEY])


def test_adyen_fields_are_joined_without_escaping():
    item = adyen_item(merchantReference="a:b\\c")

    assert signing_string(item) == "8835511210681009::AcmeECOM:a:b\\c:2500:EUR:AUTHORISATION:true"


@pytest.mark.parametrize("signing_key", [ADYEN_OLD_KEY, ADYEN_KEY])
def test_adyen_any_active_key_verifies_during_rotation(signing_key):
    body = adyen_body(signed_by_adyen_library(adyen_item(), key=signing_key))

    [event] = parse_adyen_notification(body, [ADYEN_OLD_KEY, ADYEN_KEY])

    assert event.provider_event_id == "8835511210681009:AUTHORISATION:true"


def _with_additional_data(additional: Any) -> dict[str, Any]:
    return {**adyen_item(), "additionalData": additional}


def _tampered(**fields: Any) -> dict[str, Any]:
    return signed_by_adyen_library(adyen_item()) | fields


@pytest.mark.parametrize(
    "item",
    [
        adyen_item(),
        _with_additional_data({}),
        _with_additional_data({"hmacSignature": ""}),
        _with_additional_data({"hmacSignature": None}),
        _with_additional_data("hmacSignature"),
        signed_by_adyen_library(adyen_item(), key=ADYEN_OLD_KEY),
        _tampered(amount={"value": 1, "currency": "EUR"}),
        _tampered(success="false"),
        _tampered(merchantReference="inv_2025_0002"),
        _tampered(originalReference="8835511210681000"),
    ],
    ids=[
        "no-additional-data",
        "no-hmac-signature",
        "empty-hmac-signature",
        "null-hmac-signature",
        "additional-data-not-an-object",
        "wrong-key",
        "tampered-amount",
        "tampered-success",
        "tampered-merchant-reference",
        "added-original-reference",
    ],
)
def test_adyen_unsigned_or_badly_signed_item_is_refused(item):
    with pytest.raises(InvalidSignature):
        parse_adyen_notification(adyen_body(item), [ADYEN_KEY])


@pytest.mark.parametrize(
    "document",
    [
        {"live": "false"},
        {"live": "false", "notificationItems": []},
        {"live": "false", "notificationItems": None},
        {"live": "false", "notificationItems": {"NotificationRequestItem": {}}},
        {"live": "false", "notificationItems": [{}]},
        {"live": "false", "notificationItems": ["item"]},
        notification(signed_by_adyen_library(adyen_item(pspReference=None))),
        notification(signed_by_adyen_library(adyen_item(eventCode=None))),
        notification(signed_by_adyen_library(adyen_item()), adyen_item(pspReference=None)),
        [notification(signed_by_adyen_library(adyen_item()))],
    ],
    ids=[
        "absent-items",
        "empty-items",
        "null-items",
        "items-not-a-list",
        "wrapper-without-item",
        "wrapper-not-an-object",
        "item-without-psp-reference",
        "item-without-event-code",
        "second-item-without-psp-reference",
        "top-level-array",
    ],
)
def test_adyen_notification_without_readable_items_is_malformed(document):
    with pytest.raises(MalformedPayload):
        parse_adyen_notification(json.dumps(document).encode(), [ADYEN_KEY])


# --- Standard Webhooks --------------------------------------------------------------------


def standard_payload(**data: Any) -> dict[str, Any]:
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


STANDARD_BODY_TEXT = json.dumps(standard_payload())
STANDARD_BODY = STANDARD_BODY_TEXT.encode()


@pytest.mark.parametrize(
    "payload",
    [
        standard_payload(),
        {
            **standard_payload(),
            "type": "payment.partially_refunded",
            "data": {**standard_payload()["data"], "amount_refunded": 500},
        },
        standard_payload(merchant_reference=None, customer=None, currency="jpy"),
        standard_payload(merchant_reference="Größe ☕", extra_field={"kept": True}),
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
        standard_payload()
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
    payload = copy.deepcopy(standard_payload())
    *parents, leaf = path.split(".")
    target = payload
    for name in parents:
        target = target[name]
    target[leaf] = value
    return payload


def _payload_without(path: str) -> dict[str, Any]:
    payload = copy.deepcopy(standard_payload())
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
        (_payload_with("type", "payment.exploded"), "type"),
        (_payload_with("type", "charge.succeeded"), "type"),
        (_payload_without("type"), "type"),
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
        "unknown-type",
        "stripe-type",
        "missing-type",
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


# --- Secret formats -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "secret"),
    [
        (check_stripe_secret, STRIPE_SECRET),
        (check_stripe_secret, "whsec_x"),
        (check_adyen_secret, ADYEN_KEY),
        (check_adyen_secret, ADYEN_KEY.lower()),
        (check_adyen_secret, "00"),
        (check_standard_secret, STANDARD_SECRET),
        (check_standard_secret, STANDARD_OLD_SECRET),
        (check_standard_secret, "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"),
    ],
    ids=[
        "stripe",
        "stripe-short",
        "adyen-upper-hex",
        "adyen-lower-hex",
        "adyen-one-byte",
        "standard-unpadded",
        "standard-padded",
        "standard-short",
    ],
)
def test_well_formed_secret_is_accepted(check, secret):
    check(secret)


@pytest.mark.parametrize(
    ("check", "secret"),
    [
        (check_stripe_secret, "whsec_"),
        (check_stripe_secret, "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
        (check_stripe_secret, "WHSEC_abc"),
        (check_stripe_secret, ""),
        (check_adyen_secret, ""),
        (check_adyen_secret, "ABC"),
        (check_adyen_secret, "0G"),
        (check_adyen_secret, "whsec_00"),
        (check_standard_secret, "whsec_"),
        (check_standard_secret, "whsec_!!!!"),
        (check_standard_secret, "whsec_a"),
        (check_standard_secret, "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"),
        (check_standard_secret, "whsec_c2VjcmV0"),
    ],
    ids=[
        "stripe-prefix-only",
        "stripe-api-key",
        "stripe-upper-case-prefix",
        "stripe-empty",
        "adyen-empty",
        "adyen-odd-length",
        "adyen-not-hex",
        "adyen-stripe-style",
        "standard-prefix-only",
        "standard-not-base64",
        "standard-truncated-base64",
        "standard-without-prefix",
        "standard-key-too-short",
    ],
)
def test_malformed_secret_is_refused(check, secret):
    with pytest.raises(ValidationFailed):
        check(secret)


# --- Reading JSON bodies ------------------------------------------------------------------


def _nested_objects(levels: int) -> bytes:
    return ('{"a": ' * levels + "1" + "}" * levels).encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe\x00{",
        '{"name": "café"}'.encode("latin-1"),
        b'{"id": "evt_1", "type": "charge.succeeded"',
        b"",
        b'[{"id": "evt_1"}]',
        b"42",
        b"[" * 10_000 + b"]" * 10_000,
        b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        _nested_objects(MAX_JSON_DEPTH + 1),
        b'{"amount": ' + b"9" * 5_000 + b"}",
    ],
    ids=[
        "not-utf8",
        "latin-1",
        "truncated",
        "empty",
        "array",
        "number",
        "array-nested-10000-deep",
        "object-holding-10000-deep-array",
        "objects-nested-beyond-limit",
        "integer-with-5000-digits",
    ],
)
def test_unreadable_json_is_malformed_payload(raw):
    with pytest.raises(MalformedPayload):
        parse_json_object(raw)


def test_json_object_within_the_depth_limit_is_read():
    document = parse_json_object(_nested_objects(MAX_JSON_DEPTH - 1))

    assert isinstance(document["a"], dict)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"amount": NaN}',
        b'{"amount": -Infinity}',
        b'{"note": "a\\u0000b"}',
        b'{"a\\u0000": 1}',
        b'{"note": "\\ud800"}',
        b'{"items": [{"note": "\\udfff"}]}',
    ],
    ids=["nan", "infinity", "nul-in-value", "nul-in-key", "lone-surrogate", "nested-surrogate"],
)
def test_json_that_postgresql_cannot_store_is_malformed_payload(raw):
    with pytest.raises(MalformedPayload):
        parse_json_object(raw)
