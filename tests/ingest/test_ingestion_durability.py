"""Nothing is lost: Redis down at delivery, the pending sweep, and a real worker round trip."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from cli.services import free_port
from shared.access.organizations import create_organization
from shared.ingest.events import sweep_pending_events
from shared.models import ProviderEvent
from shared.platform.db import unit_of_work
from shared.providers.accounts import add_provider_account
from tests.conftest import TEST_DATABASE_URL, wait_until
from tests.support.factories import make_event
from tests.support.processes import ApiServer
from tests.support.signing import STRIPE_SECRET, stripe_event, stripe_request


def committed_stripe_account():
    with unit_of_work() as session:
        org = create_organization(session=session, name="Acme")
        account = add_provider_account(
            session=session, org_id=org.id, provider="stripe", secret=STRIPE_SECRET
        )
    return account.id


def event_state(engine, provider_event_id: str):
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT state, attempts FROM provider_events WHERE provider_event_id = :id"),
            {"id": provider_event_id},
        ).one_or_none()


@pytest.fixture
def api_without_redis(committed, tmp_path):
    """``recon serve`` whose REDIS_URL points at a port where nothing listens."""
    server = ApiServer(
        tmp_path / "serve.log",
        database_url=TEST_DATABASE_URL,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    yield server.base_url
    server.stop()


def test_webhook_is_accepted_and_kept_while_redis_is_down_then_swept_and_processed(
    api_without_redis, committed, celery_worker
):
    account_id = committed_stripe_account()
    event = stripe_event()
    body, headers = stripe_request(event)
    request = urllib.request.Request(
        f"{api_without_redis}/webhooks/stripe/{account_id}",
        data=body,
        headers={**headers, "Content-Type": "application/json"},
        method="POST",
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    assert time.monotonic() - started < 10
    assert event_state(committed, event["id"]) == ("pending", 0)

    with unit_of_work() as session:
        swept = sweep_pending_events(session=session, older_than_seconds=0, batch=100, backlog=0)
    assert swept == 1
    assert wait_until(lambda: event_state(committed, event["id"]) == ("processed", 1))


def test_readiness_reports_redis_down_while_webhooks_still_work(api_without_redis):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{api_without_redis}/readyz", timeout=10)
    assert refused.value.code == 503
    refused.value.close()


def test_a_delivered_webhook_is_processed_by_a_real_worker(
    committed_client, committed, celery_worker
):
    account_id = committed_stripe_account()
    event = stripe_event()
    body, headers = stripe_request(event)
    response = committed_client.post(
        f"/webhooks/stripe/{account_id}",
        data=body,
        headers=headers,
        content_type="application/json",
    )
    assert response.status_code == 200
    assert wait_until(lambda: event_state(committed, event["id"]) == ("processed", 1))


def aged_event(session, account, *, age: timedelta, state: str = "pending") -> ProviderEvent:
    return make_event(session, account, state=state, received_at=datetime.now(UTC) - age)


def test_the_sweep_takes_only_old_pending_events(session, published_tasks):
    org = create_organization(session=session, name="Acme")
    account = add_provider_account(
        session=session, org_id=org.id, provider="stripe", secret=STRIPE_SECRET
    )
    stuck = aged_event(session, account, age=timedelta(minutes=10))
    aged_event(session, account, age=timedelta(seconds=5))
    aged_event(session, account, age=timedelta(minutes=10), state="processed")
    aged_event(session, account, age=timedelta(minutes=10), state="failed")
    with unit_of_work() as work:
        swept = sweep_pending_events(session=work, older_than_seconds=120, batch=100, backlog=0)
    assert swept == 1
    assert published_tasks == [("worker.tasks.process_event", [str(stuck.id)])]


def test_the_sweep_waits_while_the_queue_has_a_backlog(session, published_tasks):
    org = create_organization(session=session, name="Acme")
    account = add_provider_account(
        session=session, org_id=org.id, provider="stripe", secret=STRIPE_SECRET
    )
    aged_event(session, account, age=timedelta(minutes=10))
    with unit_of_work() as work:
        swept = sweep_pending_events(session=work, older_than_seconds=120, batch=10, backlog=11)
    assert swept == 0
    assert published_tasks == []
    assert session.scalars(select(ProviderEvent.state)).one() == "pending"
