"""Task names, queues and routing: the contract between the core that queues work and the
worker that runs it.

The worker's Celery app (``worker/celery_app.py``) is built from these; the core builds
its messages with :func:`publisher`, a Celery app with the same routing and no tasks, so
it never imports the worker.
"""

from __future__ import annotations

from functools import cache

from celery import Celery
from kombu import Queue

PROCESS_EVENT = "worker.tasks.process_event"
MATCH_PAYMENTS = "worker.tasks.match_payments"
RUN_PERIOD = "worker.tasks.run_period"
MATCH_BANK_PAYOUTS = "worker.tasks.match_bank_payouts"
MATCH_SETTLEMENT_FILE = "worker.tasks.match_settlement_file"

QUEUES = ("webhooks", "matching", "runs", "maintenance")

TASK_ROUTES = {
    "worker.tasks.process_event": {"queue": "webhooks"},
    "worker.tasks.match_payments": {"queue": "matching"},
    "worker.tasks.match_bank_payouts": {"queue": "matching"},
    "worker.tasks.run_period": {"queue": "runs"},
    "worker.tasks.match_settlement_file": {"queue": "matching"},
    "worker.tasks.*": {"queue": "maintenance"},
}


def routing_configuration() -> dict[str, object]:
    """The Celery settings that decide which queue a task's message goes to, and its format."""
    return {
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": "maintenance",
        "task_create_missing_queues": False,
        "task_routes": TASK_ROUTES,
        "task_serializer": "json",
    }


@cache
def publisher() -> Celery:
    """A Celery app that only builds and routes messages exactly as the worker's app does."""
    app = Celery("recon", set_as_current=False)
    app.conf.update(routing_configuration())
    return app
