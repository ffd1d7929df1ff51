"""Webhook ingestion over HTTP: every genuine event exactly once, nothing else, ever."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from shared.access.organizations import create_organization
from shared.access.settings_log import OPERATOR
from shared.models import ProviderAccount, ProviderEvent
from shared.providers.accounts import AccountChange, add_provider_account, change_provider_account
from tests.support.signing import (
    ADYEN_KEY,
    STANDARD_SECRET,
    STRIPE_SECRET,
    adyen_item,
    adyen_request,
    standard_payload,
    standard_request,
    stripe_event,
    stripe_request,
)

PROCESS_EVENT = "worker.tasks.process_event"


@dataclass
class Accounts:
    stripe: ProviderAccount
    adyen: ProviderAccount
    standard: ProviderAccount


@pytest.fixture
def accounts(session) -> Accounts:
    org = create_organization(session=session, name="Acme")
    return Accounts(
        stripe=add_provider_account(
            session=session, org_id=org.id, provider="stripe", secret=STRIPE_SECRET
        ),
        adyen=add_provider_account(
            session=session, org_id=org.id, provider="adyen", secret=ADYEN_KEY
        ),
        standard=add_provider_account(
            session=session, org_id=org.id, provider="standard", secret=STANDARD_SECRET
        ),
    )


def post(client, provider: str, account_id, body: bytes, headers: dict[str, str], **options):
    return client.post(
        f"/webhooks/{provider}/{account_id}",
        data=body,
        headers=headers,
        content_type=options.pop("content_type", "application/json"),
        **options,
    )


def stored_events(session) -> list[ProviderEvent]:
    session.expire_all()
    return list(session.scalars(select(ProviderEvent).order_by(ProviderEvent.received_at)))


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["status"] == status
    assert body["detail"]
    return body


def test_a_signed_stripe_event_is_stored_and_queued(client, session, accounts, published_tasks):
    event = stripe_event()
    body, headers = stripe_request(event)
    response = post(client, "stripe", accounts.stripe.id, body, headers)
    assert response.status_code == 200
    assert response.json == {"received": 1, "stored": 1, "duplicate": False}
    [stored] = stored_events(session)
    assert (stored.provider_event_id, stored.event_type, stored.state) == (
        event["id"],
        "payment_intent.succeeded",
        "pending",
    )
    assert stored.payload == event
    assert stored.signature_verified is True
    assert published_tasks == [(PROCESS_EVENT, [str(stored.id)])]


def test_duplicate_delivery_is_stored_once_and_queued_once(
    client, session, accounts, published_tasks
):
    body, headers = stripe_request(stripe_event())
    first = post(client, "stripe", accounts.stripe.id, body, headers)
    second = post(client, "stripe", accounts.stripe.id, body, headers)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json == {"received": 1, "stored": 0, "duplicate": True}
    assert len(stored_events(session)) == 1
    assert len(published_tasks) == 1


def test_adyen_items_are_each_stored_and_answered_accepted(
    client, session, accounts, published_tasks
):
    first, second = adyen_item(), adyen_item(event_code="CAPTURE")
    body, headers = adyen_request(first, second)
    response = post(client, "adyen", accounts.adyen.id, body, headers)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "[accepted]"
    ids = {event.provider_event_id for event in stored_events(session)}
    assert ids == {
        f"{first['pspReference']}:AUTHORISATION:true",
        f"{second['pspReference']}:CAPTURE:true",
    }
    assert len(published_tasks) == 2


def test_adyen_deduplicates_on_psp_reference_event_code_and_success(client, session, accounts):
    item = adyen_item()
    retried = dict(item, eventDate="2026-11-23T11:00:00+01:00")
    failed = dict(item, success="false")
    for notification in ((item,), (retried,), (failed,)):
        body, headers = adyen_request(*notification)
        assert post(client, "adyen", accounts.adyen.id, body, headers).status_code == 200
    assert len(stored_events(session)) == 2


def test_adyen_request_with_one_bad_item_is_refused_whole(
    client, session, accounts, published_tasks
):
    good = adyen_item()
    bad = dict(adyen_item(), additionalData={"hmacSignature": "Zm9yZ2Vk"})
    body, headers = adyen_request(good, bad)
    response = post(client, "adyen", accounts.adyen.id, body, headers)
    problem = assert_problem(response, 400)
    assert "notificationItems[1]" in problem["detail"]
    assert "[accepted]" not in response.get_data(as_text=True)
    assert stored_events(session) == []
    assert published_tasks == []


def test_standard_webhook_is_stored(client, session, accounts):
    body, headers = standard_request(standard_payload())
    response = post(client, "standard", accounts.standard.id, body, headers)
    assert response.status_code == 200
    [stored] = stored_events(session)
    assert stored.provider_event_id == headers["webhook-id"]
    assert stored.event_type == "payment.succeeded"


def test_standard_webhook_with_an_unknown_shape_is_refused_with_the_field(
    client, session, accounts
):
    body, headers = standard_request(standard_payload(amount=-5, currency="ZZZ"))
    response = post(client, "standard", accounts.standard.id, body, headers)
    problem = assert_problem(response, 422)
    fields = {error["field"] for error in problem["errors"]}
    assert {"data.amount", "data.currency"} <= fields
    assert stored_events(session) == []


def test_every_active_secret_verifies_during_rotation(client, session, accounts):
    new_secret = "whsec_rotated_secret_value"
    change_provider_account(
        session=session,
        account_id=accounts.stripe.id,
        change=AccountChange(add_secret=new_secret),
        actor=OPERATOR,
    )
    session.flush()
    for secret in (STRIPE_SECRET, new_secret):
        body, headers = stripe_request(stripe_event(), secret=secret)
        assert post(client, "stripe", accounts.stripe.id, body, headers).status_code == 200
    body, headers = stripe_request(stripe_event(), secret="whsec_never_configured")
    assert_problem(post(client, "stripe", accounts.stripe.id, body, headers), 400)
    assert len(stored_events(session)) == 2


def forged_stripe(accounts):
    body, _ = stripe_request(stripe_event())
    return accounts.stripe.id, body, {"Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"}


def tampered_stripe(accounts):
    body, headers = stripe_request(stripe_event(amount=100))
    return accounts.stripe.id, body.replace(b'"amount": 100', b'"amount": 1'), headers


def stale_stripe(accounts):
    return (accounts.stripe.id, *stripe_request(stripe_event(), timestamp=int(time.time()) - 600))


def future_stripe(accounts):
    return (accounts.stripe.id, *stripe_request(stripe_event(), timestamp=int(time.time()) + 600))


def unsigned_stripe(accounts):
    return accounts.stripe.id, stripe_request(stripe_event())[0], {}


def malformed_stripe(accounts):
    return (accounts.stripe.id, *stripe_request(b'{"id": "evt_1", "type": '))


def non_utf8_stripe(accounts):
    return (accounts.stripe.id, *stripe_request(b'{"id": "\xff\xfe"}'))


def stale_standard(accounts):
    old = int(time.time()) - 600
    return (accounts.standard.id, *standard_request(standard_payload(), timestamp=old))


def unsigned_standard(accounts):
    body, headers = standard_request(standard_payload())
    del headers["webhook-signature"]
    return accounts.standard.id, body, headers


@pytest.mark.parametrize(
    ("provider", "make"),
    [
        ("stripe", forged_stripe),
        ("stripe", tampered_stripe),
        ("stripe", stale_stripe),
        ("stripe", future_stripe),
        ("stripe", unsigned_stripe),
        ("stripe", malformed_stripe),
        ("stripe", non_utf8_stripe),
        ("standard", stale_standard),
        ("standard", unsigned_standard),
    ],
)
def test_unauthentic_or_unreadable_webhooks_are_refused_and_change_nothing(
    client, session, accounts, published_tasks, provider, make
):
    account_id, body, headers = make(accounts)
    assert_problem(post(client, provider, account_id, body, headers), 400)
    assert stored_events(session) == []
    assert published_tasks == []


def test_malformed_adyen_json_is_refused(client, session, accounts):
    assert_problem(post(client, "adyen", accounts.adyen.id, b"[accepted", {}), 400)
    assert_problem(post(client, "adyen", accounts.adyen.id, b'{"notificationItems": []}', {}), 400)
    assert stored_events(session) == []


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/stripe/00000000-0000-4000-8000-000000000000",
        "/webhooks/stripe/not-a-uuid",
        "/webhooks/paypal/00000000-0000-4000-8000-000000000000",
    ],
)
def test_unknown_endpoints_answer_404(client, accounts, path):
    body, headers = stripe_request(stripe_event())
    response = client.post(path, data=body, headers=headers, content_type="application/json")
    assert_problem(response, 404)


def test_an_account_only_answers_on_its_own_provider_path(client, session, accounts):
    body, headers = stripe_request(stripe_event())
    assert_problem(post(client, "standard", accounts.stripe.id, body, headers), 404)
    assert stored_events(session) == []


def test_an_inactive_account_answers_404(client, session, accounts):
    accounts.stripe.active = False
    session.flush()
    body, headers = stripe_request(stripe_event())
    assert_problem(post(client, "stripe", accounts.stripe.id, body, headers), 404)


def test_a_body_over_one_mebibyte_is_refused_with_413(client, session, accounts):
    event = stripe_event(description="x" * (1024 * 1024))
    body, headers = stripe_request(event)
    assert_problem(post(client, "stripe", accounts.stripe.id, body, headers), 413)
    assert stored_events(session) == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_body_that_is_not_json_is_refused_with_415(client, session, accounts, content_type):
    body, headers = stripe_request(stripe_event())
    response = post(client, "stripe", accounts.stripe.id, body, headers, content_type=content_type)
    assert_problem(response, 415)
    assert stored_events(session) == []


def test_secrets_and_signatures_never_reach_the_logs(client, accounts, caplog, capsys):
    body, headers = stripe_request(stripe_event())
    post(client, "stripe", accounts.stripe.id, body, headers)
    bad_headers = {"Stripe-Signature": headers["Stripe-Signature"].replace("v1=", "v1=00")}
    post(client, "stripe", accounts.stripe.id, body, bad_headers)
    signature = headers["Stripe-Signature"].split("v1=")[1]
    logged = caplog.text + capsys.readouterr().err
    assert '"stored": 1' in logged
    for secret in (STRIPE_SECRET, signature, ADYEN_KEY, STANDARD_SECRET):
        assert secret not in logged


def test_the_event_is_stored_as_sent_not_as_python_reread_it(client, session, accounts):
    """1.10 stays 1.10 and 0.1000000000000000000001 keeps its digits (a float has neither)."""
    body = json.dumps(stripe_event()).encode()
    exact = body.replace(b"{", b'{"exact": [1.10, 0.1000000000000000000001], ', 1)
    headers = stripe_request(exact)[1]
    assert post(client, "stripe", accounts.stripe.id, exact, headers).status_code == 200
    stored_text = session.scalar(select(ProviderEvent.payload["exact"].as_string()))
    assert stored_text == "[1.10, 0.1000000000000000000001]"


def test_the_event_body_is_the_verified_raw_body(client, session, accounts):
    """Verification happens on the raw bytes: re-serialised JSON would not verify."""
    event = stripe_event()
    compact = json.dumps(event, separators=(",", ":")).encode()
    body, headers = stripe_request(compact)
    spaced = json.dumps(event).encode()
    assert_problem(post(client, "stripe", accounts.stripe.id, spaced, headers), 400)
    assert post(client, "stripe", accounts.stripe.id, body, headers).status_code == 200
    assert session.scalar(select(func.count()).select_from(ProviderEvent)) == 1


def test_a_new_secret_works_at_once_and_a_removed_one_stops_within_the_cache_window(
    client, session, accounts, monkeypatch
):
    from shared.ingest import events as ingestion

    body, headers = stripe_request(stripe_event())
    assert post(client, "stripe", accounts.stripe.id, body, headers).status_code == 200
    rotated = "whsec_the_new_secret"
    accounts.stripe.signing_secrets = [rotated]
    session.flush()
    body, headers = stripe_request(stripe_event(), secret=rotated)
    assert post(client, "stripe", accounts.stripe.id, body, headers).status_code == 200
    monkeypatch.setattr(ingestion._accounts, "seconds", 0.0)
    ingestion.forget_cached_accounts()
    body, headers = stripe_request(stripe_event(), secret=STRIPE_SECRET)
    assert_problem(post(client, "stripe", accounts.stripe.id, body, headers), 400)
    assert len(stored_events(session)) == 2


@pytest.mark.parametrize(
    ("event_type", "data", "field"),
    [
        ("payment.refunded", {"amount": 100, "amount_refunded": 150}, "data"),
        ("payment.partially_refunded", {"amount": 100, "amount_refunded": 0}, "data"),
        ("payment.succeeded", {}, "timestamp"),
    ],
    ids=["refund-exceeds-amount", "partial-refund-of-nothing", "naive-timestamp"],
)
def test_standard_payloads_the_worker_could_not_use_are_refused_at_the_door(
    client, session, accounts, event_type, data, field
):
    payload = standard_payload(event_type, **data)
    if field == "timestamp":
        payload["timestamp"] = "2026-11-23T10:00:00"
    body, headers = standard_request(payload)
    problem = assert_problem(post(client, "standard", accounts.standard.id, body, headers), 422)
    assert field in {error["field"] for error in problem["errors"]}
    assert stored_events(session) == []
