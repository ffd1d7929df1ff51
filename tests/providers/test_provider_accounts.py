"""Provider accounts over HTTP: registered, changed, secrets rotated and never shown again."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select, text

from shared.access.api_keys import create_api_key
from shared.models import ProviderAccount, SettingsLogEntry
from tests.support.checksums import database_checksum
from tests.support.factories import make_account, make_org
from tests.support.log_leaks import register_secret
from tests.support.signing import STRIPE_SECRET, stripe_event, stripe_request

ACCOUNTS = "/billing/provider-accounts"


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


@pytest.fixture
def org(session):
    return make_org(session)


@pytest.fixture
def headers(session, org):
    owner = create_api_key(session=session, org_id=org.id, role="owner", name="Olga")
    return {"Authorization": f"Bearer {owner.secret}"}


def settings_log_text(session) -> str:
    return session.scalar(text("SELECT coalesce(string_agg(t::text, '|'), '') FROM settings_log t"))


def test_a_registered_account_answers_its_generated_secret_once_and_then_a_fingerprint(
    client, session, headers
):
    created = client.post(ACCOUNTS, json={"provider": "stripe", "name": "EU"}, headers=headers)
    assert created.status_code == 201, created.json
    secret = register_secret(created.json["new_secret"])
    assert secret.startswith("whsec_")
    assert created.json["webhook_path"] == f"/webhooks/stripe/{created.json['id']}"
    assert created.json["merchant_reference_key"] == "external_id"
    [shown] = created.json["secrets"]
    assert shown["fingerprint"] == fingerprint(secret)
    assert shown["added_at"] is not None
    listed = client.get(ACCOUNTS, headers=headers)
    assert listed.status_code == 200
    [account] = listed.json["items"]
    assert "new_secret" not in account
    assert account["secrets"] == created.json["secrets"]
    assert secret not in listed.get_data(as_text=True)
    assert secret not in settings_log_text(session)
    assert fingerprint(secret) in settings_log_text(session)


def test_options_are_set_on_creation_for_the_provider_that_reads_them(client, headers):
    stripe = client.post(
        ACCOUNTS,
        json={"provider": "stripe", "merchant_reference_key": "order_id", "secret": STRIPE_SECRET},
        headers=headers,
    )
    assert stripe.status_code == 201
    assert stripe.json["merchant_reference_key"] == "order_id"
    assert stripe.json["new_secret"] is None  # provided, not generated: not echoed
    adyen = client.post(
        ACCOUNTS, json={"provider": "adyen", "manual_capture": True}, headers=headers
    )
    assert adyen.status_code == 201
    assert adyen.json["manual_capture"] is True


# (body, fields named)
INVALID_NEW = {
    "adyen-with-metadata-key": (
        {"provider": "adyen", "merchant_reference_key": "k"},
        {"merchant_reference_key"},
    ),
    "stripe-manual-capture": ({"provider": "stripe", "manual_capture": True}, {"manual_capture"}),
    "standard-both": (
        {"provider": "standard", "manual_capture": False, "merchant_reference_key": "k"},
        {"manual_capture", "merchant_reference_key"},
    ),
    "key-with-brackets": (
        {"provider": "stripe", "merchant_reference_key": "a[b]"},
        {"merchant_reference_key"},
    ),
    "key-too-long": (
        {"provider": "stripe", "merchant_reference_key": "k" * 41},
        {"merchant_reference_key"},
    ),
    "key-empty": ({"provider": "stripe", "merchant_reference_key": ""}, {"merchant_reference_key"}),
    "unknown-provider": ({"provider": "paypal"}, {"provider"}),
    "standard-payout-arrival": (
        {"provider": "standard", "payout_arrival_business_days": 3},
        {"payout_arrival_business_days"},
    ),
    "payout-arrival-over-30": (
        {"provider": "stripe", "payout_arrival_business_days": 31},
        {"payout_arrival_business_days"},
    ),
    "standard-fee-schedule": (
        {"provider": "standard", "fee_schedule": {"EUR": {"percent": 1}}},
        {"fee_schedule"},
    ),
    "fee-percent-over-100": (
        {"provider": "adyen", "fee_schedule": {"EUR": {"percent": 101}}},
        {"fee_schedule.EUR.percent"},
    ),
    "fee-currency-lowercase": (
        {"provider": "adyen", "fee_schedule": {"eur": {"percent": 1}}},
        {"fee_schedule.eur.[key]"},
    ),
    "fee-fixed-negative": (
        {"provider": "stripe", "fee_schedule": {"EUR": {"percent": 1, "fixed_minor": -1}}},
        {"fee_schedule.EUR.fixed_minor"},
    ),
    "bad-secret": ({"provider": "stripe", "secret": "not-a-stripe-secret"}, {"secret"}),
    "secret-with-newline": ({"provider": "stripe", "secret": "whsec_a\nb"}, {"secret"}),
    "active-text": ({"provider": "stripe", "active": "yes"}, {"active"}),
    "unknown-field": ({"provider": "stripe", "colour": "red"}, {"colour"}),
}


@pytest.mark.parametrize("case", INVALID_NEW)
def test_an_invalid_account_is_422_naming_each_field_and_nothing_is_written(
    client, session, headers, case
):
    body, fields = INVALID_NEW[case]
    before = database_checksum(session)
    response = client.post(ACCOUNTS, json=body, headers=headers)
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert {error["field"] for error in response.json["errors"]} == fields
    assert database_checksum(session) == before


def test_rotation_adds_a_secret_then_retires_the_old_one_but_never_the_last(
    client, session, org, headers
):
    account = make_account(session, org)
    session.flush()  # its log entries, before the requests' ones
    path = f"{ACCOUNTS}/{account.id}"
    added = client.patch(path, json={"add_secret": True}, headers=headers)
    assert added.status_code == 200, added.json
    new_secret = register_secret(added.json["new_secret"])
    assert [s["fingerprint"] for s in added.json["secrets"]] == [
        fingerprint(STRIPE_SECRET),
        fingerprint(new_secret),
    ]
    retired = client.patch(
        path, json={"retire_secret": fingerprint(STRIPE_SECRET)}, headers=headers
    )
    assert retired.status_code == 200
    assert retired.json["new_secret"] is None
    assert [s["fingerprint"] for s in retired.json["secrets"]] == [fingerprint(new_secret)]
    last = client.patch(path, json={"retire_secret": fingerprint(new_secret)}, headers=headers)
    assert last.status_code == 409
    unknown = client.patch(path, json={"retire_secret": "0badf00d"}, headers=headers)
    assert unknown.status_code == 422
    assert unknown.json["errors"][0]["field"] == "retire_secret"
    session.expire_all()
    assert session.get(ProviderAccount, account.id).signing_secrets == [new_secret]
    changes = session.scalars(
        select(SettingsLogEntry.new_value)
        .where(SettingsLogEntry.field == "signing_secret")
        .order_by(SettingsLogEntry.created_at)
    ).all()
    assert [c["change"] for c in changes] == ["secret added", "secret added", "secret retired"]
    assert new_secret not in settings_log_text(session)


def test_a_provided_secret_is_checked_by_the_provider(client, session, org, headers):
    account = make_account(session, org, "adyen")
    response = client.patch(
        f"{ACCOUNTS}/{account.id}", json={"add_secret": "whsec_not_hex"}, headers=headers
    )
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "add_secret"
    duplicate = client.patch(
        f"{ACCOUNTS}/{account.id}", json={"add_secret": account.signing_secrets[0]}, headers=headers
    )
    assert duplicate.status_code == 409


def test_an_option_change_is_logged_and_refused_for_a_provider_that_does_not_read_it(
    client, session, org, headers
):
    stripe, adyen = make_account(session, org), make_account(session, org, "adyen")
    changed = client.patch(
        f"{ACCOUNTS}/{stripe.id}", json={"merchant_reference_key": "order_ref"}, headers=headers
    )
    assert changed.status_code == 200
    entry = session.scalars(
        select(SettingsLogEntry)
        .where(SettingsLogEntry.field == "merchant_reference_key")
        .order_by(SettingsLogEntry.created_at.desc())
    ).first()
    assert (entry.subject, entry.old_value, entry.new_value) == (
        f"provider_account:{stripe.id}",
        "external_id",
        "order_ref",
    )
    refused = client.patch(
        f"{ACCOUNTS}/{adyen.id}", json={"merchant_reference_key": "order_ref"}, headers=headers
    )
    assert refused.status_code == 422
    assert refused.json["errors"] == [
        {
            "field": "merchant_reference_key",
            "message": "adyen accounts do not read merchant_reference_key",
        }
    ]


def test_a_fee_schedule_is_set_shown_logged_and_removed_with_null(client, session, org, headers):
    adyen = make_account(session, org, "adyen")
    body = {"fee_schedule": {"EUR": {"percent": 1.4, "fixed_minor": 25}}}
    changed = client.patch(f"{ACCOUNTS}/{adyen.id}", json=body, headers=headers)
    assert changed.status_code == 200, changed.json
    stored = {"EUR": {"percent": "1.4", "fixed_minor": 25, "tolerance_minor": 0}}
    assert changed.json["fee_schedule"] == stored
    removed = client.patch(f"{ACCOUNTS}/{adyen.id}", json={"fee_schedule": None}, headers=headers)
    assert removed.json["fee_schedule"] is None
    entries = session.scalars(
        select(SettingsLogEntry)
        .where(SettingsLogEntry.field == "fee_schedule")
        .order_by(SettingsLogEntry.created_at)
    ).all()
    assert [(e.old_value, e.new_value) for e in entries] == [(None, stored), (stored, None)]


def test_payout_arrival_days_default_to_two_and_are_changed_and_logged(
    client, session, org, headers
):
    stripe = make_account(session, org, "stripe")
    listed = client.get(ACCOUNTS, headers=headers).json["items"]
    assert [item["payout_arrival_business_days"] for item in listed] == [2]
    body = {"payout_arrival_business_days": 5}
    changed = client.patch(f"{ACCOUNTS}/{stripe.id}", json=body, headers=headers)
    assert changed.status_code == 200, changed.json
    assert changed.json["payout_arrival_business_days"] == 5
    session.refresh(stripe)
    assert stripe.payout_arrival_business_days == 5
    entries = session.scalars(
        select(SettingsLogEntry)
        .where(SettingsLogEntry.field == "payout_arrival_business_days")
        .order_by(SettingsLogEntry.created_at)
    ).all()
    assert (f"provider_account:{stripe.id}", 2, 5) in [
        (e.subject, e.old_value, e.new_value) for e in entries
    ]


@pytest.mark.parametrize(
    "body", [{}, {"active": None}, {"add_secret": False}, {"retire_secret": "XYZ"}]
)
def test_an_unusable_change_is_422(client, session, org, headers, body):
    account = make_account(session, org)
    before = database_checksum(session)
    response = client.patch(f"{ACCOUNTS}/{account.id}", json=body, headers=headers)
    assert response.status_code == 422
    assert database_checksum(session) == before


def test_a_manager_may_not_see_or_change_accounts(client, session, org):
    manager = create_api_key(session=session, org_id=org.id, role="manager")
    account = make_account(session, org)
    headers = {"Authorization": f"Bearer {manager.secret}"}
    assert client.get(ACCOUNTS, headers=headers).status_code == 403
    assert (
        client.patch(
            f"{ACCOUNTS}/{account.id}", json={"active": False}, headers=headers
        ).status_code
        == 403
    )


def test_a_deactivated_account_stops_receiving_webhooks_at_once_in_this_process(
    client, session, org, headers
):
    account = make_account(session, org)
    webhook = f"/webhooks/stripe/{account.id}"
    body, signed = stripe_request(stripe_event())
    assert (
        client.post(webhook, data=body, headers=signed, content_type="application/json").status_code
        == 200
    )
    assert (
        client.patch(
            f"{ACCOUNTS}/{account.id}", json={"active": False}, headers=headers
        ).status_code
        == 200
    )
    body, signed = stripe_request(stripe_event())
    assert (
        client.post(webhook, data=body, headers=signed, content_type="application/json").status_code
        == 404
    )
