"""Operators' webhook-event endpoints: listing by state with stable cursors, replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shared.access.api_keys import create_api_key
from shared.access.organizations import create_organization
from shared.ingest.processing import process_provider_event
from shared.models import ApiKey, ProviderEvent
from shared.providers.accounts import add_provider_account
from tests.support.factories import make_event
from tests.support.signing import STRIPE_SECRET, stripe_event, stripe_request


@pytest.fixture
def org(session):
    return create_organization(session=session, name="Acme")


@pytest.fixture
def account(session, org):
    return add_provider_account(
        session=session, org_id=org.id, provider="stripe", secret=STRIPE_SECRET
    )


def key_for(session, org_id, role: str) -> str:
    return create_api_key(session=session, org_id=org_id, role=role).secret


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def add_events(session, account, count: int, state: str = "pending", start=None):
    start = start or datetime.now(UTC) - timedelta(hours=1)
    events = [
        make_event(session, account, state=state, received_at=start + timedelta(seconds=index))
        for index in range(count)
    ]
    return events


def test_listing_needs_an_owner_or_manager_key(client, session, org, account):
    add_events(session, account, 1)
    assert client.get("/billing/webhooks/events").status_code == 401
    assert client.get("/billing/webhooks/events").headers["WWW-Authenticate"].startswith("Bearer")
    malformed = client.get("/billing/webhooks/events", headers={"Authorization": "Basic abc"})
    assert malformed.status_code == 401
    unknown = client.get("/billing/webhooks/events", headers=auth("rk_unknown"))
    assert unknown.status_code == 401
    viewer = client.get(
        "/billing/webhooks/events", headers=auth(key_for(session, org.id, "viewer"))
    )
    assert viewer.status_code == 403
    assert viewer.mimetype == "application/problem+json"
    for role in ("owner", "manager"):
        response = client.get(
            "/billing/webhooks/events", headers=auth(key_for(session, org.id, role))
        )
        assert response.status_code == 200


def test_a_revoked_key_is_refused(client, session, org):
    issued = create_api_key(session=session, org_id=org.id, role="owner")
    issued.api_key.revoked_at = datetime.now(UTC)
    session.flush()
    assert client.get("/billing/webhooks/events", headers=auth(issued.secret)).status_code == 401


def test_using_a_key_records_when_it_was_last_used(client, session, org):
    issued = create_api_key(session=session, org_id=org.id, role="owner")
    client.get("/billing/webhooks/events", headers=auth(issued.secret))
    session.expire_all()
    assert session.get(ApiKey, issued.api_key.id).last_used_at is not None


def test_events_are_listed_newest_first_with_their_shape(client, session, org, account):
    older, newer = add_events(session, account, 2)
    response = client.get(
        "/billing/webhooks/events", headers=auth(key_for(session, org.id, "owner"))
    )
    body = response.json
    assert [item["id"] for item in body["items"]] == [str(newer.id), str(older.id)]
    assert set(body["items"][0]) == {
        "id",
        "provider",
        "provider_event_id",
        "event_type",
        "state",
        "attempts",
        "last_error",
        "ignored_reason",
        "received_at",
        "processed_at",
    }
    assert body["next_cursor"] is None


def test_events_filter_by_state(client, session, org, account):
    add_events(session, account, 2, state="processed")
    [failed] = add_events(session, account, 1, state="failed")
    response = client.get(
        "/billing/webhooks/events?state=failed", headers=auth(key_for(session, org.id, "manager"))
    )
    assert [item["id"] for item in response.json["items"]] == [str(failed.id)]


def test_failed_and_pending_events_are_listed_in_one_call_newest_first_across_pages(
    client, session, org, account
):
    start = datetime.now(UTC) - timedelta(hours=1)
    add_events(session, account, 2, state="processed", start=start)
    failed = add_events(session, account, 2, state="failed", start=start + timedelta(minutes=1))
    pending = add_events(session, account, 2, state="pending", start=start + timedelta(minutes=2))
    headers = auth(key_for(session, org.id, "manager"))
    listed, cursor = [], None
    while True:
        query = "state=failed&state=pending&limit=3" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(f"/billing/webhooks/events?{query}", headers=headers)
        assert response.status_code == 200
        listed += [(item["id"], item["state"]) for item in response.json["items"]]
        if (cursor := response.json["next_cursor"]) is None:
            break
    newest_first = [*pending[::-1], *failed[::-1]]
    assert listed == [(str(event.id), event.state) for event in newest_first]


def test_states_combine_with_ignored(client, session, org, account):
    [failed] = add_events(session, account, 1, state="failed")
    [ignored] = add_events(session, account, 1, state="processed")
    ignored.ignored_reason = "customer.created is not used"
    add_events(session, account, 1, state="processed")
    session.flush()
    headers = auth(key_for(session, org.id, "manager"))
    response = client.get("/billing/webhooks/events?state=ignored&state=failed", headers=headers)
    assert {item["id"] for item in response.json["items"]} == {str(failed.id), str(ignored.id)}


@pytest.mark.parametrize(
    "query", ["state=failed&state=bogus", "state=", "&".join(["state=failed"] * 5)]
)
def test_an_unknown_or_overlong_state_filter_is_422(client, session, org, query):
    headers = auth(key_for(session, org.id, "manager"))
    response = client.get(f"/billing/webhooks/events?{query}", headers=headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


def test_a_delivery_of_a_type_recon_does_not_use_is_listed_as_ignored_with_the_reason(
    client, session, org, account
):
    [payment_event] = add_events(session, account, 1, state="processed")
    body, headers = stripe_request(stripe_event("customer.created"))
    response = client.post(
        f"/webhooks/stripe/{account.id}",
        data=body,
        headers=headers,
        content_type="application/json",
    )
    assert response.status_code == 200
    stored = session.scalars(
        select(ProviderEvent).where(ProviderEvent.event_type == "customer.created")
    ).one()
    assert process_provider_event(session=session, event_id=stored.id) == "processed"
    manager = auth(key_for(session, org.id, "manager"))

    [ignored] = client.get("/billing/webhooks/events?state=ignored", headers=manager).json["items"]
    processed = client.get("/billing/webhooks/events?state=processed", headers=manager).json

    assert (ignored["id"], ignored["state"]) == (str(stored.id), "processed")
    assert "customer.created" in ignored["ignored_reason"]
    assert {item["id"] for item in processed["items"]} == {str(stored.id), str(payment_event.id)}


def test_cursor_pages_cover_every_event_once_even_while_new_ones_arrive(
    client, session, org, account
):
    events = add_events(session, account, 5)
    headers = auth(key_for(session, org.id, "owner"))
    seen, cursor = [], None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/billing/webhooks/events?{query}", headers=headers).json
        seen += [item["id"] for item in page["items"]]
        add_events(session, account, 1, start=datetime.now(UTC))  # newer than every page
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(event.id) for event in reversed(events)]


def test_other_organisations_events_are_invisible(client, session, org, account):
    add_events(session, account, 3)
    other = create_organization(session=session, name="Other")
    response = client.get(
        "/billing/webhooks/events", headers=auth(key_for(session, other.id, "owner"))
    )
    assert response.json["items"] == []


@pytest.mark.parametrize(
    "query",
    [
        "state=exploded",
        "limit=0",
        "limit=501",
        "limit=ten",
        "cursor=not-a-cursor",
        "cursor=WyIyMDI2LTAxLTAxIl0",  # base64 of a one-element list: forged shape
        "colour=blue",
    ],
)
def test_bad_listing_parameters_are_a_clear_4xx(client, session, org, query):
    response = client.get(
        f"/billing/webhooks/events?{query}", headers=auth(key_for(session, org.id, "owner"))
    )
    assert response.status_code in (400, 422)
    assert response.mimetype == "application/problem+json"


def test_replay_puts_a_failed_event_back_in_the_queue(
    client, session, org, account, published_tasks
):
    [event] = add_events(session, account, 1, state="failed")
    event.last_error = "boom"
    session.flush()
    response = client.post(
        f"/billing/webhooks/events/{event.id}/replay",
        headers=auth(key_for(session, org.id, "owner")),
    )
    assert response.status_code == 202
    assert response.json["state"] == "pending"
    assert response.json["last_error"] is None
    assert published_tasks == [("worker.tasks.process_event", [str(event.id)])]


def test_replay_queues_a_pending_event_again(client, session, org, account, published_tasks):
    [event] = add_events(session, account, 1, state="pending")
    response = client.post(
        f"/billing/webhooks/events/{event.id}/replay",
        headers=auth(key_for(session, org.id, "manager")),
    )
    assert response.status_code == 202
    assert response.json["state"] == "pending"
    assert published_tasks == [("worker.tasks.process_event", [str(event.id)])]


def test_replay_of_another_organisations_event_is_404(
    client, session, org, account, published_tasks
):
    [event] = add_events(session, account, 1, state="failed")
    other = create_organization(session=session, name="Other")
    response = client.post(
        f"/billing/webhooks/events/{event.id}/replay",
        headers=auth(key_for(session, other.id, "owner")),
    )
    assert response.status_code == 404
    session.expire_all()
    assert session.scalars(select(ProviderEvent.state)).one() == "failed"
    assert published_tasks == []
