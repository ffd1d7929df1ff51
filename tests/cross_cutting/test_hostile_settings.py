"""Hostile input on the settings and provider-account surfaces: a 4xx problem+json,
never a 5xx, and nothing written (the shared assertions of test_hostile_input)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from shared.models import ProviderAccount, SettingsLogEntry
from tests.cross_cutting.test_hostile_input import SQL
from tests.support.factories import make_account, make_org

SETTINGS = "/billing/settings"
ACCOUNTS = "/billing/provider-accounts"
ESCAPE = "\x1b[31m"

UNREADABLE = [
    (b'{"paused": ', "application/json", 400),
    (b'{"timezone": "\xff"}', "application/json", 400),
    (b"[" * 10_000, "application/json", 400),
    (b'{"grace_period_seconds": NaN}', "application/json", 400),
    (b'{"timezone": "\\u0000"}', "application/json", 400),  # NUL: PostgreSQL cannot store it
    (b'{"provider": "stripe", "name": "eu\\u0000"}', "application/json", 400),
    (b"paused=true", "application/x-www-form-urlencoded", 415),
    (b'{"paused": true}', "text/plain", 415),
]

SETTINGS_VALUES = {
    "grace-10**30": {"grace_period_seconds": 10**30},
    "tolerance-negative": {"amount_tolerance_minor": -1},
    "percent-1e308": {"amount_tolerance_percent": 1e308},
    "percent-object": {"amount_tolerance_percent": {"value": 1}},
    "timezone-sql": {"timezone": SQL},
    "timezone-escape": {"timezone": f"UTC{ESCAPE}"},
    "timezone-list": {"timezone": ["UTC"]},
    "hour-text": {"daily_hour": "2"},
    "auto-fix-list": {"auto_fix": [True]},
    "array-body": [{"paused": True}],
    "string-body": "paused",
    "unknown-sql-key": {SQL: 1},
    "version-in-body": {"settings_version": 99},
}


def patch_settings(client, world, body=None, *, raw=None, content_type="application/json"):
    headers = {**world.headers, "If-Match": '"1"'}
    if raw is not None:
        return client.patch(SETTINGS, data=raw, content_type=content_type, headers=headers)
    return client.patch(SETTINGS, json=body, headers=headers)


@pytest.mark.parametrize(("raw", "content_type", "status"), UNREADABLE)
def test_a_settings_body_that_cannot_be_read_is_refused(
    client, world, refused, raw, content_type, status
):
    refused(lambda: patch_settings(client, world, raw=raw, content_type=content_type), status)


@pytest.mark.parametrize("case", SETTINGS_VALUES)
def test_unusable_settings_are_422(client, world, refused, case):
    refused(lambda: patch_settings(client, world, SETTINGS_VALUES[case]), 422)


@pytest.mark.parametrize("if_match", ['"abc"', 'W/"1"', "1; DROP", "9" * 20, "-1", ""])
def test_a_forged_if_match_on_the_settings_is_400(client, world, refused, if_match):
    headers = {**world.headers, "If-Match": if_match}
    refused(lambda: client.patch(SETTINGS, json={"paused": True}, headers=headers), 400)


NEW_ACCOUNTS = {
    "provider-sql": {"provider": SQL},
    "name-escape": {"provider": "stripe", "name": f"eu{ESCAPE}"},
    "name-newline": {"provider": "stripe", "name": "eu\nroot"},
    "name-too-long": {"provider": "stripe", "name": "n" * 201},
    "secret-huge": {"provider": "stripe", "secret": "whsec_" + "s" * 600},
    "secret-number": {"provider": "stripe", "secret": 12345},
    "key-sql": {"provider": "stripe", "merchant_reference_key": SQL},
    "key-unicode": {"provider": "stripe", "merchant_reference_key": "ключ"},
    "capture-text": {"provider": "adyen", "manual_capture": "true"},
    "no-provider": {"name": "eu"},
}


@pytest.mark.parametrize("case", NEW_ACCOUNTS)
def test_an_unusable_new_account_is_422(client, world, refused, case):
    refused(lambda: client.post(ACCOUNTS, json=NEW_ACCOUNTS[case], headers=world.headers), 422)


@pytest.mark.parametrize(("raw", "content_type", "status"), UNREADABLE)
def test_an_account_body_that_cannot_be_read_is_refused(
    client, world, refused, raw, content_type, status
):
    headers = world.headers
    refused(
        lambda: client.post(ACCOUNTS, data=raw, content_type=content_type, headers=headers), status
    )


ACCOUNT_CHANGES = {
    "add-secret-false": {"add_secret": False},
    "add-secret-number": {"add_secret": 1},
    "add-secret-sql": {"add_secret": SQL},
    "retire-sql": {"retire_secret": SQL},
    "retire-full-secret": {"retire_secret": "whsec_test_stripe_secret_value"},
    "active-null": {"active": None},
    "unknown": {"signing_secrets": []},
}


@pytest.mark.parametrize("case", ACCOUNT_CHANGES)
def test_an_unusable_account_change_is_422(client, world, refused, case):
    path = f"{ACCOUNTS}/{world.accounts['stripe'].id}"
    refused(lambda: client.patch(path, json=ACCOUNT_CHANGES[case], headers=world.headers), 422)


ACCOUNT_PATHS = {
    "not-a-uuid": f"{ACCOUNTS}/123",
    "sql-in-path": f"{ACCOUNTS}/1'%20OR%20'1'='1",
    "unknown-id": f"{ACCOUNTS}/{uuid.uuid4()}",
    "traversal": f"{ACCOUNTS}/..%2f..%2fetc%2fpasswd",
}


@pytest.mark.parametrize("case", ACCOUNT_PATHS)
def test_a_bad_or_unknown_account_id_is_404(client, world, refused, case):
    path, headers = ACCOUNT_PATHS[case], world.headers
    refused(lambda: client.patch(path, json={"active": False}, headers=headers), 404)


def test_another_organisations_account_is_404(client, session, world, refused):
    foreign = make_account(session, make_org(session))
    path = f"{ACCOUNTS}/{foreign.id}"
    refused(lambda: client.patch(path, json={"active": False}, headers=world.headers), 404)


def test_sql_in_an_account_name_is_stored_verbatim_and_executes_nothing(client, session, world):
    response = client.post(
        ACCOUNTS, json={"provider": "standard", "name": SQL}, headers=world.headers
    )
    assert response.status_code == 201, response.json
    account = session.get(ProviderAccount, uuid.UUID(response.json["id"]))
    assert account.name == SQL
    logged = session.scalars(
        select(SettingsLogEntry.new_value).where(SettingsLogEntry.field == "name")
    ).all()
    assert SQL in logged
