"""Adyen: its item signatures against the Adyen library, every rejection path, its
secrets, and every mapping of its notifications (docs/design.md).

Pure functions only: no database, no HTTP.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import Adyen.util
import pytest

from shared.platform.errors import ValidationFailed
from shared.providers import Ignored, RecordUpdate
from shared.providers.adyen import (
    PROVIDER,
    adyen_signature,
    check_adyen_secret,
    normalise_adyen_item,
    parse_adyen_notification,
    signing_string,
)
from shared.providers.interface import AccountOptions
from shared.providers.webhook_input import (
    InvalidSignature,
    MalformedPayload,
)
from tests.support import signing
from tests.support.payloads import (
    DROP,
    EVENT_AT,
    assert_every_datetime_is_utc,
    with_fields,
)

ADYEN_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
ADYEN_OLD_KEY = "A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F90"


# --- Signatures ---------------------------------------------------------------------


def notification_item(**fields: Any) -> dict[str, Any]:
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
    "authorisation": notification_item(),
    "refund-with-original-reference": notification_item(
        pspReference="8835511210681077",
        originalReference="8835511210681009",
        eventCode="REFUND",
        amount={"value": 1000, "currency": "EUR"},
    ),
    "refused": notification_item(success="false", reason="Refused"),
    "no-original-reference": notification_item(originalReference=None),
    "no-merchant-reference": notification_item(merchantReference=None),
    "non-ascii-merchant-reference": notification_item(merchantReference="Bestellung-Größe-東京"),
    "zero-decimal-currency": notification_item(amount={"value": 2500, "currency": "JPY"}),
    "extra-additional-data": {**notification_item(), "additionalData": {"authCode": "046591"}},
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
    item = notification_item()
    assert adyen_signature(ADYEN_KEY.lower(), item) == adyen_signature(ADYEN_KEY, item)


def test_adyen_bad_second_item_refuses_the_whole_request_that_the_official_helper_accepts():
    good = signed_by_adyen_library(notification_item())
    forged = signed_by_adyen_library(
        notification_item(
            pspReference="8835511210681088", amount={"value": 999_999, "currency": "EUR"}
        )
    )
    forged["amount"] = {"value": 1, "currency": "EUR"}
    document = notification(good, forged)

    # The pitfall the issue names: Adyen's helper looks at the first item only.
    assert Adyen.util.is_valid_hmac_notification(document, ADYEN_KEY) is True
    with pytest.raises(InvalidSignature, match=r"notificationItems\[1\]"):
        parse_adyen_notification(json.dumps(document).encode(), [ADYEN_KEY])


def test_adyen_every_item_of_a_valid_request_becomes_its_own_event():
    authorisation = signed_by_adyen_library(notification_item())
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
        (notification_item(), "8835511210681009:AUTHORISATION:true"),
        (notification_item(success="false"), "8835511210681009:AUTHORISATION:false"),
        (notification_item(eventCode="CAPTURE"), "8835511210681009:CAPTURE:true"),
        (notification_item(eventCode="CHARGEBACK", success=None), "8835511210681009:CHARGEBACK:"),
    ],
    ids=["authorised", "refused", "capture", "no-success-field"],
)
def test_adyen_event_id_is_psp_reference_event_code_and_success(item, event_id):
    [event] = parse_adyen_notification(adyen_body(signed_by_adyen_library(item)), [ADYEN_KEY])

    assert event.provider_event_id == event_id


def test_adyen_missing_optional_fields_sign_as_empty_strings():
    item = notification_item(originalReference=None, merchantReference=None)

    assert signing_string(item) == "8835511210681009::AcmeECOM::2500:EUR:AUTHORISATION:true"
    assert adyen_signature(ADYEN_KEY, item) == adyen_signature(
        ADYEN_KEY, {**item, "originalReference": "", "merchantReference": ""}
    )
    parse_adyen_notification(adyen_body(signed_by_adyen_library(item)), [ADYEN_KEY])


def test_adyen_fields_are_joined_without_escaping():
    item = notification_item(merchantReference="a:b\\c")

    assert signing_string(item) == "8835511210681009::AcmeECOM:a:b\\c:2500:EUR:AUTHORISATION:true"


@pytest.mark.parametrize("signing_key", [ADYEN_OLD_KEY, ADYEN_KEY])
def test_adyen_any_active_key_verifies_during_rotation(signing_key):
    body = adyen_body(signed_by_adyen_library(notification_item(), key=signing_key))

    [event] = parse_adyen_notification(body, [ADYEN_OLD_KEY, ADYEN_KEY])

    assert event.provider_event_id == "8835511210681009:AUTHORISATION:true"


def _with_additional_data(additional: Any) -> dict[str, Any]:
    return {**notification_item(), "additionalData": additional}


def _tampered(**fields: Any) -> dict[str, Any]:
    return signed_by_adyen_library(notification_item()) | fields


@pytest.mark.parametrize(
    "item",
    [
        notification_item(),
        _with_additional_data({}),
        _with_additional_data({"hmacSignature": ""}),
        _with_additional_data({"hmacSignature": None}),
        _with_additional_data("hmacSignature"),
        signed_by_adyen_library(notification_item(), key=ADYEN_OLD_KEY),
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
        notification(signed_by_adyen_library(notification_item(pspReference=None))),
        notification(signed_by_adyen_library(notification_item(eventCode=None))),
        notification(
            signed_by_adyen_library(notification_item()), notification_item(pspReference=None)
        ),
        [notification(signed_by_adyen_library(notification_item()))],
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


# --- Secrets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(ADYEN_KEY, id="adyen-upper-hex"),
        pytest.param(ADYEN_KEY.lower(), id="adyen-lower-hex"),
        pytest.param("00", id="adyen-one-byte"),
    ],
)
def test_well_formed_adyen_secret_is_accepted(secret):
    check_adyen_secret(secret)


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("", id="adyen-empty"),
        pytest.param("ABC", id="adyen-odd-length"),
        pytest.param("0G", id="adyen-not-hex"),
        pytest.param("whsec_00", id="adyen-stripe-style"),
    ],
)
def test_malformed_adyen_secret_is_refused(secret):
    with pytest.raises(ValidationFailed):
        check_adyen_secret(secret)


# --- Notifications ------------------------------------------------------------------


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


def adyen_dispute(event_code: str, **overrides: Any) -> dict[str, Any]:
    """A dispute notification: its own pspReference, the payment in originalReference."""
    additional = {
        "chargebackReasonCode": " 4853",
        "defensePeriodEndsAt": "2026-12-14T11:00:00+01:00",
        "hmacSignature": "c2ln",
    } | overrides.pop("additionalData", {})
    return adyen_modification(
        event_code, amount={"value": 800, "currency": "EUR"}, additionalData=additional, **overrides
    )


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
# A modification states the currency of its amount (the payment's): it may arrive first.
ADYEN_MODIFICATION = RecordUpdate(provider_reference="PSP1", event_at=EVENT_AT, currency="EUR")
ADYEN_DISPUTE = replace(
    ADYEN_MODIFICATION,
    dispute_amount_minor=800,
    dispute_reason="4853",
    dispute_evidence_due_at=datetime(2026, 12, 14, 10, 0, tzinfo=UTC),
)


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
        adyen_item(additionalData={"recurring.shopperReference": "shopper_1"}),
        replace(ADYEN_PAYMENT, payment_status="succeeded"),
        "authorisation-recurring-shopper-reference",
    ),
    adyen_case(
        adyen_item(additionalData={"tokenization.shopperReference": "shopper_1"}),
        replace(ADYEN_PAYMENT, payment_status="succeeded"),
        "authorisation-tokenization-shopper-reference",
    ),
    adyen_case(
        adyen_item(
            additionalData={"shopperReference": "", "recurring.shopperReference": "shopper_1"}
        ),
        replace(ADYEN_PAYMENT, payment_status="succeeded"),
        "authorisation-empty-plain-shopper-reference-falls-through",
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
        adyen_modification("CAPTURE", amount=DROP),
        replace(ADYEN_MODIFICATION, payment_status="succeeded", currency=None),
        "capture-without-amount-states-no-currency",
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
        replace(ADYEN_MODIFICATION, refunds={"MOD1": 1000}),
        "full-refund",
    ),
    adyen_case(
        adyen_modification("REFUND", amount={"value": 250, "currency": "EUR"}),
        replace(ADYEN_MODIFICATION, refunds={"MOD1": 250}),
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
    *(
        adyen_case(
            adyen_dispute(code, additionalData=additional),
            replace(ADYEN_DISPUTE, dispute_status=status, dispute_provider_status=provider_status),
            f"{code.lower()}-{status}",
        )
        for code, additional, status, provider_status in [
            ("NOTIFICATION_OF_CHARGEBACK", {}, "open", "NOTIFICATION_OF_CHARGEBACK"),
            ("REQUEST_FOR_INFORMATION", {}, "open", "REQUEST_FOR_INFORMATION"),
            ("CHARGEBACK", {}, "open", "CHARGEBACK"),
            (
                "CHARGEBACK",
                {"disputeStatus": "Undefended"},
                "open",
                "CHARGEBACK/Undefended",
            ),
            ("CHARGEBACK", {"disputeStatus": "Accepted"}, "lost", "CHARGEBACK/Accepted"),
            ("INFORMATION_SUPPLIED", {}, "under_review", "INFORMATION_SUPPLIED"),
            (
                "DISPUTE_DEFENSE_PERIOD_ENDED",
                {},
                "under_review",
                "DISPUTE_DEFENSE_PERIOD_ENDED",
            ),
            (
                "DISPUTE_DEFENSE_PERIOD_ENDED",
                {"disputeStatus": "Undefended"},
                "lost",
                "DISPUTE_DEFENSE_PERIOD_ENDED/Undefended",
            ),
            ("CHARGEBACK_REVERSED", {"disputeStatus": "Won"}, "won", "CHARGEBACK_REVERSED/Won"),
            ("PREARBITRATION_WON", {}, "won", "PREARBITRATION_WON"),
            ("SECOND_CHARGEBACK", {"disputeStatus": "Lost"}, "lost", "SECOND_CHARGEBACK/Lost"),
            ("PREARBITRATION_LOST", {}, "lost", "PREARBITRATION_LOST"),
        ]
    ),
    adyen_case(
        adyen_dispute(
            "CHARGEBACK",
            reason="Payment.TxId=300000000524534724 dispute",
            additionalData={"chargebackReasonCode": " ", "defensePeriodEndsAt": ""},
        ),
        replace(
            ADYEN_DISPUTE,
            dispute_status="open",
            dispute_provider_status="CHARGEBACK",
            dispute_reason="Payment.TxId=300000000524534724 dispute",
            dispute_evidence_due_at=None,
        ),
        "chargeback-reason-from-the-item-when-no-reason-code",
    ),
]


@pytest.mark.parametrize(("item", "manual_capture", "expected"), ADYEN_CASES)
def test_adyen_notification_maps_to_record_update(item, manual_capture, expected):
    result = normalise_adyen_item(
        item["eventCode"], adyen_payload(item), manual_capture=manual_capture
    )
    assert result == [expected]


# --- Across event codes -------------------------------------------------------------


def test_adyen_retry_after_refusal_is_a_new_payment_with_the_same_merchant_reference():
    [refused] = normalise_adyen_item("AUTHORISATION", adyen_payload(adyen_item(success="false")))
    retry = adyen_item(pspReference="PSP2", eventDate="2026-11-23T11:01:00+01:00")
    [accepted] = normalise_adyen_item("AUTHORISATION", adyen_payload(retry))
    assert (refused.payment_status, accepted.payment_status) == ("failed", "succeeded")
    assert (refused.provider_reference, accepted.provider_reference) == ("PSP1", "PSP2")
    assert refused.merchant_reference == accepted.merchant_reference == "inv_1"
    assert accepted.event_at > refused.event_at


def test_adyen_manual_capture_is_pending_until_captured():
    manual = AccountOptions(manual_capture=True)
    [authorised] = PROVIDER.normalise("AUTHORISATION", adyen_payload(adyen_item()), manual)
    capture = adyen_modification("CAPTURE", eventDate="2026-11-23T12:00:00+01:00")
    [captured] = PROVIDER.normalise("CAPTURE", adyen_payload(capture), manual)
    assert (authorised.payment_status, captured.payment_status) == ("pending", "succeeded")
    assert authorised.provider_reference == captured.provider_reference


def test_every_adyen_datetime_is_utc():
    payload = adyen_payload(adyen_item(eventDate="2026-11-23T19:00:00+09:00"))
    [update] = normalise_adyen_item("AUTHORISATION", payload)
    assert_every_datetime_is_utc(update)


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        pytest.param(
            "REPORT_AVAILABLE",
            adyen_payload(adyen_item(eventCode="REPORT_AVAILABLE")),
            id="adyen-report",
        ),
        pytest.param("OFFER_CLOSED", {}, id="adyen-offer-closed-empty-payload"),
    ],
)
def test_unknown_adyen_event_code_is_ignored_with_a_reason(event_type, payload):
    result = normalise_adyen_item(event_type, payload)
    assert isinstance(result, Ignored)
    assert event_type in result.reason


@pytest.mark.parametrize("event_code", ["CANCELLATION", "REFUND"])
def test_adyen_refused_modification_is_ignored_with_a_reason(event_code):
    item = adyen_modification(event_code, success="false")
    result = normalise_adyen_item(event_code, adyen_payload(item))
    assert isinstance(result, Ignored)
    assert "refused by Adyen" in result.reason
    assert "MOD1" in result.reason


# --- Malformed notifications --------------------------------------------------------


def malformed(event_type: str, payload: dict[str, Any], field: str, case_id: str):
    return pytest.param(event_type, payload, field, id=case_id)


def adyen_malformed(item: dict[str, Any], field: str, case_id: str):
    return malformed(item["eventCode"], adyen_payload(item), field, f"adyen-{case_id}")


ITEM = "NotificationRequestItem"

MALFORMED_CASES = [
    malformed("AUTHORISATION", {"live": "false"}, ITEM, "adyen-no-item"),
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
        adyen_dispute("NOTIFICATION_OF_CHARGEBACK", originalReference=DROP),
        f"{ITEM}.originalReference",
        "dispute-without-original-reference",
    ),
    adyen_malformed(
        adyen_dispute("CHARGEBACK", additionalData={"defensePeriodEndsAt": "in two weeks"}),
        f"{ITEM}.additionalData.defensePeriodEndsAt",
        "dispute-bad-defense-period",
    ),
    adyen_malformed(
        adyen_dispute("CHARGEBACK", additionalData={"defensePeriodEndsAt": "2031-01-01T00:00:00Z"}),
        f"{ITEM}.additionalData.defensePeriodEndsAt",
        "dispute-defense-period-years-ahead",
    ),
    adyen_malformed(
        adyen_dispute("CHARGEBACK", additionalData={"disputeStatus": 7}),
        f"{ITEM}.additionalData.disputeStatus",
        "dispute-numeric-status",
    ),
    adyen_malformed(
        adyen_modification("REFUND", amount={"currency": "EUR"}),
        f"{ITEM}.amount.value",
        "refund-without-value",
    ),
]


@pytest.mark.parametrize(("event_type", "payload", "field"), MALFORMED_CASES)
def test_malformed_known_adyen_item_fails_naming_the_field(event_type, payload, field):
    with pytest.raises(ValidationFailed) as raised:
        normalise_adyen_item(event_type, payload)
    assert field in raised.value.detail


# --- Payloads exactly as ingestion stores them --------------------------------------


def test_adyen_item_as_ingested_is_normalised():
    item = signing.adyen_item()
    body, _ = signing.adyen_request(item)
    [verified] = parse_adyen_notification(body, [signing.ADYEN_KEY])
    [update] = normalise_adyen_item(verified.event_type, verified.payload)
    assert update.provider_reference == item["pspReference"]
    assert update.merchant_reference == item["merchantReference"]
    assert update.event_at == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert (update.payment_status, update.amount_minor, update.currency) == (
        "succeeded",
        1000,
        "EUR",
    )
