"""Tasks follow the failure policy: a crashed run ends failed with its reason; a transient
error leaves it queued for the retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from shared.platform.db import unit_of_work
from shared.runs import lifecycle
from shared.runs.lifecycle import trigger_run
from tests.support.factories import make_org
from worker.celery_app import celery_app
from worker.tasks import run_period

DAY = datetime.now(UTC).date() - timedelta(days=1)
DEADLOCK = "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40P01'; END $$"


def queued_run(monkeypatch) -> str:
    """A queued run, committed; its task is not sent (the suite's worker would take it)."""
    monkeypatch.setattr(lifecycle, "send_after_commit", lambda *_: None)
    with unit_of_work() as session:
        org = make_org(session)
        run = trigger_run(
            session=session, org_id=org.id, period_start=DAY, period_end=DAY, triggered_by="api"
        ).run
        return str(run.id)


def run_row(engine, run_id: str):
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT status, error, finished_at FROM reconciliation_runs WHERE id = :id"),
            {"id": run_id},
        ).one()


def test_a_run_that_crashes_ends_failed_with_the_reason(committed, monkeypatch):
    run_id = queued_run(monkeypatch)

    def crash(**_):
        raise RuntimeError("bug in the period run")

    monkeypatch.setattr(lifecycle, "reconcile_period", crash)
    assert run_period(run_id) == "failed"
    status, error, finished_at = run_row(committed, run_id)
    assert (status, error) == ("failed", "RuntimeError: bug in the period run")
    assert finished_at is not None


def test_a_transient_error_leaves_the_run_queued_for_the_retry(committed, monkeypatch):
    run_id = queued_run(monkeypatch)

    def deadlocked(*, session, **_):
        session.execute(text(DEADLOCK))

    monkeypatch.setattr(lifecycle, "reconcile_period", deadlocked)
    with pytest.raises(OperationalError):
        run_period(run_id)
    assert run_row(committed, run_id)[:2] == ("queued", None)


def test_the_tasks_that_do_work_retry_transient_errors_and_the_periodic_ones_do_not():
    celery_app.loader.import_default_modules()
    retried = {
        name
        for name, task in celery_app.tasks.items()
        if getattr(task, "retries_transient_errors", False)
    }
    assert retried == {
        "worker.tasks.process_event",
        "worker.tasks.match_payments",
        "worker.tasks.match_bank_payouts",
        "worker.tasks.run_period",
        "worker.tasks.sweep_grace_periods",
        "worker.tasks.match_settlement_file",
    }
