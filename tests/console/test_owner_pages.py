"""The owners' pages through the test client: who sees them, the settings and their
history, and provider accounts; each refusal a message on the page with nothing changed
(people: test_people_pages.py)."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from sqlalchemy import select

from shared.access.api_keys import create_api_key
from shared.access.settings_log import ORGANIZATION_SUBJECT, Actor, record_change
from shared.models import ProviderAccount, SettingsLogEntry
from tests.console.conftest import post
from tests.support.checksums import database_checksum
from tests.support.factories import make_account, make_org
from tests.support.log_leaks import register_secret
from tests.support.signing import ADYEN_KEY, STRIPE_SECRET

SETTINGS = "/console/settings"
ACCOUNTS = "/console/provider-accounts"
PEOPLE = "/console/people"
OWNER_PAGES = (SETTINGS, ACCOUNTS, PEOPLE)


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def log_entries(session, org) -> list[SettingsLogEntry]:
    query = select(SettingsLogEntry).where(SettingsLogEntry.org_id == org.id)
    return list(session.scalars(query.order_by(SettingsLogEntry.created_at, SettingsLogEntry.id)))


def api_errors(client, session, org, method: str, path: str, body: dict, **headers) -> list[str]:
    """The messages the API answers for ``body`` (an owner key of ``org``)."""
    key = create_api_key(session=session, org_id=org.id, role="owner").secret
    response = client.open(
        path, method=method, json=body, headers={"Authorization": f"Bearer {key}", **headers}
    )
    assert response.status_code == 422, response.json
    return [error["message"] for error in response.json["errors"]]


# --- who sees the pages --------------------------------------------------------------------


@pytest.mark.parametrize("role", ["manager", "viewer"])
def test_the_owner_pages_are_403_for_other_roles_and_not_in_their_menu(
    client, session, org, signed_in, role
):
    signed_in(role=role)
    queue = client.get("/console/").text
    for path in OWNER_PAGES:
        assert f'href="{path}"' not in queue
        response = client.get(path)
        assert response.status_code == 403, path
        assert "Your role may not do this." in response.text


def test_an_owner_has_the_pages_in_the_menu_and_each_renders(client, session, org, owner):
    queue = client.get("/console/").text
    for path in OWNER_PAGES:
        assert f'href="{path}"' in queue
        response = client.get(path)
        assert response.status_code == 200, path
        assert 'aria-current="page"' in response.text.split(f'href="{path}"')[1].split(">")[0]


@pytest.mark.parametrize(
    "path",
    [SETTINGS, ACCOUNTS, PEOPLE, "/console/people/password-link", "/console/people/disable"],
)
def test_an_owner_s_post_without_its_csrf_token_is_refused(client, session, org, owner, path):
    before = database_checksum(session)
    data = {"version": "1", "grace_period_seconds": "1", "provider": "stripe",
            "email": owner.email, "name": "X", "role": "owner"}  # fmt: skip
    for forged in ({}, {"csrf_token": "forged"}):
        assert client.post(path, data=data | forged).status_code == 403
    assert database_checksum(session) == before


def test_account_posts_without_their_csrf_token_are_refused(client, session, org, owner):
    account = make_account(session, org)
    before = database_checksum(session)
    for suffix in ("", "/secrets", "/secrets/retire"):
        data = {"active": "true", "fingerprint": fingerprint(STRIPE_SECRET)}
        response = client.post(f"{ACCOUNTS}/{account.id}{suffix}", data=data)
        assert response.status_code == 403, suffix
    assert database_checksum(session) == before


# --- settings -------------------------------------------------------------------------------


def settings_form(client, **changes) -> dict[str, str]:
    """The settings form as the page fills it (its hidden fields too), with ``changes``."""
    html = client.get(SETTINGS).text.split('id="settings-title"')[1].split("</form>")[0]
    fields = {}
    for tag in html.split("<input")[1:]:
        name = tag.split('name="')[1].split('"')[0]
        value = tag.split('value="')[1].split('"')[0] if 'value="' in tag else ""
        if 'type="checkbox"' not in tag or " checked" in tag:
            fields[name] = value
    auto_fix = html.split('name="auto_fix"')[1].split("</select>")[0]
    fields["auto_fix"] = auto_fix.split(" selected")[0].rsplit('value="', 1)[1].split('"')[0]
    fields.update(changes)
    return {name: value for name, value in fields.items() if value is not None}


def test_the_settings_page_shows_every_setting_in_its_form(client, session, org, owner):
    org.settlement_delay_days = {"adyen": 5}
    org.amount_tolerance_percent = 2.5
    session.flush()
    form = settings_form(client)
    assert form["grace_period_seconds"] == "3600"
    assert form["amount_tolerance_percent"] == "2.5"
    assert form["timezone"] == org.timezone
    assert form["settlement_delay_days.adyen"] == "5"
    assert form["settlement_delay_days.stripe"] == ""  # the default, 3, as a placeholder
    assert form["auto_fix"] == "null"
    assert "paused" not in form
    assert form["version"] == str(org.settings_version)


def test_an_owner_saves_settings_and_the_history_names_them(client, session, org, owner):
    form = settings_form(
        client, grace_period_seconds="600", amount_tolerance_percent="0.5", auto_fix="true",
        timezone="Europe/Paris", **{"settlement_delay_days.adyen": "4", "paused": "true"},
    )  # fmt: skip
    response = client.post(SETTINGS, data=form)
    assert response.status_code == 303
    assert response.location == f"{SETTINGS}?done=saved"
    session.refresh(org)
    assert (org.grace_period_seconds, str(org.amount_tolerance_percent), org.auto_fix) == (
        600, "0.5000", True,
    )  # fmt: skip
    assert (org.timezone, org.paused, org.settlement_delay_days) == (
        "Europe/Paris", True, {"adyen": 4},
    )  # fmt: skip
    assert org.settings_version == 2
    entries = log_entries(session, org)
    assert {entry.field for entry in entries} == {
        "grace_period_seconds", "amount_tolerance_percent", "auto_fix", "timezone", "paused",
        "settlement_delay_days",
    }  # fmt: skip
    assert {(e.actor, e.actor_name) for e in entries} == {(f"user:{owner.id}", "Olga Owner")}
    page = client.get(response.location)
    assert "The settings are saved." in page.text
    history = page.text.split('id="history-title"')[1]
    assert "Olga Owner" in history
    assert "<code>grace_period_seconds</code>" in history
    assert "Europe/Paris" in history
    unpaused = client.post(SETTINGS, data=settings_form(client, paused=None))  # unticked
    session.refresh(org)
    assert (unpaused.location, org.paused) == (f"{SETTINGS}?done=saved", False)


def test_saving_the_settings_unchanged_changes_and_logs_nothing(client, session, org, owner):
    response = client.post(SETTINGS, data=settings_form(client))
    assert response.location == f"{SETTINGS}?done=unchanged"
    assert "Nothing changed." in client.get(response.location).text
    session.refresh(org)
    assert org.settings_version == 1
    assert log_entries(session, org) == []


def test_a_stale_settings_form_is_a_message_and_changes_nothing(client, session, org, owner):
    stale = settings_form(client, grace_period_seconds="60")
    assert client.post(SETTINGS, data=settings_form(client, daily_hour="5")).status_code == 303
    response = client.post(SETTINGS, data=stale)
    assert response.status_code == 412
    assert "Someone changed the settings while you were editing them" in response.text
    session.refresh(org)
    assert (org.grace_period_seconds, org.daily_hour, org.settings_version) == (3600, 5, 2)
    again = settings_form_from(response.text)
    assert (again["version"], again["daily_hour"]) == ("2", "5")  # the settings as they are now


def settings_form_from(html: str) -> dict[str, str]:
    form = html.split('id="settings-title"')[1].split("</form>")[0]
    return {
        tag.split('name="')[1].split('"')[0]: tag.split('value="')[1].split('"')[0]
        for tag in form.split("<input")[1:]
        if 'value="' in tag and 'type="checkbox"' not in tag
    }


# (form field, typed value, the API's JSON value of the same text)
BAD_SETTINGS = [
    ("grace_period_seconds", "ten", "ten"),
    ("grace_period_seconds", "2592001", 2_592_001),
    ("amount_tolerance_percent", "101", 101),
    ("amount_tolerance_minor", "1.5", 1.5),
    ("timezone", "Mars/Olympus", "Mars/Olympus"),
    ("daily_hour", "24", 24),
    ("auto_fix", "maybe", "maybe"),
]


@pytest.mark.parametrize(("field", "text", "api_value"), BAD_SETTINGS)
def test_a_bad_setting_is_the_api_s_message_and_changes_nothing(
    client, session, org, owner, field, text, api_value
):
    expected = api_errors(
        client, session, org, "PATCH", "/billing/settings", {field: api_value}, **{"If-Match": "1"}
    )
    before = database_checksum(session)
    response = client.post(SETTINGS, data=settings_form(client, **{field: text}))
    assert response.status_code == 422
    assert "Nothing was saved: the settings are invalid:" in response.text
    for message in expected:
        assert f"{field}: {message}".replace("'", "&#39;") in response.text
    if field != "auto_fix":  # a select: it cannot show what it does not offer
        assert settings_form_from(response.text)[field] == text  # the form keeps what was typed
    assert database_checksum(session) == before


def test_a_bad_settlement_delay_names_its_provider(client, session, org, owner):
    form = settings_form(client, **{"settlement_delay_days.stripe": "61"})
    response = client.post(SETTINGS, data=form)
    assert response.status_code == 422
    assert "settlement_delay_days.stripe: Input should be less than or equal to 60" in (
        response.text
    )
    session.refresh(org)
    assert org.settlement_delay_days == {}


def test_a_settings_form_without_its_version_is_refused(client, session, org, owner):
    form = settings_form(client, grace_period_seconds="5", version=None)
    response = client.post(SETTINGS, data=form)
    assert response.status_code == 422
    assert "version: Field required" in response.text
    session.refresh(org)
    assert org.grace_period_seconds == 3600


def test_the_history_pages_with_a_cursor_and_names_accounts(client, session, org, owner):
    account = make_account(session, org)  # logged: its provider, settings and secret
    actor = Actor(f"user:{owner.id}", owner.name)
    for hour in range(50):
        record_change(session=session, org_id=org.id, actor=actor, subject=ORGANIZATION_SUBJECT,
                      field="daily_hour", old=hour, new=hour + 1)  # fmt: skip
    session.flush()
    first = client.get(SETTINGS).text.split('id="history-title"')[1]
    assert first.count("<tr>") == 51  # the header row and 50 entries
    next_link = first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    older = client.get(next_link.replace("&amp;", "&")).text.split('id="history-title"')[1]
    assert f'href="{ACCOUNTS}/{account.id}"' in older
    assert "(stripe account)" in older
    assert fingerprint(STRIPE_SECRET) in older
    assert STRIPE_SECRET not in older


# --- provider accounts ---------------------------------------------------------------------


def test_the_accounts_page_lists_fingerprints_never_secrets(client, session, org, owner):
    stripe = make_account(session, org)
    adyen = make_account(session, org, provider="adyen")
    foreign = make_account(session, make_org(session))
    page = client.get(ACCOUNTS).text
    for account in (stripe, adyen):
        assert f"http://127.0.0.1:8000/webhooks/{account.provider}/{account.id}" in page
    assert str(foreign.id) not in page
    assert fingerprint(STRIPE_SECRET) in page
    assert fingerprint(ADYEN_KEY) in page
    for secret in (STRIPE_SECRET, ADYEN_KEY):
        assert secret not in page


def registered(session, org) -> ProviderAccount:
    return session.scalars(select(ProviderAccount).where(ProviderAccount.org_id == org.id)).one()


def test_registering_an_account_shows_its_generated_secret_once(client, session, org, owner):
    response = post(client, ACCOUNTS, {"provider": "stripe", "name": "EU shop", "active": "true",
                                       "merchant_reference_key": "order_id",
                                       "payout_arrival_business_days": "4"})  # fmt: skip
    assert response.status_code == 201
    account = registered(session, org)
    [secret] = account.signing_secrets
    register_secret(secret)
    assert secret.startswith("whsec_")
    assert "shown this once" in response.text
    assert secret in response.text
    assert f"/webhooks/stripe/{account.id}" in response.text
    assert (account.name, account.active, account.merchant_reference_key) == (
        "EU shop", True, "order_id",
    )  # fmt: skip
    assert account.payout_arrival_business_days == 4
    entries = log_entries(session, org)
    assert {(e.actor, e.actor_name) for e in entries} == {(f"user:{owner.id}", "Olga Owner")}
    again = client.get(f"{ACCOUNTS}/{account.id}").text
    assert secret not in again
    assert fingerprint(secret) in again


def test_a_given_secret_is_not_echoed_and_an_unticked_account_is_inactive(
    client, session, org, owner
):
    response = post(client, ACCOUNTS, {"provider": "adyen", "secret": ADYEN_KEY,
                                       "manual_capture": "true"})  # fmt: skip
    assert response.status_code == 201
    assert ADYEN_KEY not in response.text
    assert "shown this once" not in response.text
    account = registered(session, org)
    assert (account.active, account.manual_capture) == (False, True)


# (form, the API's body, the field the API names)
BAD_ACCOUNTS = [
    ({"provider": "adyen", "merchant_reference_key": "k"},
     {"provider": "adyen", "merchant_reference_key": "k"}),
    ({"provider": "stripe", "secret": "not-a-stripe-secret"},
     {"provider": "stripe", "secret": "not-a-stripe-secret"}),
    ({"provider": "stripe", "payout_arrival_business_days": "31"},
     {"provider": "stripe", "payout_arrival_business_days": 31}),
    ({"provider": "standard", "manual_capture": "true"},
     {"provider": "standard", "manual_capture": True}),
    ({"provider": "paypal"}, {"provider": "paypal"}),
]  # fmt: skip


@pytest.mark.parametrize(("form", "body"), BAD_ACCOUNTS)
def test_a_bad_account_is_the_api_s_message_and_nothing_is_registered(
    client, session, org, owner, form, body
):
    expected = api_errors(client, session, org, "POST", "/billing/provider-accounts", body)
    before = database_checksum(session)
    response = post(client, ACCOUNTS, form)
    assert response.status_code == 422
    assert "Nothing was registered:" in response.text
    for message in expected:
        assert message.replace("'", "&#39;") in response.text
    assert "not-a-stripe-secret" not in response.text  # a secret typed in is not sent back
    assert database_checksum(session) == before


def account_path(account) -> str:
    return f"{ACCOUNTS}/{account.id}"


def test_an_owner_changes_an_account_s_options_and_fee_schedule(client, session, org, owner):
    account = make_account(session, org)
    response = post(
        client,
        account_path(account),
        {
            "name": "EU",
            "merchant_reference_key": "order_id",
            "payout_arrival_business_days": "5",
            "fee_currency": ["eur", "USD", ""],
            "fee_percent": ["1.4", "2.9", ""],
            "fee_fixed_minor": ["25", "30", ""],
            "fee_tolerance_minor": ["", "1", ""],
        },
    )  # fmt: skip  (active left unticked)
    assert response.status_code == 303
    assert response.location == f"{account_path(account)}?done=saved"
    session.refresh(account)
    assert (account.name, account.active, account.merchant_reference_key) == (
        "EU", False, "order_id",
    )  # fmt: skip
    assert account.payout_arrival_business_days == 5
    assert account.fee_schedule == {
        "EUR": {"percent": "1.4", "fixed_minor": 25, "tolerance_minor": 0},
        "USD": {"percent": "2.9", "fixed_minor": 30, "tolerance_minor": 1},
    }
    logged = {e.field for e in log_entries(session, org) if e.actor == f"user:{owner.id}"}
    assert logged == {"name", "active", "merchant_reference_key", "payout_arrival_business_days",
                      "fee_schedule"}  # fmt: skip
    page = client.get(response.location).text
    assert "The account is saved." in page
    assert 'value="USD"' in page
    cleared = post(client, account_path(account), {"active": "true", "fee_currency": [""]})
    assert cleared.status_code == 303
    session.refresh(account)
    assert (account.active, account.fee_schedule, account.name) == (True, None, "EU")


def test_an_account_page_shows_only_its_provider_s_options(client, session, org, owner):
    standard = client.get(account_path(make_account(session, org, provider="standard"))).text
    adyen = client.get(account_path(make_account(session, org, provider="adyen"))).text
    for option in ("merchant_reference_key", "manual_capture", "fee_currency",
                   "payout_arrival_business_days"):  # fmt: skip
        assert f'name="{option}"' not in standard
    assert 'name="manual_capture"' in adyen
    assert 'name="fee_currency"' in adyen
    assert 'name="merchant_reference_key"' not in adyen


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"fee_currency": ["EUR"], "fee_percent": ["lots"]},
         "fee_schedule.EUR.percent: must be a number"),
        ({"fee_currency": ["EUR", "eur"], "fee_percent": ["1", "2"]},
         "fee_schedule: EUR has two rows"),
        ({"fee_currency": [""], "fee_percent": ["1"]}, "fee_schedule: a row has no currency"),
        ({"fee_currency": ["EURO"], "fee_percent": ["1"]}, "fee_schedule.EURO.[key]"),
        ({"payout_arrival_business_days": "-1"},
         "payout_arrival_business_days: Input should be greater than or equal to 0"),
        ({"merchant_reference_key": "a[b]"}, "merchant_reference_key: String should match"),
    ],
)  # fmt: skip
def test_a_bad_account_change_is_a_message_and_changes_nothing(
    client, session, org, owner, fields, message
):
    account = make_account(session, org)
    before = database_checksum(session)
    response = post(client, account_path(account), {"active": "true", "name": "New", **fields})
    assert response.status_code == 422
    assert "Nothing was changed: the change is invalid" in response.text
    assert message in response.text
    assert 'value="New"' in response.text  # the form keeps what was typed
    assert database_checksum(session) == before


def test_an_owner_rotates_a_secret(client, session, org, owner):
    account = make_account(session, org)
    added = post(client, f"{account_path(account)}/secrets", {}, page=account_path(account))
    assert added.status_code == 200
    session.refresh(account)
    old, new = account.signing_secrets
    register_secret(new)
    assert new in added.text
    assert "both secrets verify" in added.text
    retired = post(client, f"{account_path(account)}/secrets/retire",
                   {"fingerprint": fingerprint(old)}, page=account_path(account))  # fmt: skip
    assert retired.location == f"{account_path(account)}?done=retired"
    session.refresh(account)
    assert account.signing_secrets == [new]
    mine = [e.new_value for e in log_entries(session, org) if e.actor == f"user:{owner.id}"]
    assert sorted(mine, key=str) == [
        {"change": "secret added", "fingerprint": fingerprint(new)},
        {"change": "secret retired", "fingerprint": fingerprint(old)},
    ]
    page = client.get(retired.location).text
    assert "The secret is retired." in page
    assert new not in page


@pytest.mark.parametrize(
    ("suffix", "fields", "status", "message"),
    [
        ("/secrets/retire", {"fingerprint": "STRIPE"}, 409, "cannot retire the only secret"),
        ("/secrets/retire", {"fingerprint": "0badf00d"}, 422, "no active secret of this account"),
        ("/secrets/retire", {"fingerprint": "xyz"}, 422, "retire_secret: String should match"),
        ("/secrets", {"secret": STRIPE_SECRET}, 409, "that secret is already active"),
        ("/secrets", {"secret": "sk_live_oops"}, 422, "a Stripe webhook secret starts with"),
    ],
)
def test_a_refused_secret_change_is_a_message_and_changes_nothing(
    client, session, org, owner, suffix, fields, status, message
):
    account = make_account(session, org)
    fields = {name: fingerprint(STRIPE_SECRET) if value == "STRIPE" else value
              for name, value in fields.items()}  # fmt: skip
    before = database_checksum(session)
    response = post(client, account_path(account) + suffix, fields, page=account_path(account))
    assert response.status_code == status
    assert message in response.text
    assert STRIPE_SECRET not in response.text
    assert database_checksum(session) == before


def test_another_organisation_s_account_is_a_404_page(client, session, org, owner):
    foreign = make_account(session, make_org(session))
    assert client.get(f"{ACCOUNTS}/{uuid.uuid4()}").status_code == 404
    page = client.get(account_path(foreign))
    assert page.status_code == 404
    assert "There is nothing here in your organisation." in page.text
    before = database_checksum(session)
    for suffix, fields in (("", {"active": "true", "name": "Mine"}), ("/secrets", {}),
                           ("/secrets/retire", {"fingerprint": fingerprint(STRIPE_SECRET)}),
                           ("/secrets", {"secret": "bad"})):  # fmt: skip
        response = post(client, account_path(foreign) + suffix, fields, page=ACCOUNTS)
        assert response.status_code == 404, suffix
        assert response.mimetype == "text/html"
    assert database_checksum(session) == before
