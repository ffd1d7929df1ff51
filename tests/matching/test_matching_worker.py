"""Matching through a real Celery worker on real Redis, and under real concurrency."""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from shared.access.api_keys import create_api_key
from shared.ingest.events import ingest_webhook
from shared.ingest.processing import SETTINGS_CACHE_SECONDS
from shared.payments.matching import queue_matches
from shared.platform.db import unit_of_work
from tests.conftest import wait_until
from tests.support.factories import (
    make_account,
    make_event,
    make_org,
    make_payment,
    stripe_intent_event,
    stripe_refund_event,
)
from tests.support.signing import stripe_request
from worker.tasks import process_event


def setup_org(**payment_fields):
    with unit_of_work() as session:
        org = make_org(session)
        account = make_account(session, org)
        payment = make_payment(session, org, **payment_fields) if payment_fields else None
    return org, account, payment


def deliver(account_id, payload: dict) -> None:
    body, headers = stripe_request(json.dumps(payload).encode())
    ingest_webhook(provider="stripe", account_id=account_id, body=body, headers=headers)


def scalar(engine, sql: str, **params):
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar()


def all_processed(engine) -> bool:
    return scalar(engine, "SELECT count(*) FROM provider_events WHERE state <> 'processed'") == 0


def payments_checksum(engine) -> str:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT payments::text FROM payments ORDER BY id")).scalars()
        return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def test_twenty_concurrent_events_for_one_payment_open_one_discrepancy(committed):
    _org, account, _payment = setup_org(provider_reference="pi_1", amount_minor=2000)
    base = datetime.now(UTC) - timedelta(minutes=5)
    event_ids = []
    with unit_of_work() as session:
        for index in range(20):
            payload = stripe_intent_event(amount=2500, created=base + timedelta(seconds=index))
            event_ids.append(str(make_event(session, account, payload["type"], payload).id))
    with ThreadPoolExecutor(max_workers=10) as pool:
        states = list(pool.map(process_event, event_ids))
    assert states == ["processed"] * 20
    assert scalar(committed, "SELECT count(*) FROM reconciliation_discrepancies") == 1
    assert scalar(committed, "SELECT type FROM reconciliation_discrepancies") == "AmountMismatch"
    assert scalar(committed, "SELECT count(*) FROM provider_records") == 1
    assert (
        scalar(committed, "SELECT count(*) FROM reconciliation_action_logs WHERE action = 'opened'")
        == 1
    )


def test_refund_before_charge_converges_through_the_worker(committed, celery_worker):
    _org, account, _payment = setup_org(
        provider_reference="pi_9", status="refunded", amount_refunded_minor=2500
    )
    now = datetime.now(UTC)
    deliver(account.id, stripe_refund_event(intent_id="pi_9", created=now))
    deliver(account.id, stripe_intent_event(intent_id="pi_9", created=now - timedelta(minutes=1)))
    wait_until(lambda: all_processed(committed))
    status = scalar(
        committed, "SELECT status FROM provider_records WHERE provider_reference = 'pi_9'"
    )
    assert status == "refunded"
    assert scalar(committed, "SELECT count(*) FROM reconciliation_discrepancies") == 0


def test_a_payment_imported_after_its_webhook_matches_through_the_worker(committed, celery_worker):
    org, account, _ = setup_org()
    deliver(account.id, stripe_intent_event(intent_id="pi_late", external_id="inv_late"))
    wait_until(lambda: all_processed(committed))
    assert scalar(committed, "SELECT payment_id FROM provider_records") is None
    with unit_of_work() as session:
        payment = make_payment(session, org, external_id="inv_late")
        queue_matches(session=session, org_id=org.id, payment_ids=[payment.id])
    bound = lambda: scalar(committed, "SELECT payment_id FROM provider_records")  # noqa: E731
    assert wait_until(bound) == payment.id
    assert scalar(committed, "SELECT count(*) FROM reconciliation_discrepancies") == 0


def test_a_duplicate_charge_opens_duplicate_charge_suspected_through_the_worker(
    committed, celery_worker
):
    _org, account, payment = setup_org(external_id="inv_twice")
    now = datetime.now(UTC) - timedelta(minutes=2)
    before = payments_checksum(committed)
    for index, intent in enumerate(("pi_first", "pi_second")):
        deliver(
            account.id,
            stripe_intent_event(
                intent_id=intent, external_id="inv_twice", created=now + timedelta(seconds=index)
            ),
        )
    wait_until(lambda: all_processed(committed))
    found = scalar(committed, "SELECT type FROM reconciliation_discrepancies")
    assert found == "DuplicateChargeSuspected"
    assert payments_checksum(committed) == before
    assert scalar(committed, "SELECT payment_id FROM reconciliation_discrepancies") == payment.id


def test_a_tolerance_changed_through_the_api_reaches_the_running_worker(
    committed, committed_client, celery_worker
):
    """No restart: once the worker's cached settings expire (SETTINGS_CACHE_SECONDS),
    the next event is judged under the new tolerance."""
    org, account, _ = setup_org(provider_reference="pi_before", amount_minor=2000)
    with unit_of_work() as session:
        make_payment(session, org, provider_reference="pi_after", amount_minor=2000)
        key = create_api_key(session=session, org_id=org.id, role="owner").secret
    headers = {"Authorization": f"Bearer {key}"}
    deliver(account.id, stripe_intent_event(intent_id="pi_before", amount=2300))
    wait_until(lambda: all_processed(committed))
    assert scalar(committed, "SELECT type FROM reconciliation_discrepancies") == "AmountMismatch"

    version = committed_client.get("/billing/settings", headers=headers).headers["ETag"]
    changed = committed_client.patch(
        "/billing/settings",
        json={"amount_tolerance_minor": 500},
        headers={**headers, "If-Match": version},
    )
    assert changed.status_code == 200, changed.json
    time.sleep(SETTINGS_CACHE_SECONDS + 0.5)
    deliver(account.id, stripe_intent_event(intent_id="pi_after", amount=2300))
    wait_until(lambda: all_processed(committed))

    assert scalar(committed, "SELECT count(*) FROM reconciliation_discrepancies") == 1
    matched = "SELECT outcome FROM reconciliation_items i JOIN payments p ON p.id = i.payment_id"
    assert scalar(committed, f"{matched} WHERE p.provider_reference = 'pi_after'") == "matched"
