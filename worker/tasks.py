"""Celery tasks: thin wrappers that open a unit of work and call ``shared``."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import OperationalError

from shared.db import unit_of_work
from shared.dispatch import queue_depth
from shared.health import check_database
from shared.ingestion import WEBHOOK_QUEUE, sweep_pending_events
from shared.processing import process_provider_event
from shared.settings import get_settings
from worker.celery_app import celery_app

SWEEP_BATCH = 500


@celery_app.task(name="worker.tasks.ping_database")
def ping_database() -> str:
    """Round-trip through the broker and the database: used by readiness checks and tests."""
    with unit_of_work() as session:
        check_database(session=session)
    return "ok"


@celery_app.task(
    name="worker.tasks.process_event",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=5,
)
def process_event(event_id: str) -> str:
    """Normalise and match one stored provider event (idempotent)."""
    with unit_of_work() as session:
        return process_provider_event(session=session, event_id=uuid.UUID(event_id))


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
