"""Organisation settings: read and changed over HTTP, versioned, validated, logged."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from shared.access.api_keys import create_api_key
from shared.access.settings import (
    SettingsChange,
    apply_settings_change,
    effective_match_settings,
    parse_assignments,
)
from shared.access.settings_log import OPERATOR
from shared.models import Organization, SettingsLogEntry
from shared.platform.errors import PreconditionFailed, ValidationFailed
from tests.support.checksums import database_checksum
from tests.support.factories import make_org

SETTINGS = "/billing/settings"


def auth(secret: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **more}


@pytest.fixture
def org(session):
    return make_org(session)


@pytest.fixture
def owner(session, org):
    return create_api_key(session=session, org_id=org.id, role="owner", name="Olga (owner)")


@pytest.fixture
def manager(session, org):
    return create_api_key(session=session, org_id=org.id, role="manager", name="Ana (finance)")


def log_of(session, org) -> list[SettingsLogEntry]:
    query = select(SettingsLogEntry).where(SettingsLogEntry.org_id == org.id)
    return list(session.scalars(query.order_by(SettingsLogEntry.created_at)))


def reloaded(session, org) -> Organization:
    session.expire_all()
    return session.get(Organization, org.id)


def test_owner_and_manager_read_the_settings_with_the_version_as_etag(client, owner, manager):
    for key in (owner, manager):
        response = client.get(SETTINGS, headers=auth(key.secret))
        assert response.status_code == 200
        assert response.headers["ETag"] == '"1"'
        assert response.json == {
            "grace_period_seconds": 3600,
            "amount_tolerance_minor": 0,
            "amount_tolerance_percent": 0.0,
            "heuristic_window_seconds": 900,
            "duplicate_window_seconds": 600,
            "auto_fix": None,
            "paused": False,
            "timezone": "UTC",
            "daily_hour": 2,
            "settlement_delay_days": {},
            "settings_version": 1,
        }


def test_a_change_applies_bumps_the_version_and_logs_each_changed_field(
    client, session, org, owner
):
    body = {"grace_period_seconds": 600, "amount_tolerance_percent": 0.5, "daily_hour": 2}
    response = client.patch(SETTINGS, json=body, headers=auth(owner.secret, **{"If-Match": '"1"'}))
    assert response.status_code == 200, response.json
    assert response.headers["ETag"] == '"2"'
    assert response.json["grace_period_seconds"] == 600
    assert response.json["amount_tolerance_percent"] == 0.5
    stored = reloaded(session, org)
    assert (stored.grace_period_seconds, stored.settings_version) == (600, 2)
    assert stored.amount_tolerance_percent == Decimal("0.5")
    entries = log_of(session, org)
    # daily_hour was sent with its current value: not a change, not logged.
    assert {(e.field, e.old_value, e.new_value) for e in entries} == {
        ("grace_period_seconds", 3600, 600),
        ("amount_tolerance_percent", 0.0, 0.5),
    }
    assert {(e.subject, e.actor, e.actor_name) for e in entries} == {
        ("organization", str(owner.api_key.id), "Olga (owner)")
    }


def test_the_settlement_delay_per_provider_is_a_setting_logged_like_the_others(
    client, session, org, owner
):
    body = {"settlement_delay_days": {"adyen": 2, "paypal": 5}}
    response = client.patch(SETTINGS, json=body, headers=auth(owner.secret, **{"If-Match": "1"}))
    assert response.status_code == 200, response.json
    assert response.json["settlement_delay_days"] == {"adyen": 2, "paypal": 5}
    assert reloaded(session, org).settlement_delay_days == {"adyen": 2, "paypal": 5}
    assert [(e.field, e.old_value, e.new_value) for e in log_of(session, org)] == [
        ("settlement_delay_days", {}, {"adyen": 2, "paypal": 5})
    ]


def test_a_change_that_changes_nothing_keeps_the_version_and_logs_nothing(
    client, session, org, owner
):
    response = client.patch(
        SETTINGS, json={"paused": False}, headers=auth(owner.secret, **{"If-Match": "1"})
    )
    assert response.status_code == 200
    assert response.headers["ETag"] == '"1"'
    assert log_of(session, org) == []


def test_a_manager_may_not_change_the_settings(client, session, manager):
    before = database_checksum(session)
    response = client.patch(
        SETTINGS, json={"paused": True}, headers=auth(manager.secret, **{"If-Match": '"1"'})
    )
    assert response.status_code == 403
    assert database_checksum(session) == before


@pytest.mark.parametrize(
    ("if_match", "status"),
    [(None, 428), ("*", 428), ('"2"', 412), ("0", 412), ('W/"1"', 400), ("one", 400)],
)
def test_a_change_without_the_current_version_is_refused_and_changes_nothing(
    client, session, owner, if_match, status
):
    headers = (
        auth(owner.secret) if if_match is None else auth(owner.secret, **{"If-Match": if_match})
    )
    before = database_checksum(session)
    response = client.patch(SETTINGS, json={"paused": True}, headers=headers)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert "If-Match" in response.json["detail"] or "version" in response.json["detail"]
    assert database_checksum(session) == before


def test_two_edits_from_the_same_version_the_second_is_412(client, session, org, owner):
    headers = auth(owner.secret, **{"If-Match": '"1"'})
    assert client.patch(SETTINGS, json={"daily_hour": 5}, headers=headers).status_code == 200
    second = client.patch(SETTINGS, json={"daily_hour": 6}, headers=headers)
    assert second.status_code == 412
    assert reloaded(session, org).daily_hour == 5


# (body, the fields the problem must name)
INVALID_CHANGES = {
    "empty": ({}, {"body"}),  # names no setting
    "grace-over-30-days": ({"grace_period_seconds": 30 * 86_400 + 1}, {"grace_period_seconds"}),
    "grace-negative": ({"grace_period_seconds": -1}, {"grace_period_seconds"}),
    "grace-null": ({"grace_period_seconds": None}, {"grace_period_seconds"}),
    "grace-text": ({"grace_period_seconds": "600"}, {"grace_period_seconds"}),
    "grace-float": ({"grace_period_seconds": 1.5}, {"grace_period_seconds"}),
    "tolerance-huge": ({"amount_tolerance_minor": 10**16}, {"amount_tolerance_minor"}),
    "percent-over-100": ({"amount_tolerance_percent": 100.01}, {"amount_tolerance_percent"}),
    "percent-negative": ({"amount_tolerance_percent": -0.5}, {"amount_tolerance_percent"}),
    "percent-text": ({"amount_tolerance_percent": "0.5"}, {"amount_tolerance_percent"}),
    "percent-bool": ({"amount_tolerance_percent": True}, {"amount_tolerance_percent"}),
    "percent-5-decimals": ({"amount_tolerance_percent": 0.00001}, {"amount_tolerance_percent"}),
    "window-over-a-day": ({"heuristic_window_seconds": 86_401}, {"heuristic_window_seconds"}),
    "duplicate-window": ({"duplicate_window_seconds": -5}, {"duplicate_window_seconds"}),
    "auto-fix-text": ({"auto_fix": "yes"}, {"auto_fix"}),
    "paused-number": ({"paused": 1}, {"paused"}),
    "paused-null": ({"paused": None}, {"paused"}),
    "timezone-unknown": ({"timezone": "Mars/Olympus"}, {"timezone"}),
    "timezone-path": ({"timezone": "../../etc/passwd"}, {"timezone"}),
    "timezone-long": ({"timezone": "Europe/" + "x" * 100}, {"timezone"}),
    "hour-24": ({"daily_hour": 24}, {"daily_hour"}),
    "delay-unknown-provider": (
        {"settlement_delay_days": {"standard": 2}},
        {"settlement_delay_days.standard.[key]"},
    ),
    "delay-over-60": ({"settlement_delay_days": {"adyen": 61}}, {"settlement_delay_days.adyen"}),
    "delay-text": ({"settlement_delay_days": {"stripe": "2"}}, {"settlement_delay_days.stripe"}),
    "delay-null": ({"settlement_delay_days": None}, {"settlement_delay_days"}),
    "unknown-field": ({"grace_period": 60}, {"grace_period"}),
    "several": (
        {"daily_hour": -1, "timezone": "Nowhere", "amount_tolerance_percent": 101},
        {"daily_hour", "timezone", "amount_tolerance_percent"},
    ),
}


@pytest.mark.parametrize("case", INVALID_CHANGES)
def test_an_invalid_change_is_422_naming_each_field_and_changes_nothing(
    client, session, owner, case
):
    body, fields = INVALID_CHANGES[case]
    before = database_checksum(session)
    response = client.patch(SETTINGS, json=body, headers=auth(owner.secret, **{"If-Match": "1"}))
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert {error["field"] for error in response.json["errors"]} == fields
    assert database_checksum(session) == before


def test_auto_fix_null_means_the_deployment_default(session, org, override_settings):
    apply_settings_change(
        session=session,
        org_id=org.id,
        change=SettingsChange(auto_fix=False),
        actor=OPERATOR,
        expected_version=None,
    )
    override_settings(RECONCILIATION_AUTO_FIX="true")
    assert effective_match_settings(org).auto_fix is False
    back = apply_settings_change(
        session=session,
        org_id=org.id,
        change=SettingsChange(auto_fix=None),
        actor=OPERATOR,
        expected_version=None,
    )
    assert back.auto_fix is None
    assert effective_match_settings(org).auto_fix is True
    override_settings(RECONCILIATION_AUTO_FIX="false")
    assert effective_match_settings(org).auto_fix is False


def test_effective_match_settings_answers_what_a_change_would_give_and_writes_nothing(session, org):
    before = database_checksum(session)
    change = SettingsChange(
        grace_period_seconds=60,
        amount_tolerance_minor=7,
        amount_tolerance_percent=Decimal("2.5"),
        heuristic_window_seconds=30,
        duplicate_window_seconds=45,
        auto_fix=True,
    )
    would = effective_match_settings(org, change)
    assert would.grace_period == timedelta(seconds=60)
    assert (would.amount_tolerance_minor, would.amount_tolerance_percent) == (7, Decimal("2.5"))
    assert (would.heuristic_window, would.duplicate_window) == (
        timedelta(seconds=30),
        timedelta(seconds=45),
    )
    assert would.auto_fix is True
    assert effective_match_settings(org).grace_period == timedelta(hours=1)
    assert org.grace_period_seconds == 3600
    session.flush()
    assert database_checksum(session) == before


def test_the_domain_refuses_a_stale_version(session, org):
    with pytest.raises(PreconditionFailed, match="version 1"):
        apply_settings_change(
            session=session,
            org_id=org.id,
            change=SettingsChange(paused=True),
            actor=OPERATOR,
            expected_version=7,
        )


def test_cli_assignments_are_read_as_json_values_or_text():
    change = parse_assignments(
        ["timezone=Europe/Paris", "auto_fix=null", "amount_tolerance_percent=0.5", "paused=true"]
    )
    assert change.changes() == {
        "timezone": "Europe/Paris",
        "auto_fix": None,
        "amount_tolerance_percent": Decimal("0.5"),
        "paused": True,
    }
    with pytest.raises(ValidationFailed, match="daily_hour") as refused:
        parse_assignments(["daily_hour=25", "timezone=Europe/Paris"])
    assert [e["field"] for e in refused.value.extra["errors"]] == ["daily_hour"]
    with pytest.raises(ValidationFailed, match="KEY=VALUE"):
        parse_assignments(["paused"])


# --- history ------------------------------------------------------------------------------


def test_history_is_newest_first_paginated_and_only_the_callers(
    client, session, org, owner, manager
):
    other = make_org(session)
    for hour in (3, 4, 5):
        for organization in (org, other):
            apply_settings_change(
                session=session,
                org_id=organization.id,
                change=SettingsChange(daily_hour=hour),
                actor=OPERATOR,
                expected_version=None,
            )
    first = client.get(f"{SETTINGS}/history?limit=2", headers=auth(manager.secret))
    assert first.status_code == 200
    assert [e["new_value"] for e in first.json["items"]] == [5, 4]
    assert first.json["items"][0]["actor"] == "cli"
    rest = client.get(
        f"{SETTINGS}/history?limit=2&cursor={first.json['next_cursor']}",
        headers=auth(owner.secret),
    )
    assert [(e["old_value"], e["new_value"]) for e in rest.json["items"]] == [(2, 3)]
    assert rest.json["next_cursor"] is None
