"""Sending work to the queue, only after the data it points at has committed.

A broker outage never fails the caller: the rows are already durable and a beat sweep
finds what was not enqueued (``shared.ingest.events.sweep_pending_events``).

Messages are built by Celery itself (``amqp.as_task_v2``: protocol 2 headers and body)
and pushed straight onto the Redis list the worker consumes, in the envelope kombu's
Redis transport uses. Going through ``send_task`` costs ~0.5 ms of CPU per message —
half of a webhook request — while this costs ~0.08 ms, and a batch of messages is one
LPUSH (docs/decisions.md). The worker side is plain Celery.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterable
from functools import cache

import redis
from celery.signals import after_task_publish
from celery.utils.nodenames import anon_nodename
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from shared.platform.db import after_commit
from shared.platform.logs import current_request_id, get_logger
from shared.platform.settings import get_settings
from shared.platform.tasks import publisher

log = get_logger(__name__)


@cache
def _broker(url: str) -> redis.Redis:
    # One client per process and URL; redis-py's pool reconnects after a fork.
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)


def broker() -> redis.Redis:
    """The Redis client of the broker (``REDIS_URL``)."""
    return _broker(get_settings().redis_url)


@cache
def _origin(pid: int) -> str:
    # Celery's default origin names the sending process: "gen<pid>@<host>".
    return anon_nodename()


@cache
def queue_of(task_name: str) -> str:
    """The queue Celery's routing sends ``task_name`` to."""
    return publisher().amqp.router.route({}, task_name)["queue"].name


def task_message(
    task_name: str, args: list, request_id: str | None = None
) -> tuple[bytes, dict, list]:
    """One Celery protocol-2 message for ``task_name(*args)``, in kombu's Redis envelope.

    ``request_id`` (the request that queued the task) travels in the ``request_id``
    header, so the task's log lines name that request.
    """
    task_id = str(uuid.uuid4())
    # The informational reprs and the origin passed in: Celery's own (saferepr, hostname
    # lookup) were half the cost of a message. The args here are a few short ids.
    message = publisher().amqp.as_task_v2(
        task_id,
        task_name,
        args=args,
        argsrepr=repr(args),
        kwargsrepr="{}",
        origin=_origin(os.getpid()),
        ignore_result=None,  # as send_task leaves it: the worker's setting decides
    )
    if request_id is not None:
        message.headers["request_id"] = request_id
    body = json.dumps(message.body).encode()
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": message.headers,
        "properties": {
            **message.properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue_of(task_name)},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(envelope).encode(), message.headers, message.body


def send_now(task_name: str, ids: Iterable[str]) -> int:
    """Queue ``task_name(id)`` for each id in one round trip; return how many were queued.

    Each message carries the current request id, if any.
    """
    request_id = current_request_id()
    return send_messages(
        task_name, [task_message(task_name, [identifier], request_id) for identifier in ids]
    )


def send_messages(task_name: str, messages: list[tuple[bytes, dict, list]]) -> int:
    """Push :func:`task_message` results of ``task_name`` in one LPUSH; how many were queued.

    A broker outage is logged and reported as 0, never raised.
    """
    if not messages:
        return 0
    queue = queue_of(task_name)
    try:
        broker().lpush(queue, *(payload for payload, _, _ in messages))
    except RedisError as error:
        log.warning(
            "task.enqueue_failed", task=task_name, count=len(messages), error=type(error).__name__
        )
        return 0
    for _, headers, body in messages:
        after_task_publish.send(
            sender=task_name, body=body, exchange="", routing_key=queue, headers=headers
        )
    return len(messages)


def send_after_commit(session: Session, task_name: str, ids: list[str]) -> None:
    """Queue ``task_name(id)`` for each id once ``session`` commits (never if it rolls back)."""
    if ids:
        after_commit(session, lambda: send_now(task_name, ids))


def queue_depth(queue: str) -> int:
    """Messages waiting in ``queue`` on the broker (Redis list length)."""
    return broker().llen(queue)


def send_wake_ups(task_name: str, count: int) -> int:
    """Queue ``count`` messages of ``task_name`` without arguments (each task claims its own
    work from the database); how many were queued."""
    request_id = current_request_id()
    return send_messages(task_name, [task_message(task_name, [], request_id) for _ in range(count)])


def wake_after_commit(session: Session, task_name: str) -> None:
    """Queue one argument-less ``task_name`` once ``session`` commits (never if it rolls back)."""
    after_commit(session, lambda: send_wake_ups(task_name, 1))
