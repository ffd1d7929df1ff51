"""Sending work to the queue, only after the transaction that needs it has committed.

A broker outage never fails the caller: the rows are already durable and a beat sweep
finds what was not enqueued (``shared.ingestion.sweep_pending_events``).
"""

from __future__ import annotations

import redis
from kombu.exceptions import OperationalError as BrokerUnavailable
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from shared.db import after_commit
from shared.logs import get_logger
from shared.settings import get_settings
from worker.celery_app import celery_app

log = get_logger(__name__)


def send_now(task_name: str, ids: list[str]) -> int:
    """Send ``task_name(id)`` for each id; return how many reached the broker."""
    sent = 0
    for identifier in ids:
        try:
            celery_app.send_task(task_name, args=[identifier])
        except (BrokerUnavailable, RedisError) as error:
            log.warning(
                "task.enqueue_failed",
                task=task_name,
                remaining=len(ids) - sent,
                error=type(error).__name__,
            )
            return sent
        sent += 1
    return sent


def send_after_commit(session: Session, task_name: str, ids: list[str]) -> None:
    """Queue ``task_name(id)`` for each id once ``session`` commits (never if it rolls back)."""
    if ids:
        after_commit(session, lambda: send_now(task_name, ids))


def queue_depth(queue: str) -> int:
    """Messages waiting in ``queue`` on the broker (Redis list length)."""
    client = redis.Redis.from_url(get_settings().redis_url, socket_timeout=5)
    try:
        return client.llen(queue)
    finally:
        client.close()
