"""Fault injection: Redis killed mid-burst, a worker SIGKILLed mid-batch, database sessions
terminated under load, and storms of duplicate and out-of-order deliveries.

Each test owns its Redis server, API and worker processes (tests/support/processes.py and
``tests.conftest.WorkerProcess``), never the machine's shared services, and judges the
service only by what it shows: HTTP answers and the rows in its tables.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql

from shared.access.api_keys import create_api_key
from shared.platform.db import unit_of_work
from shared.platform.tasks import QUEUES
from tests.conftest import (
    ADMIN_DATABASE_URL,
    TEST_DATABASE,
    TEST_DATABASE_URL,
    WorkerProcess,
    wait_until,
)
from tests.support.factories import (
    make_account,
    make_org,
    make_payment,
    stripe_intent_event,
    stripe_refund_event,
)
from tests.support.processes import ApiServer, RedisServer
from tests.support.signing import stripe_event, stripe_request
from worker.celery_app import celery_app
from worker.schedule import BEAT_SCHEDULE

PROBLEM_JSON = "application/problem+json"
# The smallest PENDING_EVENT_SWEEP_SECONDS the settings accept; beat is played by the test.
SWEEP_AGE_SECONDS = 10
SWEEP_INTERVAL_SECONDS = 5.0
SWEEP_TASK = BEAT_SCHEDULE["sweep-pending-events"]["task"]
# Internal payments booked this much short of what the provider charged: one AmountMismatch.
SHORT_BY_MINOR = 100
# A provider retries a 503 (the service says Retry-After: 5; the tests wait less).
PROVIDER_RETRY_DELAY_SECONDS = 0.2
PROVIDER_RETRIES = 50


# --- Processes -------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, on a free port, in memory only."""
    with RedisServer(tmp_path) as server:
        yield server


@pytest.fixture
def start_api(committed, own_redis: RedisServer, tmp_path: Path) -> Iterator[Callable]:
    """Start ``recon serve`` on the test database and the test's Redis; stopped afterwards."""
    servers: list[ApiServer] = []

    def start(threads: int = 1) -> ApiServer:
        server = ApiServer(
            tmp_path / f"serve-{len(servers)}.log",
            database_url=TEST_DATABASE_URL,
            redis_url=own_redis.url(),
            threads=threads,
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def start_worker(committed, own_redis: RedisServer, tmp_path: Path) -> Iterator[Callable]:
    """Start a Celery worker (two pool processes) on the test's Redis; stopped afterwards."""
    workers: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(
            tmp_path / f"worker-{len(workers)}.log",
            redis_url=own_redis.url(),
            concurrency=2,
            environment={"PENDING_EVENT_SWEEP_SECONDS": str(SWEEP_AGE_SECONDS)},
        )
        workers.append(worker)
        worker.wait_for_log("ready.", timeout=60)
        return worker

    yield start
    # Killed, not stopped: the test is over, and a warm shutdown may sit out the
    # soft-shutdown timeout.
    for worker in workers:
        worker.kill()


def send_pending_sweep(redis_url: str) -> None:
    """Queue the pending-event sweep on ``redis_url``, as beat does every minute."""
    with celery_app.connection_for_write(redis_url) as connection:
        celery_app.send_task(SWEEP_TASK, connection=connection)


def queued_messages(redis_url: str) -> int:
    """Task messages waiting in every queue of the broker at ``redis_url``."""
    client = redis.Redis.from_url(redis_url)
    try:
        return sum(client.llen(queue) for queue in QUEUES)
    finally:
        client.close()


# --- The database, seen from outside -----------------------------------------------------


def rows(query: str) -> list[tuple]:
    """Rows of ``query`` on the test database, on a connection of its own.

    No pool: the tests terminate the database's sessions, and a pooled connection would
    be one of them.
    """
    with psycopg.connect(TEST_DATABASE_URL) as connection:
        return connection.execute(query).fetchall()


def events_by_state() -> dict[str, int]:
    """How many stored provider events are in each state."""
    return dict(rows("SELECT state, count(*) FROM provider_events GROUP BY state"))


def terminate_backends() -> int:
    """``pg_terminate_backend`` every session of the test database; how many there were."""
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as admin:
        terminated = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (TEST_DATABASE,),
        ).fetchall()
    return sum(1 for (done,) in terminated if done)


def allow_connections(allowed: bool) -> None:
    """Let sessions into the test database, or refuse them (and end the current ones)."""
    statement = sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
        sql.Identifier(TEST_DATABASE), sql.Literal(allowed)
    )
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as admin:
        admin.execute(statement)
    if not allowed:
        terminate_backends()


def wait_for_processing(
    expected: int,
    *,
    worker: WorkerProcess,
    sweep_on: str | None,
    timeout: float,
    restart: Callable[[], WorkerProcess] | None = None,
) -> None:
    """Wait until ``expected`` events are stored and all processed.

    With ``sweep_on`` (a broker URL) the pending sweep is queued every few seconds once
    the queues are drained, as beat would (sooner it would only pile up duplicates);
    without, the tasks alone must get there. A worker that exits fails the wait, unless
    ``restart`` starts another, as the deployment's restart policy does.
    """
    deadline = time.monotonic() + timeout
    next_sweep = 0.0
    while True:
        states = events_by_state()
        if states == {"processed": expected}:
            return
        if worker.process.poll() is not None:
            if restart is None:
                pytest.fail(f"the worker exited; events by state: {states}\n{worker.log()[-4000:]}")
            worker = restart()
        if time.monotonic() > deadline:
            pytest.fail(f"events by state after {timeout}s: {states}\n{worker.log()[-4000:]}")
        if (
            sweep_on is not None
            and time.monotonic() >= next_sweep
            and queued_messages(sweep_on) == 0
        ):
            send_pending_sweep(sweep_on)
            next_sweep = time.monotonic() + SWEEP_INTERVAL_SECONDS
        time.sleep(0.25)


# --- What is sent ----------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A Stripe account, one internal payment per event, and the mismatches to expect."""

    account_id: uuid.UUID
    events: list[dict]
    short_payments: int


def seed_scenario(count: int, *, short_every: int = 10) -> Scenario:
    """``count`` internal payments, each with the ``payment_intent.succeeded`` event of its
    charge; every ``short_every``-th payment is booked short (one AmountMismatch each)."""
    events = []
    with unit_of_work() as session:
        org = make_org(session)
        account = make_account(session, org)
        for number in range(count):
            event = stripe_event()
            intent = event["data"]["object"]
            short = number % short_every == 0
            make_payment(
                session,
                org,
                external_id=intent["metadata"]["external_id"],
                amount_minor=intent["amount"] - (SHORT_BY_MINOR if short else 0),
            )
            events.append(event)
    return Scenario(account.id, events, short_payments=len(range(0, count, short_every)))


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, as the sender saw it."""

    status: int
    content_type: str
    retry_after: str | None
    body: bytes

    @property
    def accepted(self) -> bool:
        """2xx: the provider is done with this delivery."""
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        """503 problem+json with Retry-After and no stack trace: the provider tries again."""
        return (
            self.status == 503
            and self.content_type == PROBLEM_JSON
            and self.retry_after is not None
            and json.loads(self.body)["status"] == 503
            and b"Traceback" not in self.body
        )


def http(url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
    """GET ``url`` (POST when there is a ``body``); every status is an Answer."""
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Answer(
                response.status,
                response.headers.get_content_type(),
                response.headers.get("Retry-After"),
                response.read(),
            )
    except urllib.error.HTTPError as error:
        with error:
            return Answer(
                error.code,
                error.headers.get_content_type(),
                error.headers.get("Retry-After"),
                error.read(),
            )


def deliver(api: ApiServer, account_id: uuid.UUID, event: dict) -> Answer:
    """POST ``event`` to the Stripe webhook, signed at sending time."""
    body, headers = stripe_request(event)
    return http(
        f"{api.base_url}/webhooks/stripe/{account_id}",
        body=body,
        headers={**headers, "Content-Type": "application/json"},
    )


def deliver_until_accepted(api: ApiServer, account_id: uuid.UUID, event: dict) -> list[Answer]:
    """Deliver like a provider: again after a retryable answer; every answer, in order."""
    answers = [deliver(api, account_id, event)]
    while answers[-1].retryable and len(answers) <= PROVIDER_RETRIES:
        time.sleep(PROVIDER_RETRY_DELAY_SECONDS)
        answers.append(deliver(api, account_id, event))
    return answers


def deliver_at_once(api: ApiServer, account_id: uuid.UUID, events: list[dict]) -> list[Answer]:
    """Deliver every event in its own thread, all released together by a barrier."""
    barrier = threading.Barrier(len(events))

    def released(event: dict) -> Answer:
        barrier.wait(timeout=60)
        return deliver(api, account_id, event)

    with ThreadPoolExecutor(max_workers=len(events)) as pool:
        return list(pool.map(released, events))


def unexpected(answers: list[Answer]) -> list[Answer]:
    """The answers that are neither 2xx nor a retryable 503."""
    return [answer for answer in answers if not (answer.accepted or answer.retryable)]


# --- The verdict -----------------------------------------------------------------------


def assert_each_event_took_effect_once(scenario: Scenario) -> None:
    """One processed row per event id, one item per payment, the expected discrepancies
    once each, and one ``opened`` log entry per discrepancy."""
    stored = rows("SELECT provider_event_id, state FROM provider_events")
    assert sorted(event_id for event_id, _ in stored) == sorted(e["id"] for e in scenario.events)
    assert {state for _, state in stored} == {"processed"}

    items = rows("SELECT payment_id, count(*) FROM reconciliation_items GROUP BY payment_id")
    assert None not in dict(items)
    assert len(items) == len(scenario.events)
    assert {count for _, count in items} == {1}

    discrepancies = rows(
        "SELECT type, payment_id, provider_record_id, difference_minor"
        " FROM reconciliation_discrepancies"
    )
    assert len(discrepancies) == scenario.short_payments
    assert len(set(discrepancies)) == len(discrepancies)
    assert {(kind, difference) for kind, _, _, difference in discrepancies} <= {
        ("AmountMismatch", SHORT_BY_MINOR)
    }
    opened = rows("SELECT count(*) FROM reconciliation_action_logs WHERE action = 'opened'")
    assert opened == [(scenario.short_payments,)]


# --- Faults ----------------------------------------------------------------------------

BURST = 500
KILL_REDIS_AFTER = 150


@pytest.mark.slow
def test_redis_killed_during_a_burst_loses_no_webhook_and_each_event_takes_effect_once(
    committed, own_redis, start_api, start_worker
):
    scenario = seed_scenario(BURST)
    api = start_api()
    worker = start_worker()
    answered = Counter()
    lock = threading.Lock()
    part_way = threading.Event()

    def counted(event: dict) -> Answer:
        answer = deliver(api, scenario.account_id, event)
        with lock:
            answered["all"] += 1
            if answered["all"] == KILL_REDIS_AFTER:
                part_way.set()
        return answer

    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(counted, event) for event in scenario.events]
        assert part_way.wait(timeout=120)
        own_redis.kill()
        answered_before_kill = answered["all"]
        first_answers = [future.result() for future in futures]

    assert answered_before_kill < BURST
    assert unexpected(first_answers) == []
    for event, answer in zip(scenario.events, first_answers, strict=True):
        if not answer.accepted:
            assert deliver_until_accepted(api, scenario.account_id, event)[-1].accepted
    # Whatever was queued died with Redis, and nothing could be queued after: the sweep
    # has work to do.
    assert events_by_state().get("pending", 0) > 0

    own_redis.start()
    # Celery 5.7 with kombu 5.7 may end the worker on the outage instead of reconnecting
    # (docs/decisions.md); the deployment restarts it, and so does the test.
    wait_for_processing(
        BURST, worker=worker, sweep_on=own_redis.url(), timeout=240, restart=start_worker
    )
    assert_each_event_took_effect_once(scenario)


FIRST_WAVE = 100
SECOND_WAVE = 200


def batches_waiting_on(table: str) -> int:
    """Sessions of the test database waiting for a lock on ``table``."""
    return rows(
        f"SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = '{table}'::regclass"
    )[0][0]


@pytest.mark.slow
def test_worker_killed_mid_batch_loses_no_event_and_duplicates_nothing(
    committed, own_redis, start_api, start_worker
):
    scenario = seed_scenario(FIRST_WAVE + SECOND_WAVE)
    first_wave, second_wave = scenario.events[:FIRST_WAVE], scenario.events[FIRST_WAVE:]
    api = start_api()
    first = start_worker()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda e: deliver(api, scenario.account_id, e), first_wave))
        wait_until(lambda: events_by_state() == {"processed": FIRST_WAVE}, timeout=120)
        # Items cannot be written while this lock is held: the worker's next batch has
        # claimed its events and changed their records when it stops, mid-transaction.
        with psycopg.connect(TEST_DATABASE_URL) as blocker:
            blocker.execute("LOCK TABLE reconciliation_items IN EXCLUSIVE MODE")
            answers += pool.map(lambda e: deliver(api, scenario.account_id, e), second_wave)
            delivered_at = time.monotonic()
            wait_until(lambda: batches_waiting_on("reconciliation_items") > 0, timeout=60)
            first.kill()
    assert {answer.status for answer in answers} == {200}
    assert events_by_state() == {"processed": FIRST_WAVE, "pending": SECOND_WAVE}

    # The killed worker's unacknowledged messages come back only after the broker's
    # visibility timeout (hours, for period runs); the pending sweep covers their events.
    # Sent now, it also races the backlog: every event still pending gets a second
    # message, and must take effect once all the same.
    time.sleep(max(0.0, delivered_at + SWEEP_AGE_SECONDS - time.monotonic()))
    send_pending_sweep(own_redis.url())
    second = start_worker()
    wait_for_processing(
        FIRST_WAVE + SECOND_WAVE, worker=second, sweep_on=own_redis.url(), timeout=240
    )
    assert_each_event_took_effect_once(scenario)


UNDER_LOAD = 200


@pytest.mark.slow
def test_database_sessions_terminated_under_load_tasks_retry_and_the_api_answers_503(
    committed, own_redis, start_api, start_worker
):
    scenario = seed_scenario(UNDER_LOAD)
    api = start_api()
    worker = start_worker()
    terminated = []
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [
                pool.submit(deliver_until_accepted, api, scenario.account_id, event)
                for event in scenario.events
            ]
            for share in (0.25, 0.5, 0.75):
                wait_until(
                    lambda share=share: sum(f.done() for f in futures) >= share * UNDER_LOAD,
                    timeout=120,
                    interval=0.02,
                )
                terminated.append(terminate_backends())
                time.sleep(0.5)
            histories = [future.result() for future in futures]
        wait_for_processing(UNDER_LOAD, worker=worker, sweep_on=None, timeout=180)
    finally:
        committed.dispose()

    assert all(terminated), f"sessions terminated each time: {terminated}"
    answers = [answer for history in histories for answer in history]
    assert unexpected(answers) == []
    assert all(history[-1].accepted for history in histories)
    assert any(answer.status == 503 for answer in answers)
    assert "retry: Retry in" in worker.log()
    assert_each_event_took_effect_once(scenario)
    # The same API process serves on: a process meets its dead pooled sessions once (a
    # retryable 503, no pre-ping by design), then answers 2xx again.
    assert deliver_until_accepted(api, scenario.account_id, scenario.events[0])[-1].accepted
    assert api.process.poll() is None


def test_api_answers_503_problem_json_while_the_database_refuses_sessions_then_recovers(
    committed, own_redis, start_api
):
    with unit_of_work() as session:
        org = make_org(session)
        account = make_account(session, org)
        key = create_api_key(session=session, org_id=org.id, role="owner").secret
    api = start_api()
    event = stripe_event()
    auth = {"Authorization": f"Bearer {key}"}
    triage = [
        f"{api.base_url}/billing/reconciliation/discrepancies",
        f"{api.base_url}/billing/webhooks/events",
    ]
    assert [http(url, headers=auth).status for url in triage] == [200, 200]

    try:
        allow_connections(False)
        during = [deliver(api, account.id, event)] + [http(url, headers=auth) for url in triage]
    finally:
        allow_connections(True)
        committed.dispose()

    for answer in during:
        assert answer.retryable, answer
        assert json.loads(answer.body)["detail"] == "the database is unreachable; retry shortly"
    # Each process finds its dead pooled sessions on first use; no restart is needed.
    recovered = wait_until(
        lambda: (answer := deliver(api, account.id, event)).accepted and answer, timeout=30
    )
    assert json.loads(recovered.body) == {"received": 1, "stored": 1, "duplicate": False}
    wait_until(lambda: all(http(url, headers=auth).status == 200 for url in triage), timeout=30)
    assert rows("SELECT provider_event_id FROM provider_events") == [(event["id"],)]


# --- Storms ----------------------------------------------------------------------------

STORM = 50


def test_the_same_event_delivered_50_times_at_once_is_stored_queued_and_applied_once(
    committed, own_redis, start_api, start_worker
):
    scenario = seed_scenario(1, short_every=1)
    api = start_api(threads=8)
    answers = deliver_at_once(api, scenario.account_id, scenario.events * STORM)
    assert {answer.status for answer in answers} == {200}
    receipts = Counter(json.loads(answer.body)["stored"] for answer in answers)
    assert receipts == {1: 1, 0: STORM - 1}
    assert queued_messages(own_redis.url()) == 1

    worker = start_worker()
    wait_for_processing(1, worker=worker, sweep_on=None, timeout=60)
    assert rows("SELECT attempts FROM provider_events") == [(1,)]
    assert_each_event_took_effect_once(scenario)


OUT_OF_ORDER_PAYMENTS = 10


def test_out_of_order_events_delivered_at_once_converge_to_the_providers_latest_state(
    committed, own_redis, start_api, start_worker
):
    """Per payment: created, processing, succeeded, then a full refund, all shuffled."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    refunded_at = start + timedelta(seconds=90)
    events: list[dict] = []
    expected_records = {}
    with unit_of_work() as session:
        org = make_org(session)
        account = make_account(session, org)
        for number in range(OUT_OF_ORDER_PAYMENTS):
            intent_id = f"pi_{uuid.uuid4().hex[:24]}"
            short = number % 2 == 0
            payment = make_payment(
                session, org, amount_minor=2500 - (SHORT_BY_MINOR if short else 0)
            )
            for offset, event_type in enumerate(
                [
                    "payment_intent.created",
                    "payment_intent.processing",
                    "payment_intent.succeeded",
                ]
            ):
                events.append(
                    stripe_intent_event(
                        event_type,
                        intent_id=intent_id,
                        external_id=payment.external_id,
                        created=start + timedelta(seconds=30 * offset),
                    )
                )
            events.append(
                stripe_refund_event(
                    intent_id=intent_id, refund_id=f"re_{number}", created=refunded_at
                )
            )
            expected_records[intent_id] = (
                "refunded", "succeeded", 2500, 2500, refunded_at, payment.id, short,
            )  # fmt: skip
    random.shuffle(events)
    api = start_api(threads=8)
    worker = start_worker()

    answers = deliver_at_once(api, account.id, events)
    assert {answer.status for answer in answers} == {200}
    wait_for_processing(len(events), worker=worker, sweep_on=None, timeout=120)

    records = rows(
        "SELECT provider_reference, status, payment_status, amount_minor,"
        " amount_refunded_minor, last_event_at, payment_id,"
        " EXISTS (SELECT FROM reconciliation_discrepancies d WHERE d.provider_record_id = r.id)"
        " FROM provider_records r"
    )
    assert {reference: rest for reference, *rest in records} == {
        reference: list(expected) for reference, expected in expected_records.items()
    }
    discrepancies = rows("SELECT type, difference_minor FROM reconciliation_discrepancies")
    assert discrepancies == [("AmountMismatch", SHORT_BY_MINOR)] * (OUT_OF_ORDER_PAYMENTS // 2)
    opened = rows("SELECT count(*) FROM reconciliation_action_logs WHERE action = 'opened'")
    assert opened == [(OUT_OF_ORDER_PAYMENTS // 2,)]
    assert rows("SELECT DISTINCT attempts FROM provider_events") == [(1,)]
