"""Celery tasks: each parses its arguments and calls one function of ``shared``; what a
failure does follows ``shared/platform/failures.py``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from shared.bank.matching import organisations_with_payouts, reconcile_bank_payouts
from shared.ingest.events import WEBHOOK_QUEUE, sweep_pending_events
from shared.ingest.processing import process_queued_event
from shared.matching.grace import sweep_expired_grace_periods
from shared.payments.matching import drain_pending_matches, sweep_pending_matches
from shared.platform.db import unit_of_work
from shared.platform.dispatch import queue_depth, queue_of, send_now
from shared.platform.health import check_database
from shared.platform.settings import get_settings
from shared.platform.tasks import (
    MATCH_BANK_PAYOUTS,
    MATCH_PAYMENTS,
    MATCH_SETTLEMENT_FILE,
    PROCESS_EVENT,
    RUN_PERIOD,
)
from shared.runs.lifecycle import execute_queued_run, trigger_daily_runs
from shared.settlements.matching import reconcile_settlement_file
from worker.celery_app import RUN_TIME_LIMIT_SECONDS, celery_app

SWEEP_BATCH = 500
# Transient errors are retried (shared/platform/failures.py); the sweeps and the schedule
# are not: beat sends them again.
RETRIED = {"retries_transient_errors": True}


@celery_app.task(name="worker.tasks.ping_database")
def ping_database() -> str:
    """Round-trip through the broker and the database: used by readiness checks and tests."""
    with unit_of_work() as session:
        check_database(session=session)
    return "ok"


@celery_app.task(name=PROCESS_EVENT, **RETRIED)
def process_event(event_id: str) -> str:
    """Normalise and match one stored provider event, with other pending ones (idempotent).

    A poison event ends ``failed`` with its reason, visible and replayable, and never loops
    (``shared.ingest.processing.process_queued_event``).
    """
    return process_queued_event(uuid.UUID(event_id))


@celery_app.task(name=MATCH_PAYMENTS, **RETRIED)
def match_payments() -> int:
    """Match pending imported payments, a batch per transaction, until none is left
    (``shared.payments.matching.drain_pending_matches``)."""
    return drain_pending_matches()


@celery_app.task(name=MATCH_SETTLEMENT_FILE, **RETRIED)
def match_settlement_file(file_id: str) -> None:
    """Link one imported settlement file's lines and judge them and its payouts (idempotent)."""
    with unit_of_work() as session:
        reconcile_settlement_file(
            session=session, file_id=uuid.UUID(file_id), now=datetime.now(UTC)
        )


@celery_app.task(name="worker.tasks.sweep_pending_events")
def sweep_pending() -> int:
    """Re-enqueue events left ``pending`` (Redis was down, a process died after commit)."""
    with unit_of_work() as session:
        return sweep_pending_events(
            session=session,
            older_than_seconds=get_settings().pending_event_sweep_seconds,
            batch=SWEEP_BATCH,
            backlog=queue_depth(WEBHOOK_QUEUE),
        )


@celery_app.task(name="worker.tasks.sweep_pending_payment_matches")
def sweep_pending_payment_matches() -> int:
    """Wake a worker for imported payments still waiting to be matched (a lost wake-up,
    a failed payment's retry due)."""
    with unit_of_work() as session:
        return sweep_pending_matches(
            session=session,
            older_than_seconds=get_settings().pending_event_sweep_seconds,
            backlog=queue_depth(queue_of(MATCH_PAYMENTS)),
        )


@celery_app.task(name="worker.tasks.sweep_grace_periods", **RETRIED)
def sweep_grace_periods() -> int:
    """Judge again records and payments whose grace period has just ended (Missing*)."""
    with unit_of_work() as session:
        return sweep_expired_grace_periods(session=session, now=datetime.now(UTC))


@celery_app.task(
    name=RUN_PERIOD,
    time_limit=RUN_TIME_LIMIT_SECONDS,
    soft_time_limit=RUN_TIME_LIMIT_SECONDS - 60,
    **RETRIED,
)
def run_period(run_id: str) -> str:
    """Execute one queued reconciliation run; a crash marks it failed with the error."""
    return execute_queued_run(uuid.UUID(run_id))


@celery_app.task(name="worker.tasks.schedule_daily_runs")
def schedule_daily_runs() -> int:
    """Hourly: start yesterday's run for organisations whose local daily hour it is."""
    with unit_of_work() as session:
        started = trigger_daily_runs(
            session=session, now=datetime.now(UTC), triggered_by="schedule", only_due=True
        )
    return sum(item.created for item in started)


@celery_app.task(name=MATCH_BANK_PAYOUTS, **RETRIED)
def match_bank_payouts(org_id: str) -> int:
    """Match one organisation's payouts to its bank entries and judge its bank
    discrepancies (idempotent); queued after a statement or settlement import commits."""
    with unit_of_work() as session:
        outcome = reconcile_bank_payouts(
            session=session, org_id=uuid.UUID(org_id), now=datetime.now(UTC)
        )
    return outcome.linked


@celery_app.task(name="worker.tasks.sweep_bank_payouts")
def sweep_bank_payouts() -> int:
    """Daily: a matching pass for every organisation with payouts, so the time-based
    findings (PayoutNotReceived) open on the day they hold."""
    with unit_of_work() as session:
        org_ids = organisations_with_payouts(session=session)
    return send_now(MATCH_BANK_PAYOUTS, [str(org_id) for org_id in org_ids])
