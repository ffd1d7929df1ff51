"""What a task does when its work raises: run it again later, or record why it failed.

One policy for every task, at every level (the task, a batch, one item of a batch):

- **Transient** (:func:`is_transient`): a lost connection, a deadlock or serialization
  failure, a server shutting down. It says nothing about the work, so nothing is
  recorded: the transaction rolls back, the error propagates, and the task runs again
  after an exponential, jittered delay (:func:`retry_delay`: at most
  :data:`RETRY_BACKOFF_MAX_SECONDS`, :data:`MAX_RETRIES` times). Tasks that opt in with
  ``retries_transient_errors`` get this from :class:`PolicyTask`.
- **Anything else** is the work's own fault (an event no code path can handle, a bug a run
  hits, a data-dependent database error such as an index row over its limit). Retrying
  would fail the same way, so :func:`contain` logs it with its traceback and records
  :func:`failure_reason` on the one event or run that failed, which ends ``failed``:
  visible, replayable, never looping.
- **Contained to its item**: in a batch, :func:`contain_in_savepoint` runs each item in its
  own savepoint, so a poison item's writes are undone and its batch-mates keep theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from celery import Task
from celery.utils.time import get_exponential_backoff_interval
from sqlalchemy.orm import Session

from shared.platform.db import is_transient
from shared.platform.logs import get_logger

MAX_RETRIES = 5
RETRY_BACKOFF_MAX_SECONDS = 60
MAX_REASON_LENGTH = 2000

Result = TypeVar("Result")

log = get_logger(__name__)


def retry_delay(retries: int) -> int:
    """Seconds before retry number ``retries + 1``: 1, 2, 4, … up to the maximum, each drawn
    uniformly below that bound (full jitter), as Celery's ``retry_backoff`` computes it."""
    return get_exponential_backoff_interval(
        factor=1, retries=retries, maximum=RETRY_BACKOFF_MAX_SECONDS, full_jitter=True
    )


def failure_reason(error: BaseException) -> str:
    """The readable reason stored on a failed event or run: the error's class and message."""
    return f"{type(error).__name__}: {error}"[:MAX_REASON_LENGTH]


def contain(
    work: Callable[[], Result],
    *,
    record_failure: Callable[[BaseException], Result],
    crashed: str,
    **fields: Any,
) -> Result:
    """``work()``; should it raise anything but a transient error, the error is logged as
    ``crashed`` (with ``fields`` and its traceback) and ``record_failure(error)`` is
    returned instead. A transient error propagates untouched.
    """
    try:
        return work()
    except Exception as error:
        if is_transient(error):
            raise
        log.exception(crashed, error=type(error).__name__, **fields)
        return record_failure(error)


def contain_in_savepoint(
    session: Session,
    work: Callable[[], Result],
    *,
    record_failure: Callable[[BaseException], Result],
    crashed: str,
    **fields: Any,
) -> Result:
    """:func:`contain` with ``work`` in a savepoint of ``session``: what it wrote before
    failing is undone, and the transaction stays usable for the other items."""

    def in_savepoint() -> Result:
        with session.begin_nested():
            return work()

    return contain(in_savepoint, record_failure=record_failure, crashed=crashed, **fields)


class PolicyTask(Task):
    """A Celery task that, with ``retries_transient_errors``, is retried on a transient
    error after :func:`retry_delay`, at most :data:`MAX_RETRIES` times; any other error is
    left to the task (which contains it) or to Celery (which logs it and acknowledges)."""

    retries_transient_errors = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Exception as error:
            if not (self.retries_transient_errors and is_transient(error)):
                raise
            # Called directly rather than by a worker (tests), retry() re-raises ``error``.
            raise self.retry(
                exc=error, countdown=retry_delay(self.request.retries), max_retries=MAX_RETRIES
            ) from error
