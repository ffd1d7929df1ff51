"""The test harness itself: a committed test's tables end empty even when a worker still
holds them as the teardown truncates."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from tests.conftest import truncate_all, wait_until

TRUNCATE_WAITING = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND wait_event_type = 'Lock' AND query LIKE 'TRUNCATE%'"
)


def waiting_truncates(watcher) -> int:
    """TRUNCATEs waiting for a lock now: each look in a transaction of its own, since
    PostgreSQL keeps one snapshot of pg_stat_activity per transaction."""
    try:
        return watcher.scalar(TRUNCATE_WAITING)
    finally:
        watcher.rollback()


def test_a_truncate_that_deadlocks_with_a_worker_is_tried_again(committed):
    """The 'worker' holds the last table, the TRUNCATE takes the first and waits for the
    last, the worker then reads the first: a deadlock, and the tables still end empty."""
    with committed.begin() as connection:
        connection.execute(
            text("INSERT INTO organizations (id, name) VALUES (gen_random_uuid(), 'Left over')")
        )
    worker = committed.connect()
    worker.execute(text("SET deadlock_timeout = '5s'"))  # the TRUNCATE notices it first
    worker.execute(text("SELECT count(*) FROM reconciliation_action_logs"))
    truncating = threading.Thread(target=truncate_all, args=(committed,))
    truncating.start()
    try:
        with committed.connect() as watcher:
            assert wait_until(lambda: waiting_truncates(watcher) == 1, timeout=10)
        worker.execute(text("SELECT count(*) FROM organizations"))  # the deadlock
        worker.commit()
    except OperationalError:
        pytest.fail("PostgreSQL aborted the worker, not the TRUNCATE")
    finally:
        worker.close()
        truncating.join(timeout=30)
    assert not truncating.is_alive()
    with committed.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM organizations")) == 0
