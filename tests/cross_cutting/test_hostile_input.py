"""Hostile input on every surface: a 4xx problem+json, never a 5xx, and nothing written.

Each surface has one table of cases. For every case the answer is a 4xx
``application/problem+json`` with a useful ``detail`` and no traceback, no task is
queued, and every table holds exactly what it held before (tests/support/checksums.py).

Two classes are deliberately not refused, each with its own test below:
- hostile-looking but legitimate text (SQL fragments in notes, identifiers, filters) is
  stored or matched verbatim and executes nothing;
- a *genuinely signed* Stripe or Adyen event with values this service cannot use is
  stored and then fails visibly in the worker (docs/decisions.md, "The Standard payload
  is validated at ingestion, Stripe and Adyen payloads are not"); without the signature
  the same bodies are refused at the door like everything else.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from shared.ingest.processing import process_provider_event
from shared.models import (
    Payment,
    ProviderEvent,
    ReconciliationActionLog,
)
from shared.platform.pagination import encode_cursor
from tests.support.checksums import TABLES, database_checksum, table_checksum
from tests.support.signing import (
    STRIPE_SECRET,
    adyen_item,
    adyen_request,
    standard_payload,
    standard_request,
    stripe_event,
    stripe_request,
)

MIB = 1024 * 1024
DISCREPANCIES = "/billing/reconciliation/discrepancies"
SQL = "x'; DROP TABLE payments; --"
SQL_OR = "open' OR '1'='1"
TODAY = datetime.now(UTC).date()


# --- webhooks -------------------------------------------------------------------------

PROVIDERS = ("stripe", "adyen", "standard")


def valid_body(provider: str) -> bytes:
    """A well-formed delivery body of ``provider`` (Adyen's items are signed inside)."""
    if provider == "stripe":
        return json.dumps(stripe_event()).encode()
    if provider == "standard":
        return json.dumps(standard_payload()).encode()
    return adyen_request(adyen_item())[0]


def signed_headers(provider: str, body: bytes) -> dict[str, str]:
    """Headers that make ``body`` authentic (Adyen signs inside the body instead)."""
    if provider == "stripe":
        return stripe_request(body)[1]
    if provider == "standard":
        return standard_request(body)[1]
    return {}


def with_number(provider: str, number: bytes) -> bytes:
    """A valid body whose payment amount is the JSON number text ``number``."""
    field = {"stripe": b'"amount": 2500', "standard": b'"amount": 1999', "adyen": b'"value": 1000'}
    body = valid_body(provider)
    assert field[provider] in body
    return body.replace(field[provider], field[provider].split(b":")[0] + b": " + number, 1)


def unreadable_bodies(provider: str) -> dict[str, bytes]:
    """Bodies no JSON reader should accept (each signed, so parsing is what refuses it)."""
    valid = valid_body(provider)
    return {
        "malformed": b'{"id": "evt_1", "type": }',
        "truncated": valid[: len(valid) // 2],
        "empty": b"",
        "not-utf-8": b'{"id": "\xff\xfe\xfd"}',
        "latin-1": '{"id": "caf\u00e9"}'.encode("latin-1"),
        "utf-16": valid.decode().encode("utf-16"),
        "array": b"[]",
        "scalar": b"42",
        "nested-arrays-10000": b"[" * 10_000 + b"]" * 10_000,
        "nested-objects-10000": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        "nan": b'{"id": NaN}',
        "infinity": b'{"id": -Infinity}',
        "amount-1e400": with_number(provider, b"1e400"),
        "amount-1e-20000": with_number(provider, b"1e-20000"),
        "5000-digit-number": b'{"id": ' + b"9" * 5000 + b"}",
        "nul-in-string": b'{"id": "a\\u0000b"}',
        "lone-surrogate": b'{"id": "\\ud800"}',
        "nul-in-key": b'{"a\\u0000": 1}',
    }


UNREADABLE_CASES = [
    (provider, name) for provider in PROVIDERS for name in unreadable_bodies(provider)
]


def post_webhook(client, world, provider, body: bytes, headers, content_type="application/json"):
    return client.post(
        f"/webhooks/{provider}/{world.accounts[provider].id}",
        data=body,
        headers=headers,
        content_type=content_type,
    )


@pytest.mark.parametrize(("provider", "case"), UNREADABLE_CASES)
def test_an_unreadable_webhook_body_is_400_even_when_signed(client, world, refused, provider, case):
    body = unreadable_bodies(provider)[case]
    headers = signed_headers(provider, body)
    refused(lambda: post_webhook(client, world, provider, body, headers), 400)


CONTENT_TYPES = [
    None,
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "application/jsonx",
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("content_type", CONTENT_TYPES, ids=str)
def test_a_webhook_that_is_not_declared_json_is_415(client, world, refused, provider, content_type):
    body = valid_body(provider)
    headers = signed_headers(provider, body)
    refused(lambda: post_webhook(client, world, provider, body, headers, content_type), 415)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_webhook_over_one_mebibyte_is_413(client, world, refused, provider):
    body = valid_body(provider)
    body = body[:-1] + b" " * (MIB + 1 - len(body)) + body[-1:]
    headers = signed_headers(provider, body)
    refused(lambda: post_webhook(client, world, provider, body, headers), 413)


NOW = int(datetime.now(UTC).timestamp())
STRIPE_SIGNATURES: dict[str, Callable[[bytes], dict[str, str]]] = {
    "missing": lambda body: {},
    "empty": lambda body: {"Stripe-Signature": ""},
    "garbage": lambda body: {"Stripe-Signature": "nonsense"},
    "wrong-secret": lambda body: stripe_request(body, secret="whsec_not_the_secret")[1],
    "timestamp-1970": lambda body: stripe_request(body, timestamp=0)[1],
    "timestamp-far-future": lambda body: stripe_request(body, timestamp=NOW + 10**9)[1],
    "timestamp-20-digits": lambda body: {"Stripe-Signature": f"t={10**19},v1=" + "0" * 64},
    "timestamp-negative": lambda body: {"Stripe-Signature": "t=-5,v1=" + "0" * 64},
    "two-timestamps": lambda body: {
        "Stripe-Signature": stripe_request(body)[1]["Stripe-Signature"] + f",t={NOW}"
    },
    "v1-not-hex": lambda body: {"Stripe-Signature": f"t={NOW},v1=zz\u00e9"},
    "v1-10-kb": lambda body: {"Stripe-Signature": f"t={NOW},v1=" + "a" * 10_240},
    "sql": lambda body: {"Stripe-Signature": f"t={NOW},v1={SQL}"},
}


@pytest.mark.parametrize("case", STRIPE_SIGNATURES)
def test_a_stripe_webhook_without_a_valid_fresh_signature_is_400(client, world, refused, case):
    body = valid_body("stripe")
    headers = STRIPE_SIGNATURES[case](body)
    problem = refused(lambda: post_webhook(client, world, "stripe", body, headers), 400)
    assert problem["title"] == "Invalid signature"


def standard_headers(body: bytes, **replace: str) -> dict[str, str]:
    return standard_request(body)[1] | replace


STANDARD_SIGNATURES: dict[str, Callable[[bytes], dict[str, str]]] = {
    "missing": lambda body: {},
    "wrong-secret": lambda body: standard_request(
        body, secret="whsec_" + base64.b64encode(b"another-key-of-24-bytes-x").decode()
    )[1],
    "timestamp-1970": lambda body: standard_request(body, timestamp=0)[1],
    "timestamp-far-future": lambda body: standard_request(body, timestamp=NOW + 10**9)[1],
    "timestamp-text": lambda body: standard_headers(body, **{"webhook-timestamp": "yesterday"}),
    "timestamp-exponent": lambda body: standard_headers(body, **{"webhook-timestamp": "1e10"}),
    "timestamp-negative": lambda body: standard_headers(body, **{"webhook-timestamp": "-1"}),
    "signature-not-base64": lambda body: standard_headers(
        body, **{"webhook-signature": "v1,not base64!"}
    ),
    "signature-other-id": lambda body: standard_headers(body, **{"webhook-id": "msg_other"}),
    "signature-sql": lambda body: standard_headers(body, **{"webhook-signature": SQL}),
}


@pytest.mark.parametrize("case", STANDARD_SIGNATURES)
def test_a_standard_webhook_without_a_valid_fresh_signature_is_400(client, world, refused, case):
    body = valid_body("standard")
    headers = STANDARD_SIGNATURES[case](body)
    refused(lambda: post_webhook(client, world, "standard", body, headers), 400)


def adyen_body(**item_changes) -> bytes:
    """An Adyen notification of one item, signed, then changed (breaking the signature)."""
    body = json.loads(adyen_request(adyen_item())[0])
    item = body["notificationItems"][0]["NotificationRequestItem"]
    for key, value in item_changes.items():
        if value is None:
            item.pop(key)
        else:
            item[key] = value
    return json.dumps(body).encode()


ADYEN_BODIES: dict[str, bytes] = {
    "no-items": b'{"live": "false", "notificationItems": []}',
    "items-not-a-list": b'{"live": "false", "notificationItems": {"a": 1}}',
    "item-not-an-object": b'{"live": "false", "notificationItems": [1]}',
    "item-without-request-item": b'{"live": "false", "notificationItems": [{"x": {}}]}',
    "request-item-a-list": b'{"notificationItems": [{"NotificationRequestItem": []}]}',
    "no-hmac": adyen_body(additionalData=None),
    "hmac-a-number": adyen_body(additionalData={"hmacSignature": 12345}),
    "additional-data-a-list": adyen_body(additionalData=["hmacSignature"]),
    "hmac-wrong": adyen_body(additionalData={"hmacSignature": "AAAA"}),
    "psp-reference-missing": adyen_body(pspReference=None),
    "psp-reference-a-number": adyen_body(pspReference=12345),
    "event-code-empty": adyen_body(eventCode=""),
    "value-changed-after-signing": adyen_body(amount={"value": 10**30, "currency": "EUR"}),
    "unsigned-sql": adyen_body(merchantReference=SQL),
}


@pytest.mark.parametrize("case", ADYEN_BODIES)
def test_an_adyen_notification_with_a_bad_structure_or_signature_is_400(
    client, world, refused, case
):
    body = ADYEN_BODIES[case]
    refused(lambda: post_webhook(client, world, "adyen", body, {}), 400)


STANDARD_VALUES = {
    "amount-10**30": {"amount": 10**30},
    "amount-2**63": {"amount": 2**63},
    "amount-negative": {"amount": -5},
    "amount-fraction": {"amount": 1.5},
    "amount-string": {"amount": "2500"},
    "amount-boolean": {"amount": True},
    "amount-null": {"amount": None},
    "refunded-negative": {"amount_refunded": -1},
    "currency-unknown": {"currency": "ABC"},
    "currency-without-minor-unit": {"currency": "XXX"},
    "currency-empty": {"currency": ""},
    "currency-a-number": {"currency": 978},
    "currency-sql": {"currency": SQL},
    "occurred-year-1": {"occurred_at": "0001-01-01T00:00:00Z"},
    "occurred-1999": {"occurred_at": "1999-12-31T23:59:59Z"},
    "occurred-year-9999": {"occurred_at": "9999-12-31T23:59:59Z"},
    "occurred-next-week": {"occurred_at": (datetime.now(UTC) + timedelta(days=7)).isoformat()},
    "occurred-garbage": {"occurred_at": "yesterday"},
    "occurred-unix-number": {"occurred_at": 10**12},
    "id-empty": {"id": ""},
    "id-too-long": {"id": "p" * 256},
}
STANDARD_DOCUMENTS = {
    "timestamp-year-1": {"timestamp": "0001-01-01T00:00:00+14:00"},
    "timestamp-year-9999": {"timestamp": "9999-12-31T23:59:59-14:00"},
    "timestamp-naive": {"timestamp": "2026-11-23T10:00:00"},
    "timestamp-garbage": {"timestamp": "2026-13-45T99:00:00Z"},
    "data-a-list": {"data": [1, 2]},
}


@pytest.mark.parametrize("case", [*STANDARD_VALUES, *STANDARD_DOCUMENTS])
def test_a_signed_standard_event_with_unusable_values_is_422_naming_the_field(
    client, world, refused, case
):
    payload = standard_payload()
    payload["data"] |= STANDARD_VALUES.get(case, {})
    payload |= STANDARD_DOCUMENTS.get(case, {})
    body, headers = standard_request(payload)
    problem = refused(lambda: post_webhook(client, world, "standard", body, headers), 422)
    assert problem["errors"], problem


@pytest.mark.parametrize("event_type", ["payment.stolen", SQL, "x" * 10_000])
def test_a_signed_standard_event_of_another_type_is_stored_and_ignored(
    client, session, world, event_type
):
    """Never refused (a sender disables an endpoint that keeps refusing); kept as text,
    processed as ignored, and nothing else changes."""
    body, headers = standard_request(standard_payload() | {"type": event_type})
    assert post_webhook(client, world, "standard", body, headers).status_code == 200
    event = session.scalars(
        select(ProviderEvent).where(
            ProviderEvent.provider_account_id == world.accounts["standard"].id
        )
    ).one()
    before = {
        table: table_checksum(session, table) for table in TABLES if table != "provider_events"
    }
    assert process_provider_event(session=session, event_id=event.id) == "processed"
    session.refresh(event)
    assert (event.event_type, event.state) == (event_type, "processed")
    assert event_type[:100] in event.ignored_reason
    after = {
        table: table_checksum(session, table) for table in TABLES if table != "provider_events"
    }
    assert after == before


# Values a genuine Stripe or Adyen event could in theory carry but this service cannot use.
IMPOSSIBLE_STRIPE = {
    "amount-10**30": ({"amount": 10**30}, "data.object.amount"),
    "amount-negative": ({"amount": -5}, "data.object.amount"),
    "amount-fraction": ({"amount": 1.5}, "data.object.amount"),
    "currency-unknown": ({"currency": "abc"}, "data.object.currency"),
    "created-1999": ({"created": 946_684_799}, "data.object.created"),
    "created-year-5000": ({"created": 95_617_584_000}, "data.object.created"),
    "created-year-10000": ({"created": 10**12}, "data.object.created"),
}
IMPOSSIBLE_ADYEN = {
    "value-10**30": ({"amount": {"value": 10**30, "currency": "EUR"}}, "amount.value"),
    "value-negative": ({"amount": {"value": -5, "currency": "EUR"}}, "amount.value"),
    "value-fraction": ({"amount": {"value": 1.5, "currency": "EUR"}}, "amount.value"),
    "currency-unknown": ({"amount": {"value": 100, "currency": "ABC"}}, "amount.currency"),
    "event-date-year-1": ({"eventDate": "0001-01-01T00:00:00+14:00"}, "eventDate"),
    "event-date-year-9999": ({"eventDate": "9999-12-31T23:59:59-14:00"}, "eventDate"),
    "event-date-garbage": ({"eventDate": "yesterday"}, "eventDate"),
    "success-maybe": ({"success": "maybe"}, "success"),
}


def impossible_delivery(provider: str, case: str) -> tuple[bytes, dict[str, str], str]:
    if provider == "stripe":
        changes, field = IMPOSSIBLE_STRIPE[case]
        event = stripe_event(**changes)
        return *stripe_request(event), field
    changes, field = IMPOSSIBLE_ADYEN[case]
    return *adyen_request(adyen_item() | changes), field


IMPOSSIBLE_CASES = [("stripe", case) for case in IMPOSSIBLE_STRIPE] + [
    ("adyen", case) for case in IMPOSSIBLE_ADYEN
]


@pytest.mark.parametrize(("provider", "case"), IMPOSSIBLE_CASES)
def test_impossible_values_are_refused_without_the_signature(
    client, world, refused, provider, case
):
    body, headers, _ = impossible_delivery(provider, case)
    if provider == "stripe":
        headers = stripe_request(body, secret=STRIPE_SECRET + "x")[1]
    else:
        document = json.loads(body)
        document["notificationItems"][0]["NotificationRequestItem"]["additionalData"] = {
            "hmacSignature": base64.b64encode(b"\0" * 32).decode()
        }
        body = json.dumps(document).encode()
    refused(lambda: post_webhook(client, world, provider, body, headers), 400)


@pytest.mark.parametrize(("provider", "case"), IMPOSSIBLE_CASES)
def test_a_signed_stripe_or_adyen_event_with_impossible_values_fails_visibly_in_the_worker(
    client, session, world, provider, case
):
    body, headers, field = impossible_delivery(provider, case)
    assert post_webhook(client, world, provider, body, headers).status_code == 200
    event = session.scalars(
        select(ProviderEvent).where(
            ProviderEvent.provider_account_id == world.accounts[provider].id
        )
    ).one()
    before = {
        table: table_checksum(session, table) for table in TABLES if table != "provider_events"
    }
    assert process_provider_event(session=session, event_id=event.id) == "failed"
    session.refresh(event)
    assert event.state == "failed"
    assert field in event.last_error
    after = {
        table: table_checksum(session, table) for table in TABLES if table != "provider_events"
    }
    assert after == before


# --- POST /billing/payments -----------------------------------------------------------

PAYMENTS = "/billing/payments"


def payment_item(**changes) -> dict:
    item = {
        "external_id": f"inv_{uuid.uuid4().hex[:8]}",
        "provider": "stripe",
        "provider_reference": "pi_1",
        "amount_minor": 2500,
        "currency": "EUR",
        "status": "succeeded",
        "occurred_at": "2026-11-20T10:00:00Z",
    }
    for key, value in changes.items():
        if value is ...:
            item.pop(key)
        else:
            item[key] = value
    return item


def payments_body(*items: dict) -> bytes:
    return json.dumps({"payments": list(items)}).encode()


def post_payments(client, world, body: bytes, content_type="application/json"):
    return client.post(PAYMENTS, data=body, headers=world.headers, content_type=content_type)


PAYMENT_REQUESTS: dict[str, tuple[bytes, int]] = {
    **{
        name: (body, 400)
        for name, body in unreadable_bodies("stripe").items()
        if name not in ("array", "scalar", "amount-1e400")
    },
    "amount-1e400": (payments_body(payment_item()).replace(b"2500", b"1e400"), 400),
    "array": (b"[]", 422),
    "scalar": (b"42", 422),
    "no-payments": (b"{}", 422),
    "payments-an-object": (b'{"payments": {"a": 1}}', 422),
    "payments-a-string": (b'{"payments": "all"}', 422),
    "payments-null": (b'{"payments": null}', 422),
    "unknown-field": (b'{"payments": [], "dry_run": true}', 422),
    "1001-items": (payments_body(*[payment_item() for _ in range(1001)]), 422),
    "nul-in-external-id": (payments_body(payment_item(external_id="a\u0000b")), 400),
}


@pytest.mark.parametrize("case", PAYMENT_REQUESTS)
def test_a_payments_request_that_cannot_be_read_is_refused_whole(client, world, refused, case):
    body, status = PAYMENT_REQUESTS[case]
    refused(lambda: post_payments(client, world, body), status)


@pytest.mark.parametrize("content_type", CONTENT_TYPES, ids=str)
def test_a_payments_request_not_declared_json_is_415(client, world, refused, content_type):
    body = payments_body(payment_item())
    refused(lambda: post_payments(client, world, body, content_type), 415)


def test_a_payments_request_over_one_mebibyte_is_413(client, world, refused):
    body = payments_body(payment_item())
    body = body[:-1] + b" " * (MIB + 1 - len(body)) + b"}"
    refused(lambda: post_payments(client, world, body), 413)


NEXT_WEEK = (datetime.now(UTC) + timedelta(days=7)).isoformat()
PAYMENT_ITEMS: dict[str, tuple[dict, str | None]] = {
    "amount-10**30": ({"amount_minor": 10**30}, "amount_minor"),
    "amount-2**63": ({"amount_minor": 2**63}, "amount_minor"),
    "amount-negative": ({"amount_minor": -5}, "amount_minor"),
    "amount-fraction": ({"amount_minor": 1.5}, "amount_minor"),
    "amount-whole-float": ({"amount_minor": 2500.0}, "amount_minor"),
    "amount-string": ({"amount_minor": "2500"}, "amount_minor"),
    "amount-boolean": ({"amount_minor": True}, "amount_minor"),
    "amount-missing": ({"amount_minor": ...}, "amount_minor"),
    "refunded-negative": ({"amount_refunded_minor": -1}, "amount_refunded_minor"),
    "refunded-above-amount": ({"amount_refunded_minor": 2501}, "amount_refunded_minor"),
    "currency-unknown": ({"currency": "ABC"}, "currency"),
    "currency-without-minor-unit": ({"currency": "XXX"}, "currency"),
    "currency-empty": ({"currency": ""}, "currency"),
    "currency-a-number": ({"currency": 978}, "currency"),
    "currency-sql": ({"currency": SQL}, "currency"),
    "occurred-year-1": ({"occurred_at": "0001-01-01T00:00:00Z"}, "occurred_at"),
    "occurred-year-1-ahead-of-utc": ({"occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at"),
    "occurred-1999": ({"occurred_at": "1999-12-31T23:59:59Z"}, "occurred_at"),
    "occurred-next-week": ({"occurred_at": NEXT_WEEK}, "occurred_at"),
    "occurred-year-9999": ({"occurred_at": "9999-12-31T23:59:59-14:00"}, "occurred_at"),
    "occurred-garbage": ({"occurred_at": "yesterday"}, "occurred_at"),
    "occurred-unix-number": ({"occurred_at": 1_700_000_000}, "occurred_at"),
    "occurred-naive": ({"occurred_at": "2026-11-20T10:00:00"}, "occurred_at"),
    "external-id-empty": ({"external_id": ""}, "external_id"),
    "external-id-too-long": ({"external_id": "x" * 256}, "external_id"),
    "external-id-padded": ({"external_id": " inv_1 "}, "external_id"),
    "external-id-escape": ({"external_id": "inv_\u001b[2J"}, "external_id"),
    "external-id-newline": ({"external_id": "inv_1\ninv_2"}, "external_id"),
    "external-id-a-number": ({"external_id": 12345}, "external_id"),
    "customer-bell": ({"customer_ref": "cus_\u0007"}, "customer_ref"),
    "reference-delete": ({"provider_reference": "pi_\u007f"}, "provider_reference"),
    "status-unknown": ({"status": "stolen"}, "status"),
    "status-sql": ({"status": SQL}, "status"),
    "provider-unknown": ({"provider": "paypal"}, "provider"),
    "unknown-field": ({"org_id": str(uuid.uuid4())}, "org_id"),
    "not-an-object": ({}, None),
}


@pytest.mark.parametrize("case", PAYMENT_ITEMS)
def test_an_unusable_payment_is_rejected_by_index_naming_the_field_and_nothing_is_written(
    client, session, world, published_tasks, case
):
    """Items are judged one by one (the route's documented contract): 200, item rejected."""
    changes, field = PAYMENT_ITEMS[case]
    item = "not an object" if field is None else payment_item(**changes)
    session.flush()
    before = database_checksum(session)
    response = post_payments(client, world, payments_body(item))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["created"] == response.json["updated"] == 0
    [rejected] = response.json["rejected"]
    assert rejected["index"] == 0
    assert {error["field"] for error in rejected["errors"]} == {field}
    assert all(len(error["message"]) >= 5 for error in rejected["errors"])
    assert database_checksum(session) == before
    assert published_tasks == []


def test_sql_in_payment_text_is_stored_verbatim_and_executes_nothing(client, session, world):
    item = payment_item(external_id=SQL, customer_ref="Robert'); DROP TABLE students;--")
    response = post_payments(client, world, payments_body(item))
    assert response.json["created"] == 1, response.json
    stored = session.scalars(select(Payment).where(Payment.external_id == SQL)).one()
    assert stored.customer_ref == "Robert'); DROP TABLE students;--"
    assert session.scalar(select(func.count()).select_from(Payment)) == 3


# --- triage actions -------------------------------------------------------------------


def act(client, world, method: str, suffix: str, body=None, *, raw=None, content_type=None):
    return client.open(
        f"{DISCREPANCIES}/{world.discrepancy.id}/{suffix}",
        method=method,
        headers=world.headers,
        data=raw if raw is not None else json.dumps(body).encode(),
        content_type=content_type or "application/json",
    )


ACTION_BODIES: dict[str, tuple[str, str, object, int]] = {
    "assign-empty": ("PATCH", "assign", {"assignee": ""}, 422),
    "assign-blank": ("PATCH", "assign", {"assignee": "   "}, 422),
    "assign-too-long": ("PATCH", "assign", {"assignee": "a" * 256}, 422),
    "assign-escape": ("PATCH", "assign", {"assignee": "ana\u001b[31m"}, 422),
    "assign-newline": ("PATCH", "assign", {"assignee": "ana\nroot"}, 422),
    "assign-c1-control": ("PATCH", "assign", {"assignee": "ana\u009b"}, 422),
    "assign-a-number": ("PATCH", "assign", {"assignee": 12345}, 422),
    "assign-null": ("PATCH", "assign", {"assignee": None}, 422),
    "assign-missing": ("PATCH", "assign", {}, 422),
    "assign-extra-field": ("PATCH", "assign", {"assignee": "bo", "status": "resolved"}, 422),
    "assign-a-list": ("PATCH", "assign", ["bo"], 422),
    "note-empty": ("POST", "notes", {"note": ""}, 422),
    "note-too-long": ("POST", "notes", {"note": "n" * 5001}, 422),
    "note-escape": ("POST", "notes", {"note": "see \u001b]0;owned\u0007 here"}, 422),
    "note-backspace": ("POST", "notes", {"note": "paid\u0008\u0008\u0008\u0008lost"}, 422),
    "note-a-list": ("POST", "notes", {"note": ["a"]}, 422),
    "resolve-system-code": (
        "PATCH",
        "resolve",
        {"resolution": "auto_resolved", "reason": "x"},
        422,
    ),
    "resolve-sql-code": ("PATCH", "resolve", {"resolution": SQL, "reason": "x"}, 422),
    "resolve-reason-too-long": (
        "PATCH",
        "resolve",
        {"resolution": "other", "reason": "r" * 2001},
        422,
    ),
    "resolve-reason-escape": (
        "PATCH",
        "resolve",
        {"resolution": "other", "reason": "done\u001b[2J"},
        422,
    ),
    "resolve-reference-newline": (
        "PATCH",
        "resolve",
        {"resolution": "other", "reason": "x", "adjustment_reference": "ADJ-1\nADJ-2"},
        422,
    ),
    "resolve-reference-too-long": (
        "PATCH",
        "resolve",
        {"resolution": "other", "reason": "x", "adjustment_reference": "A" * 256},
        422,
    ),
    "resolve-no-reason": ("PATCH", "resolve", {"resolution": "other"}, 422),
}


@pytest.mark.parametrize("case", ACTION_BODIES)
def test_a_triage_action_with_unusable_text_is_refused(client, world, refused, case):
    method, suffix, body, status = ACTION_BODIES[case]
    refused(lambda: act(client, world, method, suffix, body), status)


ACTION_ROUTES = [("PATCH", "assign"), ("POST", "notes"), ("PATCH", "resolve")]
ACTION_RAW: dict[str, tuple[bytes, int]] = {
    name: (body, 400)
    for name, body in unreadable_bodies("stripe").items()
    if name not in ("array", "scalar", "amount-1e400")
} | {
    "nul-in-note": (b'{"note": "a\\u0000b", "assignee": "a\\u0000b", "reason": "\\u0000"}', 400),
    "oversize": (b'{"note": "' + b"n" * (MIB + 1) + b'"}', 413),
}


@pytest.mark.parametrize(("method", "suffix"), ACTION_ROUTES)
@pytest.mark.parametrize("case", ACTION_RAW)
def test_a_triage_action_body_that_cannot_be_read_is_refused(
    client, world, refused, method, suffix, case
):
    raw, status = ACTION_RAW[case]
    refused(lambda: act(client, world, method, suffix, raw=raw), status)


@pytest.mark.parametrize(("method", "suffix"), ACTION_ROUTES)
@pytest.mark.parametrize("content_type", CONTENT_TYPES[1:], ids=str)
def test_a_triage_action_not_declared_json_is_415(
    client, world, refused, method, suffix, content_type
):
    body = {"assignee": "bo", "note": "n", "resolution": "other", "reason": "r"}
    refused(lambda: act(client, world, method, suffix, body, content_type=content_type), 415)


PATHS = {
    "not-a-uuid": f"{DISCREPANCIES}/123/acknowledge",
    "sql-in-path": f"{DISCREPANCIES}/1'%20OR%20'1'='1/acknowledge",
    "unknown-id": f"{DISCREPANCIES}/{uuid.uuid4()}/acknowledge",
    "traversal": f"{DISCREPANCIES}/..%2f..%2fetc%2fpasswd/acknowledge",
}


@pytest.mark.parametrize("case", PATHS)
def test_a_bad_or_unknown_discrepancy_id_is_404(client, world, refused, case):
    refused(lambda: client.patch(PATHS[case], headers=world.headers), 404)


def test_another_organisations_discrepancy_is_404(client, world, refused):
    path = f"{DISCREPANCIES}/{world.other_discrepancy.id}/acknowledge"
    refused(lambda: client.patch(path, headers=world.headers), 404)


@pytest.mark.parametrize("if_match", ['"abc"', 'W/"1"', "1; DROP", "9" * 20, "-1"])
def test_a_forged_if_match_is_400(client, world, refused, if_match):
    path = f"{DISCREPANCIES}/{world.discrepancy.id}/acknowledge"
    refused(lambda: client.patch(path, headers={**world.headers, "If-Match": if_match}), 400)


@pytest.mark.parametrize(
    ("method", "suffix", "body", "stored"),
    [
        ("PATCH", "assign", {"assignee": SQL}, SQL),
        ("POST", "notes", {"note": f"{SQL}\n\tsecond line"}, f"{SQL}\n\tsecond line"),
        ("PATCH", "resolve", {"resolution": "other", "reason": SQL}, SQL),
    ],
)
def test_sql_in_triage_text_is_stored_verbatim_and_executes_nothing(
    client, session, world, method, suffix, body, stored
):
    before = table_checksum(session, "payments")
    response = act(client, world, method, suffix, body)
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    entry = session.scalars(
        select(ReconciliationActionLog)
        .where(ReconciliationActionLog.discrepancy_id == world.discrepancy.id)
        .order_by(ReconciliationActionLog.created_at.desc())
    ).first()
    assert stored in entry.payload.values()
    assert table_checksum(session, "payments") == before


# --- listings: filters, page sizes, cursors -------------------------------------------

LIMITS = ["0", "-1", "501", str(10**20), "abc", "1.5", "", "1e3", "５"]


def garbage_cursors() -> dict[str, str]:
    def b64(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).decode().rstrip("=")

    return {
        "not-base64": "!!!",
        "base64-not-json": b64(b"\xff\x00garbage"),
        "json-object": b64(b'{"id": 1}'),
        "json-wrong-length": b64(b'["2026-11-23T00:00:00+00:00"]'),
        "json-numbers": b64(b"[1, 2]"),
        "naive-time": b64(json.dumps(["2026-11-23T00:00:00", str(uuid.uuid4())]).encode()),
        "bad-uuid": b64(json.dumps(["2026-11-23T00:00:00+00:00", "1' OR '1'='1"]).encode()),
        "sql": SQL_OR,
        "nul": "YQ\u0000",
        "non-ascii": "é" * 10,
    }


LISTINGS = {
    "discrepancies": DISCREPANCIES,
    "runs": "/billing/reconciliation/runs",
    "events": "/billing/webhooks/events",
    "settings-history": "/billing/settings/history",
}
EVERY_LISTING: dict[str, tuple[list[tuple[str, str]], int]] = {
    **{f"limit-{limit or 'empty'}": ([("limit", limit)], 422) for limit in LIMITS},
    **{f"cursor-{name}": ([("cursor", cursor)], 400) for name, cursor in garbage_cursors().items()},
    "cursor-too-long": ([("cursor", "A" * 513)], 422),
    "unknown-parameter": ([("page", "2")], 422),
}
FILTERS: dict[str, tuple[str, list[tuple[str, str]], int]] = {
    "state-unknown": ("events", [("state", "bogus")], 422),
    "state-sql": ("events", [("state", SQL_OR)], 422),
    "status-unknown": ("discrepancies", [("status", "bogus")], 422),
    "status-sql": ("discrepancies", [("status", SQL_OR)], 422),
    "status-twice": ("discrepancies", [("status", "open"), ("status", "resolved")], 422),
    "type-unknown": ("discrepancies", [("type", "Fraud")], 422),
    "severity-unknown": ("discrepancies", [("severity", "critical")], 422),
    "sort-unknown": ("discrepancies", [("sort", "id")], 422),
    "sort-sql": ("discrepancies", [("sort", SQL)], 422),
    "run-id-a-number": ("discrepancies", [("run_id", "42")], 422),
    "run-id-sql": ("discrepancies", [("run_id", SQL)], 422),
    "currency-two-letters": ("discrepancies", [("currency", "EU")], 422),
    "currency-quote": ("discrepancies", [("currency", "E'R")], 422),
    "min-amount-negative": ("discrepancies", [("min_amount", "-1")], 422),
    "min-amount-10**20": ("discrepancies", [("min_amount", str(10**20))], 422),
    "min-amount-text": ("discrepancies", [("min_amount", "abc")], 422),
    "assignee-empty": ("discrepancies", [("assignee", "")], 422),
    "assignee-too-long": ("discrepancies", [("assignee", "a" * 256)], 422),
    "assignee-nul": ("discrepancies", [("assignee", "ana\x00")], 422),
    "assignee-escape": ("discrepancies", [("assignee", "ana\x1b[31m")], 422),
    "assignee-newline": ("discrepancies", [("assignee", "ana\nroot")], 422),
    "since-text": ("discrepancies", [("since", "yesterday")], 422),
    "since-month-13": ("discrepancies", [("since", "2026-13-45T00:00:00Z")], 422),
    "since-naive": ("discrepancies", [("since", "2026-11-23T00:00:00")], 422),
    "since-sql": ("discrepancies", [("since", SQL)], 422),
    "until-garbage": ("discrepancies", [("until", "1700000000x")], 422),
    "until-nul": ("discrepancies", [("until", "\x00")], 422),
}
LISTING_CASES = [
    (listing, case, params, status)
    for listing in LISTINGS
    for case, (params, status) in EVERY_LISTING.items()
] + [(listing, case, params, status) for case, (listing, params, status) in FILTERS.items()]


@pytest.mark.parametrize(
    ("listing", "case", "params", "status"),
    LISTING_CASES,
    ids=[f"{listing}-{case}" for listing, case, _, _ in LISTING_CASES],
)
def test_a_listing_query_that_is_out_of_range_or_forged_is_refused(
    client, world, refused, listing, case, params, status
):
    query = MultiDict(params)
    refused(
        lambda: client.get(LISTINGS[listing], query_string=query, headers=world.headers), status
    )


def test_an_amount_cursor_beyond_bigint_is_400(client, world, refused):
    cursor = encode_cursor(2, 10**30, uuid.uuid4())
    path = f"{DISCREPANCIES}?sort=amount&cursor={cursor}"
    refused(lambda: client.get(path, headers=world.headers), 400)


def test_another_organisations_cursor_is_only_a_position_in_ones_own_list(client, session, world):
    """A cursor is a position, not a capability: one built from another organisation's row
    pages through the caller's own discrepancies and reveals nothing of the other's."""
    other = world.other_discrepancy
    cursor = encode_cursor(1, other.opened_at + timedelta(seconds=1), other.id)
    response = client.get(f"{DISCREPANCIES}?cursor={cursor}", headers=world.headers)
    assert response.status_code == 200
    assert [item["id"] for item in response.json["items"]] == [str(world.discrepancy.id)]


def test_sql_and_far_dates_in_filters_match_nothing_and_change_nothing(client, session, world):
    session.flush()
    before = database_checksum(session)
    for query, listed in (
        ({"assignee": SQL}, []),
        ({"since": "9999-12-31T23:59:59-14:00"}, []),
        (
            {"since": "0001-01-01T00:00:00+14:00", "until": "9999-12-31T23:59:59-14:00"},
            [str(world.discrepancy.id)],
        ),
    ):
        response = client.get(DISCREPANCIES, query_string=query, headers=world.headers)
        assert response.status_code == 200, (query, response.get_data(as_text=True))
        assert [item["id"] for item in response.json["items"]] == listed
    assert database_checksum(session) == before


@pytest.mark.parametrize("query", ["format=pdf", f"format={SQL}", "format=markdown&x=1"])
def test_a_bad_report_query_is_422(client, world, refused, query):
    path = f"/billing/reconciliation/runs/{world.run.id}/report?{query}"
    refused(lambda: client.get(path, headers=world.headers), 422)


# --- POST /billing/reconciliation/runs/trigger ----------------------------------------

TRIGGER = "/billing/reconciliation/runs/trigger"
DAY = (TODAY - timedelta(days=1)).isoformat()
TRIGGER_BODIES: dict[str, object] = {
    "date-not-a-date": {"date": "yesterday"},
    "date-february-30": {"date": "2026-02-30"},
    "date-a-number": {"date": 20261101},
    "date-empty": {"date": ""},
    "date-null": {"date": None},
    "date-sql": {"date": SQL},
    "date-year-1": {"date": "0001-01-01"},
    "date-1999": {"date": "1999-12-31"},
    "date-next-week": {"date": (TODAY + timedelta(days=7)).isoformat()},
    "date-year-9999": {"date": "9999-12-31"},
    "start-after-end": {"period_start": DAY, "period_end": "2026-01-01"},
    "period-367-days": {
        "period_start": (TODAY - timedelta(days=367)).isoformat(),
        "period_end": DAY,
    },
    "period-from-2000": {"period_start": "2000-01-01", "period_end": DAY},
    "period-to-9999": {"period_start": DAY, "period_end": "9999-12-31"},
    "period-half": {"period_start": DAY},
    "date-and-period": {"date": DAY, "period_start": DAY, "period_end": DAY},
    "verification-a-string": {"date": DAY, "is_verification_run": "maybe"},
    "unknown-field": {"date": DAY, "org_id": str(uuid.uuid4())},
    "empty-object": {},
    "a-list": [DAY],
    "dry-run-a-string": {"date": DAY, "dry_run": "yes"},
    "settings-without-dry-run": {"date": DAY, "settings": {"amount_tolerance_minor": 50}},
    "dry-run-settings-empty": {"date": DAY, "dry_run": True, "settings": {}},
    "dry-run-settings-unknown": {"date": DAY, "dry_run": True, "settings": {"fee": 1}},
    "dry-run-tolerance-negative": {
        "date": DAY, "dry_run": True, "settings": {"amount_tolerance_minor": -1}
    },
    "dry-run-timezone-sql": {"date": DAY, "dry_run": True, "settings": {"timezone": SQL}},
    "dry-run-period-367-days": {
        "period_start": (TODAY - timedelta(days=367)).isoformat(), "period_end": DAY,
        "dry_run": True,
    },
}  # fmt: skip


@pytest.mark.parametrize("case", TRIGGER_BODIES)
def test_a_run_trigger_with_bad_dates_is_422(client, world, refused, case):
    body = TRIGGER_BODIES[case]
    refused(lambda: client.post(TRIGGER, json=body, headers=world.headers), 422)


@pytest.mark.parametrize(
    ("raw", "content_type", "status"),
    [
        (b'{"date": ', "application/json", 400),
        (b'{"date": "\xff"}', "application/json", 400),
        (b"[" * 10_000, "application/json", 400),
        (b"date=2026-11-01", "application/x-www-form-urlencoded", 415),
        (b'{"date": "2026-11-01"}', "text/plain", 415),
    ],
)
def test_a_run_trigger_body_that_cannot_be_read_is_refused(
    client, world, refused, raw, content_type, status
):
    refused(
        lambda: client.post(TRIGGER, data=raw, content_type=content_type, headers=world.headers),
        status,
    )


def test_the_plausible_window_admits_today_and_yesterday(client, world):
    for day in (TODAY, date.fromisoformat(DAY)):
        response = client.post(TRIGGER, json={"date": day.isoformat()}, headers=world.headers)
        assert response.status_code in (200, 202), response.json
