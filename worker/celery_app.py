"""The Celery application: queues, routing and the delivery guarantees (docs/decisions.md)."""

from __future__ import annotations

import gc

import structlog
from celery import Celery, Task
from celery.signals import (
    setup_logging,
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_process_shutdown,
)

from shared.platform import metrics
from shared.platform.db import dispose_engine
from shared.platform.failures import PolicyTask
from shared.platform.logs import configure_logging
from shared.platform.settings import get_settings
from shared.platform.tasks import routing_configuration
from worker.schedule import BEAT_SCHEDULE

# The longest task is a period run; a Redis broker redelivers any unacknowledged message
# after the visibility timeout, so the timeout must exceed the hard time limit by a margin.
RUN_TIME_LIMIT_SECONDS = 2 * 3600
VISIBILITY_TIMEOUT_SECONDS = 3 * 3600
SHORT_TASK_TIME_LIMIT_SECONDS = 300


def create_celery() -> Celery:
    """A Celery app configured from the settings; tasks come from ``worker.tasks``, and
    follow the failure policy (``shared/platform/failures.py``)."""
    settings = get_settings()
    app = Celery("recon", broker=settings.redis_url, include=["worker.tasks"], task_cls=PolicyTask)
    app.conf.update(
        **routing_configuration(),
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_time_limit=SHORT_TASK_TIME_LIMIT_SECONDS,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_soft_shutdown_timeout=30.0,
        worker_enable_soft_shutdown_on_idle=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
        },
        # Publishing after a commit must not hang a request while Redis is down: the event
        # is already durable and the pending sweep re-enqueues it.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2},
        beat_schedule=BEAT_SCHEDULE,
        enable_utc=True,
        timezone="UTC",
    )
    return app


celery_app = create_celery()


@setup_logging.connect
def _json_logs(**_: object) -> None:
    """Celery's processes log JSON lines like the API (and Celery adds no handler of its own)."""
    configure_logging()


@worker_process_init.connect
def _fresh_pool_in_child(**_: object) -> None:
    """A forked pool process gets its own database connections, and leaves what it
    inherited out of garbage collections (as gunicorn's workers do, cli/gunicorn_hooks.py):
    a full collection over those ~120,000 objects took 50 ms, a pause in the task it hit.
    """
    dispose_engine()
    configure_logging()
    gc.freeze()


@worker_process_shutdown.connect
def _flush_metrics(**_: object) -> None:
    """A pool process sends its last metric increments before it exits."""
    metrics.flush()


@task_prerun.connect
def _bind_task_context(task_id: str, task: Task, **_: object) -> None:
    """Every line a task logs names it, and the request that queued it (``platform.dispatch``)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_id=task_id, task=task.name)
    request_id = getattr(task.request, "request_id", None)
    if isinstance(request_id, str):
        structlog.contextvars.bind_contextvars(request_id=request_id)


@task_postrun.connect
def _clear_task_context(**_: object) -> None:
    structlog.contextvars.clear_contextvars()
