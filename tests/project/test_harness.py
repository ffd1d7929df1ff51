"""The test harness itself: a committed test's tables end empty even when a worker still
holds them as the teardown truncates."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from tests.conftest import truncate_all, wait_until

TRUNCATE_WAITING = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND wait_event_type = 'Lock' AND query LIKE 'TRUNCATE%'"
)


def truncate_waiting(engine) -> bool:
    with engine.connect() as connection:  # pg_stat_activity is a snapshot per transaction
        return connection.scalar(TRUNCATE_WAITING) == 1


def test_a_truncate_that_deadlocks_with_a_worker_is_tried_again(committed):
    """The 'worker' holds the last table, the TRUNCATE takes the first and waits for the
    last, the worker then reads the first: a deadlock, and the tables still end empty."""
    with committed.begin() as connection:
        connection.execute(
            text("INSERT INTO organizations (id, name) VALUES (gen_random_uuid(), 'Left over')")
        )
    # PostgreSQL checks for a deadlock once, when a waiter's deadlock_timeout expires: the
    # TRUNCATE checks after the cycle has formed, the worker long after, so the TRUNCATE
    # is the one aborted (the case the harness must survive).
    truncating_engine = create_engine(
        committed.url, connect_args={"options": "-c deadlock_timeout=3s"}, poolclass=NullPool
    )
    worker = committed.connect()
    worker.execute(text("SET deadlock_timeout = '60s'"))
    worker.execute(text("SELECT count(*) FROM reconciliation_action_logs"))
    truncating = threading.Thread(target=truncate_all, args=(truncating_engine,))
    truncating.start()
    try:
        assert wait_until(lambda: truncate_waiting(committed), timeout=10)
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
