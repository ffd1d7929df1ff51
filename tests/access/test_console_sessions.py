"""Console sessions: signing in (throttled), the server-side store, timeouts, and the API
accepting a session as it accepts a key."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlalchemy import select

from shared.access.api_keys import Caller
from shared.access.console_sessions import (
    CSRF_HEADER,
    SESSION_COOKIE,
    end_session,
    person_id,
    read_session,
    session_caller,
    sign_in,
    start_session,
)
from shared.access.users import InvalidCredentials, disable_user
from shared.models import ReconciliationActionLog
from shared.platform.rate_limits import TooManyAttempts
from shared.platform.redis_store import shared_redis
from tests.discrepancies.factories import make_discrepancy
from tests.support.factories import make_org
from tests.support.people import PASSWORD, make_person


def an_address() -> str:
    """A client address of this test only (the counters outlive a test)."""
    return f"198.51.100.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:6]}"


def test_signing_in_stores_a_new_session_under_a_digest_of_its_id(session, redis_client):
    person = make_person(session, make_org(session))
    first = sign_in(session=session, email=person.email, password=PASSWORD, address=an_address())
    second = sign_in(session=session, email=person.email, password=PASSWORD, address=an_address())
    assert first.session_id != second.session_id
    assert first.session.csrf_token != second.session.csrf_token
    keys = [key.decode() for key in redis_client.keys("recon:console-session:*")]
    assert keys
    assert not any(first.session_id in key for key in keys)
    assert read_session(first.session_id).user_id == str(person.id)


def test_signing_out_ends_the_session(session):
    person = make_person(session, make_org(session))
    signed = sign_in(session=session, email=person.email, password=PASSWORD, address=an_address())
    end_session(signed.session_id)
    assert read_session(signed.session_id) is None


def test_each_request_pushes_the_idle_expiry_back(session, override_settings, redis_client):
    override_settings(CONSOLE_SESSION_IDLE_SECONDS="600")
    person = make_person(session, make_org(session))
    signed = sign_in(session=session, email=person.email, password=PASSWORD, address=an_address())
    (key,) = [k for k in redis_client.keys("recon:console-session:*") if redis_client.ttl(k) > 0
              and json.loads(redis_client.get(k))["user_id"] == str(person.id)]  # fmt: skip
    redis_client.expire(key, 5)
    assert read_session(signed.session_id) is not None
    assert redis_client.ttl(key) > 590


def test_a_session_past_its_absolute_lifetime_is_ended(session, override_settings, redis_client):
    override_settings(CONSOLE_SESSION_MAX_SECONDS="60")
    person = make_person(session, make_org(session))
    signed = sign_in(session=session, email=person.email, password=PASSWORD, address=an_address())
    for key in redis_client.keys("recon:console-session:*"):
        record = json.loads(redis_client.get(key))
        if record["user_id"] == str(person.id):
            record["started_at"] = time.time() - 61
            redis_client.set(key, json.dumps(record), keepttl=True)
    assert read_session(signed.session_id) is None
    assert read_session(signed.session_id) is None  # and it stays ended


def test_repeated_failures_block_the_account_even_with_the_right_password(
    session, override_settings
):
    override_settings(CONSOLE_LOGIN_MAX_FAILURES="3")
    person = make_person(session, make_org(session))
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            sign_in(
                session=session, email=person.email, password="wrong guess!", address=an_address()
            )
    with pytest.raises(TooManyAttempts) as blocked:
        sign_in(
            session=session, email=person.email.upper(), password=PASSWORD, address=an_address()
        )
    assert int(blocked.value.headers["Retry-After"]) > 0


def test_an_unknown_email_is_throttled_exactly_like_a_known_one(session, override_settings):
    override_settings(CONSOLE_LOGIN_MAX_FAILURES="2")
    email = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    answers = []
    for _ in range(2):
        with pytest.raises(InvalidCredentials) as refused:
            sign_in(session=session, email=email, password=PASSWORD, address=an_address())
        answers.append(refused.value.detail)
    with pytest.raises(TooManyAttempts):
        sign_in(session=session, email=email, password=PASSWORD, address=an_address())
    assert answers == ["wrong email or password"] * 2


def test_repeated_failures_from_one_address_block_it_for_every_account(session, override_settings):
    override_settings(CONSOLE_LOGIN_ADDRESS_MAX_FAILURES="2")
    person = make_person(session, make_org(session))
    address = an_address()
    for number in range(2):
        with pytest.raises(InvalidCredentials):
            sign_in(session=session, email=f"x{number}@example.com", password="no", address=address)
    with pytest.raises(TooManyAttempts):
        sign_in(session=session, email=person.email, password=PASSWORD, address=address)


# --- the API accepts a session ----------------------------------------------------------


def signed_in_client(client, session, org, role="manager", name="Ana Lima"):
    person = make_person(session, org, role=role, name=name)
    signed = sign_in(session=session, email=person.email, password=PASSWORD, address=an_address())
    client.set_cookie(SESSION_COOKIE, signed.session_id)
    return person, signed


DISCREPANCIES = "/billing/reconciliation/discrepancies"


def test_the_api_accepts_a_session_and_logs_the_person_as_the_actor(client, session):
    org = make_org(session)
    person, signed = signed_in_client(client, session, org)
    discrepancy = make_discrepancy(session, org)
    assert client.get(DISCREPANCIES).status_code == 200
    response = client.patch(
        f"{DISCREPANCIES}/{discrepancy.id}/acknowledge",
        headers={CSRF_HEADER: signed.session.csrf_token},
    )
    assert response.status_code == 200, response.json
    entry = session.scalars(
        select(ReconciliationActionLog).where(ReconciliationActionLog.action == "acknowledged")
    ).one()
    assert (entry.actor, entry.actor_name) == (f"user:{person.id}", "Ana Lima")


def test_a_state_changing_api_request_with_a_session_needs_its_csrf_token(client, session):
    org = make_org(session)
    signed_in_client(client, session, org)
    discrepancy = make_discrepancy(session, org)
    for headers in ({}, {CSRF_HEADER: "forged"}):
        response = client.patch(f"{DISCREPANCIES}/{discrepancy.id}/acknowledge", headers=headers)
        assert response.status_code == 403
        assert response.mimetype == "application/problem+json"
    assert session.scalars(select(ReconciliationActionLog.action)).all() == ["opened"]


def test_a_viewer_session_gets_403_and_a_disabled_person_s_session_401(client, session):
    org = make_org(session)
    signed_in_client(client, session, org, role="viewer")
    assert client.get(DISCREPANCIES).status_code == 403
    person, _ = signed_in_client(client, session, org, role="manager")
    disable_user(session=session, org_id=org.id, email=person.email)
    response = client.get(DISCREPANCIES)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"


def test_an_unknown_session_cookie_is_401(client, session):
    client.set_cookie(SESSION_COOKIE, "made-up")
    assert client.get(DISCREPANCIES).status_code == 401


def test_the_store_is_the_shared_redis(redis_client):
    assert (
        shared_redis().connection_pool.connection_kwargs["db"]
        == (redis_client.connection_pool.connection_kwargs["db"])
    )


def test_the_person_behind_a_caller_is_known_only_for_a_session(session):
    person = make_person(session, make_org(session))
    caller = session_caller(
        session=session, record=start_session(person).session, roles=("manager",)
    )
    assert person_id(caller) == person.id
    key = Caller(actor=str(uuid.uuid4()), actor_name="ci", org_id=person.org_id, role="owner")
    assert person_id(key) is None
