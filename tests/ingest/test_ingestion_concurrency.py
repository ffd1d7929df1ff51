"""Concurrent webhooks: stored together, each answered only once its own row is committed.

The INSERT of a batch is held back by a lock taken from another connection, so the test
controls when the batch commits (or fails) while the requests are waiting.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from celery.signals import after_task_publish
from sqlalchemy import text

from api.app import create_app
from cli.processes import gunicorn_argv
from cli.services import free_port
from shared.access.organizations import create_organization
from shared.ingest import events as ingestion
from shared.platform.db import unit_of_work
from shared.providers import VerifiedEvent
from shared.providers.accounts import add_provider_account
from tests.conftest import REPO_ROOT, TEST_DATABASE_URL, TEST_REDIS_URL, wait_until
from tests.support.signing import STRIPE_SECRET, stripe_event, stripe_request

WAITING_INSERTS = text(
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
    "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO provider_events%'"
)


@pytest.fixture
def account_id(committed, celery_worker) -> Iterator[uuid.UUID]:
    """A committed Stripe account; at the end, the test's events have been processed.

    The stored events' tasks are real: the suite's worker takes them, and it must be done
    before ``committed`` truncates the tables (a TRUNCATE beside it can deadlock).
    """
    with unit_of_work() as session:
        org = create_organization(session=session, name="Acme")
        account = add_provider_account(
            session=session, org_id=org.id, provider="stripe", secret=STRIPE_SECRET
        )
    ingestion.forget_cached_accounts()
    yield account.id
    assert wait_until(lambda: pending_events(committed) == 0, timeout=60)


def pending_events(engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(
            text("SELECT count(*) FROM provider_events WHERE state = 'pending'")
        )


@contextmanager
def inserts_held(engine) -> Iterator:
    """Block every INSERT into provider_events until the block ends (reads still work)."""
    with engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE provider_events IN SHARE ROW EXCLUSIVE MODE"))
        try:
            yield blocker
        finally:
            blocker.rollback()


def waiting_insert_pids(engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.scalars(WAITING_INSERTS))


def queued_deliveries() -> int:
    return len(ingestion._deliveries._waiting)


def stored(engine) -> list[tuple]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text("SELECT id, provider_event_id, received_at FROM provider_events")
            )
        )


class Deliveries:
    """Signed Stripe webhooks posted from threads through the Flask app (real commits)."""

    def __init__(self, account_id: uuid.UUID) -> None:
        self.app = create_app()
        self.account_id = account_id
        self.responses: dict[int, object] = {}
        self.threads: list[threading.Thread] = []

    def post(self, index: int, body: bytes, headers: dict[str, str]) -> None:
        def run() -> None:
            self.responses[index] = self.app.test_client().post(
                f"/webhooks/stripe/{self.account_id}",
                data=body,
                headers=headers,
                content_type="application/json",
            )

        thread = threading.Thread(target=run)
        self.threads.append(thread)
        thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(30)
            assert not thread.is_alive()


def start_batch(engine, deliveries: Deliveries, requests: list[tuple[bytes, dict]]) -> None:
    """Post the first request (it leads, blocked in its INSERT), then the others behind it."""
    deliveries.post(0, *requests[0])
    assert wait_until(lambda: len(waiting_insert_pids(engine)) == 1)
    for index, request in enumerate(requests[1:], start=1):
        deliveries.post(index, *request)
    assert wait_until(lambda: queued_deliveries() == len(requests) - 1)


def test_waiting_deliveries_share_one_insert_and_none_is_answered_before_its_commit(
    committed, account_id, published_tasks
):
    events = [stripe_event() for _ in range(6)]
    deliveries = Deliveries(account_id)
    with inserts_held(committed):
        start_batch(committed, deliveries, [stripe_request(event) for event in events])
        time.sleep(0.2)
        assert deliveries.responses == {}
        assert stored(committed) == []
    deliveries.join()

    assert [deliveries.responses[i].status_code for i in range(6)] == [200] * 6
    rows = stored(committed)
    assert sorted(event_id for _, event_id, _ in rows) == sorted(event["id"] for event in events)
    # One transaction per batch: the leader alone, then the five that waited behind it.
    assert len({received_at for _, _, received_at in rows}) == 2
    assert sorted(args[0] for _, args in published_tasks) == sorted(str(id_) for id_, _, _ in rows)


def test_a_duplicate_inside_one_batch_is_stored_once_and_queued_once(
    committed, account_id, published_tasks
):
    twice = stripe_request(stripe_event())
    requests = [stripe_request(stripe_event()), twice, twice, stripe_request(stripe_event())]
    deliveries = Deliveries(account_id)
    with inserts_held(committed):
        start_batch(committed, deliveries, requests)
    deliveries.join()

    answers = [deliveries.responses[i].json for i in (1, 2)]
    assert sorted(answer["stored"] for answer in answers) == [0, 1]
    assert len(stored(committed)) == 3
    assert len(published_tasks) == 3


def test_a_failed_commit_answers_503_to_every_request_of_its_batch_and_stores_nothing(
    committed, account_id, published_tasks
):
    deliveries = Deliveries(account_id)
    with inserts_held(committed) as blocker:
        start_batch(committed, deliveries, [stripe_request(stripe_event()) for _ in range(5)])
        # The leader's batch dies with its connection; the four behind it form the next
        # batch, which dies the same way.
        [leader] = waiting_insert_pids(committed)
        blocker.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": leader})
        assert wait_until(lambda: waiting_insert_pids(committed) not in ([], [leader]))
        [next_leader] = waiting_insert_pids(committed)
        blocker.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": next_leader})
        deliveries.join()

    statuses = [deliveries.responses[i].status_code for i in range(5)]
    assert statuses == [503] * 5
    assert all(deliveries.responses[i].headers["Retry-After"] for i in range(5))
    assert stored(committed) == []
    assert published_tasks == []


def test_a_row_postgresql_refuses_fails_only_its_own_delivery_in_a_batch(
    committed, account_id, published_tasks
):
    from sqlalchemy.exc import DataError

    account = ingestion.load_webhook_account(provider="stripe", account_id=account_id)

    def delivery(payload: dict) -> ingestion.Delivery:
        event = VerifiedEvent(payload["id"], payload["type"], payload)
        return ingestion.Delivery(account, [event], None)

    # Not refused at the door (the parser would): JSONB cannot hold "\u0000".
    refused = dict(stripe_event(), description="nul \x00 inside")
    good = [stripe_event() for _ in range(3)]
    outcomes: dict[int, object] = {}

    def store(index: int, item: ingestion.Delivery) -> None:
        try:
            outcomes[index] = ingestion.store_delivery(item)
        except DataError as error:
            outcomes[index] = error

    items = [delivery(good[0]), delivery(good[1]), delivery(refused), delivery(good[2])]
    threads = [threading.Thread(target=store, args=(i, item)) for i, item in enumerate(items)]
    with inserts_held(committed):
        threads[0].start()
        assert wait_until(lambda: len(waiting_insert_pids(committed)) == 1)
        for index, thread in enumerate(threads[1:], start=1):
            thread.start()
            assert wait_until(lambda index=index: queued_deliveries() == index)
    for thread in threads:
        thread.join(30)

    assert isinstance(outcomes[2], DataError)
    assert all(len(outcomes[i]) == 1 for i in (0, 1, 3))
    assert sorted(event_id for _, event_id, _ in stored(committed)) == sorted(
        event["id"] for event in good
    )
    assert len(published_tasks) == 3


def test_each_task_of_a_shared_batch_names_the_request_that_delivered_its_event(
    committed, account_id
):
    sent: dict[str, str] = {}

    def record(sender=None, headers=None, body=None, **_):
        sent[body[0][0]] = headers.get("request_id")

    after_task_publish.connect(record, weak=False)
    try:
        events = [stripe_event() for _ in range(4)]
        requests = []
        for index, event in enumerate(events):
            body, headers = stripe_request(event)
            requests.append((body, {**headers, "X-Request-ID": f"req-{index}"}))
        deliveries = Deliveries(account_id)
        with inserts_held(committed):
            start_batch(committed, deliveries, requests)
        deliveries.join()
    finally:
        after_task_publish.disconnect(record)

    request_of_event = {event["id"]: f"req-{index}" for index, event in enumerate(events)}
    expected = {str(id_): request_of_event[event_id] for id_, event_id, _ in stored(committed)}
    assert sent == expected


def test_requests_that_miss_the_account_cache_together_share_one_read(
    committed, account_id, monkeypatch
):
    reads: list[uuid.UUID] = []
    read = ingestion._read_account

    def slow_read(requested: uuid.UUID):
        reads.append(requested)
        time.sleep(0.3)  # the other requests arrive while this read is under way
        return read(requested)

    monkeypatch.setattr(ingestion, "_read_account", slow_read)
    found: list[uuid.UUID] = []

    def load() -> None:
        found.append(ingestion.load_webhook_account(provider="stripe", account_id=account_id).id)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert found == [account_id] * 8
    assert reads == [account_id]
    ingestion.load_webhook_account(provider="stripe", account_id=account_id, fresh=True)
    assert len(reads) == 2  # a fresh read is never served from the cache


def test_an_unknown_account_is_not_cached(committed, monkeypatch):
    reads: list[uuid.UUID] = []
    read = ingestion._read_account
    monkeypatch.setattr(ingestion, "_read_account", lambda id_: reads.append(id_) or read(id_))
    unknown = uuid.uuid4()
    for _ in range(2):
        with pytest.raises(ingestion.NotFound):
            ingestion.load_webhook_account(provider="stripe", account_id=unknown)

    assert reads == [unknown, unknown]
    assert unknown not in ingestion._accounts


def worker_class(argv: list[str]) -> str:
    return argv[argv.index("--worker-class") + 1]


def test_recon_serve_defaults_to_gevent_workers_and_gthread_only_with_threads():
    assert worker_class(gunicorn_argv("127.0.0.1", 8000, 2)) == "gevent"
    assert worker_class(gunicorn_argv("127.0.0.1", 8000, 2, threads=8)) == "gthread"
    assert worker_class(gunicorn_argv("127.0.0.1", 8000, 2, worker_class="sync")) == "sync"


def test_one_recon_serve_worker_stores_concurrent_webhooks_in_shared_commits(
    committed, account_id, tmp_path
):
    """gevent and psycopg cooperate: a worker blocked in an INSERT still takes requests."""
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": TEST_DATABASE_URL,
             "REDIS_URL": TEST_REDIS_URL},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                return True
        except OSError:
            return False

    statuses: list[int] = []

    def deliver(event: dict) -> None:
        body, headers = stripe_request(event)
        request = urllib.request.Request(
            f"{base}/webhooks/stripe/{account_id}",
            data=body,
            headers={**headers, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            statuses.append(response.status)

    try:
        assert wait_until(healthy, timeout=60)
        events = [stripe_event() for _ in range(12)]
        threads = [threading.Thread(target=deliver, args=(event,)) for event in events]
        with inserts_held(committed):
            threads[0].start()
            assert wait_until(lambda: len(waiting_insert_pids(committed)) == 1)
            for thread in threads[1:]:
                thread.start()
            time.sleep(1.5)  # the worker reads all eleven while its first INSERT waits
            assert statuses == []
        for thread in threads:
            thread.join(60)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()

    assert statuses == [200] * 12
    rows = stored(committed)
    assert len(rows) == 12
    # A sync worker would commit each request on its own (12 transactions).
    assert len({received_at for _, _, received_at in rows}) <= 3


def test_each_gunicorn_worker_freezes_its_start_up_objects(monkeypatch):
    """gunicorn, given recon serve's command line, runs the hook that moves what the app
    loaded out of the collector's reach: no full collection walks it mid-request."""
    import gc

    from gunicorn.app.wsgiapp import WSGIApplication

    monkeypatch.setattr(sys, "argv", ["gunicorn", *gunicorn_argv("127.0.0.1", 8000, 2)[3:]])
    configured = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg
    assert gc.get_freeze_count() == 0
    try:
        configured.post_worker_init(worker=None)
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
