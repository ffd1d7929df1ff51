"""Events processed in batches: claims, poison events, redelivery, lock order, same verdicts."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import OperationalError

from shared.ingest import processing
from shared.ingest.processing import (
    IN_FLIGHT,
    forget_cached_settings,
    process_pending_events,
    process_provider_event,
)
from shared.matching import engine
from shared.models import (
    Payment,
    ProviderEvent,
    ProviderRecord,
    ReconciliationActionLog,
    ReconciliationDiscrepancy,
    ReconciliationItem,
)
from shared.platform.db import unit_of_work
from tests.conftest import wait_until
from tests.support.factories import (
    make_account,
    make_event,
    make_org,
    make_payment,
    stripe_dispute_event,
    stripe_intent_event,
    stripe_refund_event,
)
from worker.tasks import process_event

NOW = datetime.now(UTC) - timedelta(minutes=5)
DEADLOCK = "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40P01'; END $$"
INDEX_ROW_TOO_BIG = "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '54000'; END $$"


def scalar(engine, sql: str, **params):
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar()


def stored_events(session, account, payloads) -> list[ProviderEvent]:
    """The events, received in this order (claims take the oldest first)."""
    received = datetime.now(UTC)
    return [
        make_event(
            session,
            account,
            payload["type"],
            payload,
            received_at=received + timedelta(milliseconds=index),
        )
        for index, payload in enumerate(payloads)
    ]


def committed_events(payloads, **payment_fields) -> list[uuid.UUID]:
    """An organisation, one payment per ``payment_fields`` entry, and these events, committed."""
    with unit_of_work() as session:
        org = make_org(session)
        account = make_account(session, org)
        for fields in payment_fields.values():
            make_payment(session, org, **fields)
        return [event.id for event in stored_events(session, account, payloads)]


def intent(number: int, **fields) -> dict:
    return stripe_intent_event(
        intent_id=f"pi_{number}",
        external_id=f"inv_{number}",
        created=NOW + timedelta(seconds=number),
        **fields,
    )


def test_a_task_processes_its_event_with_the_other_pending_ones_in_one_transaction(committed):
    ids = committed_events(
        [intent(n) for n in range(5)], **{f"p{n}": {"external_id": f"inv_{n}"} for n in range(5)}
    )
    assert process_event(str(ids[2])) == "processed"
    assert scalar(committed, "SELECT count(*) FROM provider_events WHERE state = 'processed'") == 5
    assert scalar(committed, "SELECT count(*) FROM reconciliation_items") == 5
    # One transaction: one processing instant, and now() (the items' created_at) is its start.
    assert scalar(committed, "SELECT count(DISTINCT processed_at) FROM provider_events") == 1
    assert scalar(committed, "SELECT count(DISTINCT created_at) FROM reconciliation_items") == 1
    assert scalar(committed, "SELECT sum(attempts) FROM provider_events") == 5


def test_the_task_of_an_event_a_batch_already_processed_changes_nothing(committed):
    ids = committed_events([intent(1, amount=9999), intent(2)], p1={"external_id": "inv_1"})
    assert process_event(str(ids[0])) == "processed"
    written = scalar(committed, "SELECT count(*) FROM reconciliation_items")
    assert process_event(str(ids[1])) == "processed"  # its own delivery comes later: a no-op
    assert process_event(str(ids[1])) == "processed"  # and a redelivery of it too
    assert scalar(committed, "SELECT count(*) FROM reconciliation_items") == written == 1
    assert scalar(committed, "SELECT count(*) FROM reconciliation_discrepancies") == 1
    assert scalar(committed, "SELECT max(attempts) FROM provider_events") == 1


def test_events_another_batch_holds_are_skipped_and_their_task_waits_for_its_outcome(
    committed,
):
    ids = committed_events([intent(n) for n in range(3)])
    with committed.connect() as other:  # another batch, holding the second event
        other.execute(
            text("SELECT id FROM provider_events WHERE id = :id FOR UPDATE"), {"id": ids[1]}
        )
        with unit_of_work() as session:
            assert process_pending_events(session=session, event_id=ids[0]) == "processed"
        with committed.connect() as connection:
            states = dict(connection.execute(text("SELECT id, state FROM provider_events")).all())
        assert [states[i] for i in ids] == ["processed", "pending", "processed"]
        with unit_of_work() as session:
            assert process_pending_events(session=session, event_id=ids[1]) == IN_FLIGHT
        with ThreadPoolExecutor(max_workers=1) as pool:
            task = pool.submit(process_event, str(ids[1]))
            time.sleep(0.5)
            assert not task.done()  # it waits for the batch that holds its event
            other.rollback()  # that batch failed: the waiting task processes the event
            assert task.result(timeout=30) == "processed"
    assert scalar(committed, "SELECT count(*) FROM provider_events WHERE state = 'processed'") == 3


def test_a_poison_event_in_a_batch_fails_alone_and_its_writes_are_undone(session, monkeypatch):
    org = make_org(session)
    account = make_account(session, org)
    make_payment(session, org, external_id="inv_1")
    unreadable = intent(2)
    unreadable["data"]["object"]["amount"] = "lots"
    too_long = intent(3)
    too_long["data"]["object"]["id"] = secrets.token_hex(1500)  # random: no compression
    good, bad, long, crashing = stored_events(
        session, account, [intent(1), unreadable, too_long, intent(4)]
    )
    write = engine.write_changes

    def crash_on_pi_4(**changes) -> None:
        write(**changes)
        if any(r.provider_reference == "pi_4" for r in changes["rows"].records.values()):
            raise RuntimeError("bug about pi_4")  # once the batch's rows are written

    monkeypatch.setattr(engine, "write_changes", crash_on_pi_4)
    assert process_pending_events(session=session, event_id=good.id) == "processed"
    session.expire_all()
    states = {e.id: (e.state, e.last_error) for e in session.scalars(select(ProviderEvent))}
    assert states[good.id] == ("processed", None)
    assert states[bad.id][0] == states[long.id][0] == states[crashing.id][0] == "failed"
    assert "data.object.amount" in states[bad.id][1]
    assert "at most 255 characters" in states[long.id][1]
    assert states[crashing.id][1] == "RuntimeError: bug about pi_4"
    references = session.scalars(select(ProviderRecord.provider_reference)).all()
    assert references == ["pi_1"]  # nothing of the failed events was kept
    [item] = session.scalars(select(ReconciliationItem)).all()
    assert item.outcome == "matched"


def crash_in_write(monkeypatch, reference: str, sql: str) -> None:
    """Make the batch's write raise what PostgreSQL raises for ``sql`` when it holds
    ``reference`` (after the batch's rows are written)."""
    write = engine.write_changes

    def crashing(**changes) -> None:
        write(**changes)
        if any(r.provider_reference == reference for r in changes["rows"].records.values()):
            changes["session"].execute(text(sql))

    monkeypatch.setattr(engine, "write_changes", crashing)


def test_a_data_dependent_database_error_fails_only_its_event(session, monkeypatch):
    org = make_org(session)
    account = make_account(session, org)
    first, poison, last = stored_events(session, account, [intent(1), intent(2), intent(3)])
    crash_in_write(monkeypatch, "pi_2", INDEX_ROW_TOO_BIG)
    assert process_pending_events(session=session, event_id=first.id) == "processed"
    session.expire_all()
    states = {e.id: (e.state, e.last_error) for e in session.scalars(select(ProviderEvent))}
    assert states[first.id] == states[last.id] == ("processed", None)
    assert states[poison.id][0] == "failed"
    assert states[poison.id][1].startswith("OperationalError")
    references = session.scalars(select(ProviderRecord.provider_reference)).all()
    assert sorted(references) == ["pi_1", "pi_3"]


def test_a_transient_error_in_a_batch_rolls_it_all_back_for_the_retry(committed, monkeypatch):
    ids = committed_events([intent(1), intent(2), intent(3)])
    crash_in_write(monkeypatch, "pi_2", DEADLOCK)
    with pytest.raises(OperationalError):
        process_event(str(ids[0]))
    assert scalar(committed, "SELECT count(*) FROM provider_events WHERE state = 'pending'") == 3
    assert scalar(committed, "SELECT sum(attempts) FROM provider_events") == 0
    assert scalar(committed, "SELECT count(*) FROM provider_records") == 0


def test_a_task_whose_processing_crashes_fails_its_event_with_the_reason(committed, monkeypatch):
    [event_id] = committed_events([intent(1)])

    def crash(**_):
        raise RuntimeError("bug outside the batch")

    monkeypatch.setattr(processing, "process_pending_events", crash)
    assert process_event(str(event_id)) == "failed"
    assert scalar(committed, "SELECT state FROM provider_events") == "failed"
    assert scalar(committed, "SELECT last_error FROM provider_events") == (
        "RuntimeError: bug outside the batch"
    )


def test_concurrent_batches_take_shared_keys_in_one_order(committed):
    """Batch 1 claims events about pi_a then pi_b, batch 2 about pi_b then pi_a. Each takes
    its keys in sorted order, so neither can hold one while waiting for the other."""
    ids = committed_events(
        [intent(n, amount=2500) for n in (1, 2)]
        + [
            stripe_intent_event(intent_id="pi_2", created=NOW + timedelta(minutes=1)),
            stripe_intent_event(intent_id="pi_1", created=NOW + timedelta(minutes=1)),
        ],
        p1={"external_id": "inv_1"},
        p2={"external_id": "inv_2"},
    )
    org_id = scalar(committed, "SELECT org_id::text FROM provider_events LIMIT 1")
    waiting = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    errors: list[BaseException] = []

    def batch(event_id: str) -> None:
        try:
            with unit_of_work() as session:
                process_pending_events(session=session, event_id=event_id, limit=2)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    with committed.connect() as holder:  # both batches must queue behind pi_1's key
        holder.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"ref:{org_id}:stripe:pi_1"},
        )
        threads = [threading.Thread(target=batch, args=(ids[n],)) for n in (0, 2)]
        for started, thread in enumerate(threads, start=1):
            thread.start()  # the first claims events 0-1 and waits, then the second 2-3
            wait_until(lambda started=started: scalar(committed, waiting) == started, timeout=10)
        holder.rollback()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert scalar(committed, "SELECT count(*) FROM provider_events WHERE state = 'processed'") == 4
    assert scalar(committed, "SELECT count(*) FROM provider_records") == 2


def describe(session, org) -> dict:
    """What processing wrote for ``org``, in terms that do not depend on row ids."""
    session.flush()
    session.expire_all()
    externals = dict(session.execute(select(Payment.id, Payment.external_id)).all())
    records = {r.id: r for r in session.scalars(select(ProviderRecord))}

    def subject(payment_id, record_id) -> tuple:
        return (
            externals.get(payment_id),
            records[record_id].provider_reference if record_id else None,
        )

    found = session.scalars(
        select(ReconciliationDiscrepancy).where(ReconciliationDiscrepancy.org_id == org.id)
    ).all()
    items = session.scalars(
        select(ReconciliationItem).where(ReconciliationItem.org_id == org.id)
    ).all()
    actions = session.execute(
        select(ReconciliationActionLog.action, ReconciliationDiscrepancy.type)
        .join(ReconciliationDiscrepancy)
        .where(ReconciliationDiscrepancy.org_id == org.id)
    ).all()
    rows = {
        "records": [
            (
                r.provider_reference,
                r.status,
                r.amount_refunded_minor,
                externals.get(r.payment_id),
                r.match_method,
            )
            for r in records.values()
            if r.org_id == org.id
        ],
        "discrepancies": [
            (d.type, d.status, d.difference_minor, *subject(d.payment_id, d.provider_record_id))
            for d in found
        ],
        "items": [
            (
                i.outcome,
                i.match_method,
                i.amount_difference_minor,
                *subject(i.payment_id, i.provider_record_id),
            )
            for i in items
        ],
        "actions": actions,
    }
    return {name: sorted(values, key=repr) for name, values in rows.items()}


def scenario_events() -> list[dict]:
    """Events that interact: refunds around their charge, a duplicate charge for one invoice,
    the same customer charged twice, a mismatch corrected by a later event, an orphan."""
    return [
        stripe_refund_event(intent_id="pi_r", created=NOW + timedelta(minutes=2)),
        intent(10),
        stripe_intent_event(intent_id="pi_r", external_id="inv_r", created=NOW),
        stripe_intent_event(intent_id="pi_d1", external_id="inv_d", created=NOW),
        stripe_intent_event(
            intent_id="pi_d2", external_id="inv_d", created=NOW + timedelta(seconds=30)
        ),
        stripe_intent_event(intent_id="pi_c1", amount=777, customer="cus_1", created=NOW),
        stripe_intent_event(
            intent_id="pi_c2", amount=777, customer="cus_1", created=NOW + timedelta(minutes=1)
        ),
        stripe_intent_event(intent_id="pi_m", external_id="inv_m", amount=9000, created=NOW),
        stripe_intent_event(
            intent_id="pi_m", external_id="inv_m", created=NOW + timedelta(minutes=1)
        ),
        stripe_intent_event(intent_id="pi_h", amount=4321, created=NOW),
        stripe_intent_event(intent_id="pi_orphan", amount=1234, created=NOW),
        stripe_dispute_event(intent_id="pi_10", created=NOW + timedelta(minutes=3)),
        stripe_dispute_event(
            "charge.dispute.closed",
            intent_id="pi_10",
            status="lost",
            created=NOW + timedelta(minutes=4),
        ),
        stripe_dispute_event(intent_id="pi_orphan", created=NOW + timedelta(minutes=4)),
        stripe_dispute_event(
            "charge.dispute.closed",
            intent_id="pi_orphan",
            status="won",
            created=NOW + timedelta(minutes=5),
        ),
    ]


def scenario_org(session):
    org = make_org(session, auto_fix=True, grace_period_seconds=0)
    account = make_account(session, org)
    for external, fields in {
        "inv_r": {"status": "refunded", "amount_refunded_minor": 2500},
        "inv_10": {},
        "inv_d": {},
        "inv_m": {},
        "inv_h": {"amount_minor": 4321, "occurred_at": NOW - timedelta(minutes=2)},
    }.items():
        make_payment(session, org, external_id=external, **fields)
    return org, account


def test_a_batch_reaches_the_verdicts_of_its_events_matched_one_at_a_time(session):
    alone_org, alone_account = scenario_org(session)
    for stored in stored_events(session, alone_account, scenario_events()):
        assert process_provider_event(session=session, event_id=stored.id) == "processed"
    together_org, together_account = scenario_org(session)
    first, *_ = stored_events(session, together_account, scenario_events())
    assert process_pending_events(session=session, event_id=first.id) == "processed"
    assert (
        session.scalar(select(ProviderEvent.id).where(ProviderEvent.state != "processed")) is None
    )
    assert describe(session, together_org) == describe(session, alone_org)
    kinds = {entry[0] for entry in describe(session, together_org)["discrepancies"]}
    assert kinds >= {"DuplicateChargeSuspected", "MissingInternalRecord", "DisputeOpened"}
    actions = {entry[0] for entry in describe(session, together_org)["actions"]}
    assert actions >= {"dispute_updated", "auto_resolved"}


def test_matching_settings_are_read_once_per_process_for_a_few_seconds(session, monkeypatch):
    org = make_org(session)
    account = make_account(session, org)
    reads: list[str] = []
    read_settings = processing.match_settings

    def counted_settings(**arguments):
        reads.append("organization")
        return read_settings(**arguments)

    def count(connection, cursor, statement, *args) -> None:
        if "FROM provider_accounts" in statement:
            reads.append("account")

    forget_cached_settings()
    monkeypatch.setattr(processing, "match_settings", counted_settings)
    event.listen(session.get_bind(), "before_cursor_execute", count)
    try:
        for number in range(3):
            [stored] = stored_events(session, account, [intent(number)])
            process_provider_event(session=session, event_id=stored.id)
        assert sorted(reads) == ["account", "organization"]
        later = time.monotonic() + processing.SETTINGS_CACHE_SECONDS
        for cache in (processing._account_options_cache, processing._match_settings_cache):
            monkeypatch.setattr(cache, "clock", lambda: later)
        [stored] = stored_events(session, account, [intent(9)])
        process_provider_event(session=session, event_id=stored.id)
        assert sorted(reads) == ["account", "account", "organization", "organization"]
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", count)


@pytest.mark.parametrize("limit", [1, 3])
def test_a_claim_never_takes_more_than_its_limit(session, limit):
    org = make_org(session)
    account = make_account(session, org)
    first, *_ = stored_events(session, account, [intent(n) for n in range(5)])
    process_pending_events(session=session, event_id=first.id, limit=limit)
    processed = session.scalars(select(ProviderEvent).where(ProviderEvent.state == "processed"))
    assert len(processed.all()) == limit
