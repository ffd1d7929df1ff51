"""Celery tasks: thin wrappers that open a unit of work and call ``shared``."""

from __future__ import annotations

from shared.db import unit_of_work
from shared.health import check_database
from worker.celery_app import celery_app


@celery_app.task(name="worker.tasks.ping_database")
def ping_database() -> str:
    """Round-trip through the broker and the database: used by readiness checks and tests."""
    with unit_of_work() as session:
        check_database(session=session)
    return "ok"
