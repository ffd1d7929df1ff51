"""Imported payments matched in claimed batches: the same verdicts as one at a time, nothing
lost when a payment fails, woken by the sweep, and lookups that use an index whatever the
statistics say."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, text

import shared.payments.matching as payment_matching
from shared.access.api_keys import create_api_key
from shared.ingest.events import ingest_webhook
from shared.ingest.processing import process_provider_event
from shared.matching.engine import reconcile_payment
from shared.payments.imports import upsert_payments
from shared.payments.matching import (
    MAX_MATCH_ATTEMPTS,
    RETRY_BASE,
    drain_pending_matches,
    match_pending_payments,
    sweep_pending_matches,
)
from shared.platform.db import unit_of_work
from shared.platform.tasks import MATCH_PAYMENTS
from tests.conftest import wait_until
from tests.support.factories import make_account, make_event, make_org, stripe_intent_event
from tests.support.signing import stripe_request
from worker.tasks import match_payments, sweep_pending_payment_matches

START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


@pytest.fixture(autouse=True)
def _empty_matching_queue(redis_client):
    # Wake-ups of payments that roll back must not linger for the worker tests.
    yield
    redis_client.delete("matching")


MATCHING_CRASHES = (
    "payments.batch_crashed",
    "payment.match_crashed",
    "events.batch_crashed",
    "event.crashed",
)


def deliver(session, account, **event) -> None:
    payload = stripe_intent_event(**event)
    stored = make_event(session, account, payload["type"], payload)
    assert process_provider_event(session=session, event_id=stored.id) == "processed"


def payment(external_id: str, amount: int, at: datetime, **fields) -> dict:
    return {
        "external_id": external_id,
        "provider": "stripe",
        "amount_minor": amount,
        "currency": "EUR",
        "status": "succeeded",
        "occurred_at": at.isoformat(),
        **fields,
    }


def a_day_of_sales(session) -> tuple:
    """An organisation whose webhooks are in, and the payments of its day (not imported).

    Every way a payment can match or differ: by provider reference, by merchant reference,
    an amount and a status that differ, the heuristic, a charge taken twice, a customer
    charged twice, and a payment no provider has told about.
    """
    org = make_org(session)
    account = make_account(session, org)
    at = START
    deliver(session, account, intent_id="pi_ref", amount=2500, created=at)
    deliver(session, account, intent_id="pi_ext", amount=3000, external_id="inv_ext", created=at)
    deliver(session, account, intent_id="pi_amt", amount=1200, external_id="inv_amt", created=at)
    deliver(session, account, intent_id="pi_sta", amount=900, external_id="inv_sta", created=at)
    deliver(session, account, intent_id="pi_heu", amount=4321, created=at)
    for intent in ("pi_dup1", "pi_dup2"):
        deliver(session, account, intent_id=intent, amount=5000, external_id="inv_dup", created=at)
    for index, intent in enumerate(("pi_cus1", "pi_cus2")):
        deliver(
            session,
            account,
            intent_id=intent,
            amount=700,
            external_id=f"inv_cus{index + 1}",
            customer="cus_1",
            created=at + timedelta(seconds=30 * index),
        )
    payments = [
        payment("inv_ref", 2500, at, provider_reference="pi_ref"),
        payment("inv_ext", 3000, at),
        payment("inv_amt", 1000, at),
        payment("inv_sta", 900, at, status="failed"),
        payment("inv_heu", 4321, at + timedelta(seconds=20)),
        payment("inv_dup", 5000, at),
        payment("inv_cus1", 700, at, customer_ref="cus_1"),
        payment("inv_cus2", 700, at + timedelta(seconds=30), customer_ref="cus_1"),
        payment("inv_none", 800, at),
    ]
    return org, payments


def outcome(session, org_id) -> dict:
    """What matching left, named by external ids and provider references (ids differ)."""
    session.flush()

    def rows(sql: str) -> list[tuple]:
        return [tuple(row) for row in session.execute(text(sql), {"org": org_id})]

    return {
        "bindings": sorted(
            rows(
                "SELECT r.provider_reference, p.external_id, r.match_method "
                "FROM provider_records r LEFT JOIN payments p ON p.id = r.payment_id "
                "WHERE r.org_id = :org"
            )
        ),
        "discrepancies": sorted(
            rows(
                "SELECT d.type, d.status, p.external_id, r.provider_reference, "
                "d.difference_minor FROM reconciliation_discrepancies d "
                "LEFT JOIN payments p ON p.id = d.payment_id "
                "LEFT JOIN provider_records r ON r.id = d.provider_record_id "
                "WHERE d.org_id = :org"
            ),
            key=repr,
        ),
        "items": Counter(
            rows(
                "SELECT i.outcome, i.match_method, p.external_id, r.provider_reference, "
                "i.amount_difference_minor FROM reconciliation_items i "
                "LEFT JOIN payments p ON p.id = i.payment_id "
                "LEFT JOIN provider_records r ON r.id = i.provider_record_id "
                "WHERE i.org_id = :org"
            )
        ),
        "actions": Counter(
            rows(
                "SELECT a.action FROM reconciliation_action_logs a "
                "JOIN reconciliation_discrepancies d ON d.id = a.discrepancy_id "
                "WHERE d.org_id = :org"
            )
        ),
    }


def pending(session, org_id=None) -> list[tuple]:
    return [
        tuple(row)
        for row in session.execute(
            text(
                "SELECT payment_id, attempts, last_error, retry_at, failed_at "
                "FROM pending_payment_matches WHERE org_id = coalesce(:org, org_id) "
                "ORDER BY retry_at, id"
            ),
            {"org": org_id},
        )
    ]


def test_a_batch_binds_and_judges_exactly_as_each_payment_matched_alone(session):
    alone_org, alone_payments = a_day_of_sales(session)
    upsert_payments(session=session, org_id=alone_org.id, items=alone_payments)
    in_claim_order = [row[0] for row in pending(session, alone_org.id)]
    session.execute(text("DELETE FROM pending_payment_matches"))
    for payment_id in in_claim_order:
        reconcile_payment(
            session=session, payment_id=payment_id, now=datetime.now(UTC), evidence={}
        )
    batch_org, batch_payments = a_day_of_sales(session)
    upsert_payments(session=session, org_id=batch_org.id, items=batch_payments)

    assert match_pending_payments(session=session) == len(batch_payments)

    assert pending(session) == []
    expected = outcome(session, alone_org.id)
    assert outcome(session, batch_org.id) == expected
    # The day really exercises every rule: each way of matching, and what differs.
    assert {method for _, _, method in expected["bindings"]} == {
        "provider_reference",
        "merchant_reference",
        "heuristic",
    }
    assert {row[0] for row in expected["discrepancies"]} == {
        "AmountMismatch",
        "DuplicateChargeSuspected",
    }


def test_a_payment_imported_twice_before_matching_is_matched_once_per_batch(session):
    org, payments = a_day_of_sales(session)
    upsert_payments(session=session, org_id=org.id, items=payments)
    changed = [{**payments[0], "amount_minor": 2400}]
    upsert_payments(session=session, org_id=org.id, items=changed)
    assert len(pending(session, org.id)) == len(payments) + 1

    match_pending_payments(session=session)

    assert pending(session) == []
    found = outcome(session, org.id)["discrepancies"]
    assert [row for row in found if row[2] == "inv_ref"] == [
        ("AmountMismatch", "open", "inv_ref", "pi_ref", 100)
    ]


def test_a_payment_whose_matching_fails_keeps_its_row_and_is_retried_later(session, monkeypatch):
    org, payments = a_day_of_sales(session)
    upsert_payments(session=session, org_id=org.id, items=payments)
    poison = session.scalar(
        text("SELECT id FROM payments WHERE org_id = :org AND external_id = 'inv_ext'"),
        {"org": org.id},
    )
    matched_for_real = payment_matching.reconcile_payments

    def failing_on_poison(**arguments):
        if poison in arguments["payment_ids"]:
            raise RuntimeError("cannot match this one")
        return matched_for_real(**arguments)

    monkeypatch.setattr(payment_matching, "reconcile_payments", failing_on_poison)
    now = datetime.now(UTC)

    assert match_pending_payments(session=session, now=now) == len(payments)

    [(payment_id, attempts, error, retry_at, failed_at)] = pending(session)
    assert (payment_id, attempts, failed_at) == (poison, 1, None)
    assert error == "RuntimeError: cannot match this one"
    assert retry_at == now + RETRY_BASE
    bound = {row[1] for row in outcome(session, org.id)["bindings"]}
    assert bound >= {"inv_ref", "inv_amt", "inv_heu"}
    assert "inv_ext" not in bound
    assert match_pending_payments(session=session, now=now) == 0  # not before retry_at

    monkeypatch.setattr(payment_matching, "reconcile_payments", matched_for_real)
    assert match_pending_payments(session=session, now=retry_at) == 1
    assert pending(session) == []
    assert ("pi_ext", "inv_ext", "merchant_reference") in outcome(session, org.id)["bindings"]


def test_a_payment_that_keeps_failing_is_given_up_on_and_left_visible(session, monkeypatch):
    org, payments = a_day_of_sales(session)
    upsert_payments(session=session, org_id=org.id, items=payments[:1])

    def failing(**_):
        raise RuntimeError("always")

    monkeypatch.setattr(payment_matching, "reconcile_payments", failing)
    now = datetime.now(UTC)
    for attempt in range(1, MAX_MATCH_ATTEMPTS + 1):
        assert match_pending_payments(session=session, now=now) == 1
        [(_, attempts, _, retry_at, failed_at)] = pending(session)
        assert attempts == attempt
        assert retry_at == now + RETRY_BASE * 2 ** (attempt - 1)
        now = retry_at
    assert failed_at == now - RETRY_BASE * 2 ** (MAX_MATCH_ATTEMPTS - 1)
    assert match_pending_payments(session=session, now=now + timedelta(days=1)) == 0


def test_the_sweep_wakes_a_worker_for_payments_left_waiting(session, published_tasks):
    org, payments = a_day_of_sales(session)
    upsert_payments(session=session, org_id=org.id, items=payments[:2])
    assert sweep_pending_matches(session=session, older_than_seconds=60, backlog=0) == 0

    session.execute(text("UPDATE pending_payment_matches SET retry_at = now() - interval '2 min'"))
    assert sweep_pending_matches(session=session, older_than_seconds=60, backlog=3) == 0
    assert sweep_pending_matches(session=session, older_than_seconds=60, backlog=0) == 1
    assert published_tasks == [(MATCH_PAYMENTS, [])]

    session.execute(text("UPDATE pending_payment_matches SET failed_at = now()"))
    assert sweep_pending_matches(session=session, older_than_seconds=60, backlog=0) == 0


# --- plans: every lookup uses an index, with or without statistics --------------------

SCALE = 20_000
BIG_TABLES = ("provider_records", "payments", "reconciliation_discrepancies")


def load_many(session, org_id) -> None:
    """SCALE records (half bound), payments, resolved discrepancies and future pending
    matches of ``org_id``, written as a bulk load is: no ANALYZE after it."""
    parameters = {"org": org_id, "n": SCALE, "start": START}
    session.execute(
        text(
            "INSERT INTO payments (org_id, external_id, provider, provider_reference, "
            "amount_minor, currency, status, occurred_at, customer_ref) "
            "SELECT :org, 'bulk_' || g, 'stripe', CASE WHEN g % 3 = 0 THEN 'pi_bulk_' || g END, "
            "100 + g, 'EUR', 'succeeded', :start + g * interval '1 s', 'cus_' || g % 5000 "
            "FROM generate_series(1, :n) g"
        ),
        parameters,
    )
    session.execute(
        text(
            "INSERT INTO provider_records (org_id, provider, provider_reference, "
            "merchant_reference, amount_minor, currency, status, occurred_at, last_event_at, "
            "customer_ref, payment_id, match_method) "
            "SELECT :org, 'stripe', 'pi_bulk_' || g, 'bulk_' || g, 100 + g, 'EUR', "
            "'succeeded', :start + g * interval '1 s', :start, 'cus_' || g % 5000, "
            "CASE WHEN g % 2 = 0 THEN p.id END, CASE WHEN g % 2 = 0 THEN 'merchant_reference' END "
            "FROM generate_series(1, :n) g "
            "JOIN payments p ON p.org_id = :org AND p.external_id = 'bulk_' || g"
        ),
        parameters,
    )
    session.execute(
        text(
            "INSERT INTO reconciliation_discrepancies (org_id, type, severity, status, "
            "payment_id, amount_minor, currency, resolution, resolved_at) "
            "SELECT :org, 'MissingProviderRecord', 'medium', 'resolved', p.id, 1, 'EUR', "
            "'ignored', :start FROM payments p WHERE p.org_id = :org"
        ),
        parameters,
    )
    session.execute(
        text(
            "INSERT INTO pending_payment_matches (org_id, payment_id, retry_at) "
            "SELECT :org, p.id, :start + interval '1 day' FROM payments p WHERE p.org_id = :org"
        ),
        parameters,
    )


@pytest.mark.parametrize("statistics", ["never analysed", "analysed while nearly empty"])
def test_every_statement_of_a_batch_uses_an_index_whatever_the_statistics(session, statistics):
    org, payments = a_day_of_sales(session)
    if statistics == "analysed while nearly empty":
        for table in (*BIG_TABLES, "pending_payment_matches"):
            session.execute(text(f"ANALYZE {table}"))
    load_many(session, org.id)
    upsert_payments(session=session, org_id=org.id, items=payments)
    session.execute(
        text(
            "INSERT INTO pending_payment_matches (org_id, payment_id) SELECT :org, id "
            "FROM payments WHERE org_id = :org AND external_id LIKE 'bulk_%' "
            "AND right(external_id, 2) = '00'"
        ),
        {"org": org.id},
    )
    connection = session.connection()
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", capture)
    try:
        claimed = match_pending_payments(session=session)
    finally:
        event.remove(connection, "before_cursor_execute", capture)

    assert claimed == len(payments) + SCALE // 100
    planned = [
        (statement, parameters)
        for statement, parameters in statements
        if statement.split()[0].upper() in ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")
    ]
    assert len(planned) >= 8
    for statement, parameters in planned:
        plan = "\n".join(connection.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars())
        scanned = [table for table in BIG_TABLES if f"Seq Scan on {table} " in plan]
        assert scanned == [], f"{statement}\n{plan}"
        assert "Seq Scan on pending_payment_matches" not in plan, plan


# --- through the API and a real worker ---------------------------------------------------


def count(engine, sql: str) -> int:
    with engine.connect() as connection:
        return connection.execute(text(sql)).scalar_one()


def test_payments_imported_before_and_after_their_webhooks_end_bound_and_judged(
    committed, committed_client, celery_worker
):
    log_start = len(celery_worker.log())
    with unit_of_work() as session:
        org = make_org(session)
        account = make_account(session, org)
        key = create_api_key(session=session, org_id=org.id, role="owner").secret
    headers = {"Authorization": f"Bearer {key}"}
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)

    def import_payments(*payments) -> None:
        response = committed_client.post(
            "/billing/payments", json={"payments": list(payments)}, headers=headers
        )
        assert response.status_code == 200, response.json
        assert response.json["rejected"] == []
        wait_until(lambda: count(committed, "SELECT count(*) FROM pending_payment_matches") == 0)

    def webhook(intent: str, amount: int, external_id: str | None = None) -> None:
        payload = stripe_intent_event(
            intent_id=intent, amount=amount, external_id=external_id, created=at
        )
        body, signed = stripe_request(json.dumps(payload).encode())
        ingest_webhook(provider="stripe", account_id=account.id, body=body, headers=signed)

    import_payments(
        payment("inv_b1", 2500, at, provider_reference="pi_b1"),
        payment("inv_b2", 3000, at),
        payment("inv_b3", 1000, at),
    )
    webhook("pi_b1", 2500)
    webhook("pi_b2", 3000, "inv_b2")
    webhook("pi_b3", 1200, "inv_b3")
    webhook("pi_a1", 4000, "inv_a1")
    webhook("pi_a2", 999, "inv_a2")
    wait_until(
        lambda: (
            count(committed, "SELECT count(*) FROM provider_events WHERE state = 'processed'") == 5
        )
    )
    import_payments(payment("inv_a1", 4000, at), payment("inv_a2", 1000, at))

    with unit_of_work() as session:
        found = outcome(session, org.id)
    assert found["bindings"] == [
        ("pi_a1", "inv_a1", "merchant_reference"),
        ("pi_a2", "inv_a2", "merchant_reference"),
        ("pi_b1", "inv_b1", "provider_reference"),
        ("pi_b2", "inv_b2", "merchant_reference"),
        ("pi_b3", "inv_b3", "merchant_reference"),
    ]
    assert [row[:4] for row in found["discrepancies"]] == [
        ("AmountMismatch", "open", "inv_a2", "pi_a2"),
        ("AmountMismatch", "open", "inv_b3", "pi_b3"),
    ]
    assert found["actions"] == Counter({("opened",): 2})
    # The worker serves the whole session: only this test's matching may not have crashed
    # (a run another test queued and truncated away crashes as "run.crashed", harmlessly).
    matching_crashes = [
        line
        for line in celery_worker.log()[log_start:].splitlines()
        if any(f'"{event}"' in line for event in MATCHING_CRASHES)
    ]
    assert matching_crashes == []


def test_the_task_claims_a_batch_per_transaction_until_none_is_left(committed, monkeypatch):
    # No message reaches Redis: a worker of the test session would take the rows.
    woken: list[str] = []
    monkeypatch.setattr(payment_matching, "wake_after_commit", lambda *_: None)
    monkeypatch.setattr(payment_matching, "send_wake_ups", lambda name, count: woken.append(name))
    with unit_of_work() as session:
        org, payments = a_day_of_sales(session)
        upsert_payments(session=session, org_id=org.id, items=payments)

    assert drain_pending_matches(limit=2, budget_seconds=0) == 2  # then hands over
    assert woken == [MATCH_PAYMENTS]
    assert drain_pending_matches(limit=2) == len(payments) - 2
    assert count(committed, "SELECT count(*) FROM pending_payment_matches") == 0
    assert match_payments() == 0
    with unit_of_work() as session:
        bindings = outcome(session, org.id)["bindings"]
    assert len(bindings) == 9
    assert [binding for binding in bindings if binding[1] is None] == []  # every record bound


def test_the_beat_task_wakes_a_worker_for_an_old_pending_match(
    committed, monkeypatch, published_tasks, redis_client
):
    monkeypatch.setattr(payment_matching, "wake_after_commit", lambda *_: None)
    redis_client.delete("matching")
    with unit_of_work() as session:
        org, payments = a_day_of_sales(session)
        upsert_payments(session=session, org_id=org.id, items=payments[:1])
        session.execute(
            text("UPDATE pending_payment_matches SET retry_at = now() - '1 h'::interval")
        )

    assert sweep_pending_payment_matches() == 1
    assert published_tasks == [(MATCH_PAYMENTS, [])]
