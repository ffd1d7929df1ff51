"""Celery tasks: thin wrappers that open a unit of work and call ``shared``."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from sqlalchemy.exc import OperationalError

from shared.ingest.events import WEBHOOK_QUEUE, sweep_pending_events
from shared.ingest.processing import (
    IN_FLIGHT,
    mark_event_failed,
    process_pending_events,
    process_provider_event,
)
from shared.matching.engine import reconcile_payment
from shared.matching.grace import sweep_expired_grace_periods
from shared.platform.db import is_transient, unit_of_work
from shared.platform.dispatch import queue_depth
from shared.platform.health import check_database
from shared.platform.logs import get_logger
from shared.platform.metrics import observe_run_duration
from shared.platform.settings import get_settings
from shared.runs.lifecycle import execute_run, fail_run, mail_run_report, trigger_daily_runs
from worker.celery_app import RUN_TIME_LIMIT_SECONDS, celery_app

SWEEP_BATCH = 500
RETRY = {
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 5,
}

log = get_logger(__name__)


@celery_app.task(name="worker.tasks.ping_database")
def ping_database() -> str:
    """Round-trip through the broker and the database: used by readiness checks and tests."""
    with unit_of_work() as session:
        check_database(session=session)
    return "ok"


@celery_app.task(name="worker.tasks.process_event", **RETRY)
def process_event(event_id: str) -> str:
    """Normalise and match one stored provider event, with other pending ones (idempotent).

    The event is processed in a batch with up to EVENT_BATCH - 1 other pending events; when
    another task's batch holds it, this one waits for that batch's outcome (and processes
    the event itself if that batch rolled back). A lost database connection is retried;
    any other failure marks the event ``failed`` with its error, so a poison event is
    visible and replayable and never loops.
    """
    try:
        with unit_of_work() as session:
            state = process_pending_events(session=session, event_id=uuid.UUID(event_id))
        if state == IN_FLIGHT:
            with unit_of_work() as session:
                state = process_provider_event(session=session, event_id=uuid.UUID(event_id))
        return state
    except Exception as error:  # a poison event must end failed, visibly, never loop
        if is_transient(error):
            raise
        log.exception("event.crashed", event_id=event_id, error=type(error).__name__)
        with unit_of_work() as session:
            mark_event_failed(session=session, event_id=uuid.UUID(event_id), error=error)
        return "failed"


@celery_app.task(name="worker.tasks.match_payment", **RETRY)
def match_payment(payment_id: str) -> None:
    """Match one internal payment that was created or changed (idempotent)."""
    with unit_of_work() as session:
        reconcile_payment(
            session=session,
            payment_id=uuid.UUID(payment_id),
            now=datetime.now(UTC),
            evidence={"payment_id": payment_id, "change": "payment import"},
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


@celery_app.task(name="worker.tasks.sweep_grace_periods", **RETRY)
def sweep_grace_periods() -> int:
    """Judge again records and payments whose grace period has just ended (Missing*)."""
    with unit_of_work() as session:
        return sweep_expired_grace_periods(session=session, now=datetime.now(UTC))


@celery_app.task(
    name="worker.tasks.run_period",
    time_limit=RUN_TIME_LIMIT_SECONDS,
    soft_time_limit=RUN_TIME_LIMIT_SECONDS - 60,
    **RETRY,
)
def run_period(run_id: str) -> str:
    """Execute one queued reconciliation run; a crash marks it failed with the error."""
    began = time.monotonic()
    try:
        with unit_of_work() as session:
            status = execute_run(session=session, run_id=uuid.UUID(run_id))
    except Exception as error:  # a run that crashed must say so, not stay "running"
        if is_transient(error):
            raise
        log.exception("run.crashed", run_id=run_id, error=type(error).__name__)
        with unit_of_work() as session:
            fail_run(session=session, run_id=uuid.UUID(run_id), error=error)
        observe_run_duration(time.monotonic() - began, "failed")
        return "failed"
    with unit_of_work() as session:
        mail_run_report(session=session, run_id=uuid.UUID(run_id))
    return status


@celery_app.task(name="worker.tasks.schedule_daily_runs")
def schedule_daily_runs() -> int:
    """Hourly: start yesterday's run for organisations whose local daily hour it is."""
    with unit_of_work() as session:
        started = trigger_daily_runs(
            session=session, now=datetime.now(UTC), triggered_by="schedule", only_due=True
        )
    return sum(item.created for item in started)
