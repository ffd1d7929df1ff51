"""Bounding repeated failures per client: fixed-window counters in Redis.

The counters live in Redis (``REDIS_URL``) so that every API process and machine shares
them. A window opens at a client's first failure; once a client has failed ``limit``
times in it, every attempt of that client is refused with 429 until the window ends —
the right credential included, so guessing gains nothing from a lucky try.

If Redis does not answer, attempts are refused with 503 (fail closed; docs/decisions.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from redis.exceptions import RedisError

from shared.platform.errors import DomainError, ServiceUnavailable
from shared.platform.logs import get_logger
from shared.platform.redis_store import shared_redis

KEY_PREFIX = "recon:failures"
UNAVAILABLE_RETRY_SECONDS = 5

log = get_logger(__name__)


class TooManyAttempts(
    DomainError, status=429, title="Too many requests", type_slug="too-many-requests"
):
    """The client failed too often in the current window (429, with Retry-After)."""

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after)}


class LimiterUnavailable(ServiceUnavailable):
    """Redis, which holds the counters, does not answer (503, with Retry-After)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(UNAVAILABLE_RETRY_SECONDS)}


@dataclass(frozen=True)
class FailureLimit:
    """At most ``limit`` failures of one client per ``window_seconds``, for one ``name``."""

    name: str
    limit: int
    window_seconds: int

    def key(self, client: str) -> str:
        """The Redis key of ``client``'s counter."""
        return f"{KEY_PREFIX}:{self.name}:{client}"


def counters() -> redis.Redis:
    """The Redis client holding the counters (``REDIS_URL``)."""
    return shared_redis()


def check_not_blocked(limit: FailureLimit, client: str) -> None:
    """Raise TooManyAttempts while ``client`` has used up ``limit`` in the current window."""
    key = limit.key(client)
    try:
        with counters().pipeline(transaction=False) as pipeline:
            failures, ttl = pipeline.get(key).ttl(key).execute()
    except RedisError as error:
        raise _unavailable(limit, error) from None
    if failures is not None and int(failures) >= limit.limit:
        log.warning("rate_limit.blocked", limit=limit.name, client=client)
        raise TooManyAttempts(
            f"too many failed attempts from this client; retry in {max(ttl, 1)} seconds",
            retry_after=max(ttl, 1),
        )


def record_failure(limit: FailureLimit, client: str) -> int:
    """Count one failure of ``client`` in its window (opened now if none); the new count."""
    key = limit.key(client)
    try:
        with counters().pipeline(transaction=True) as pipeline:
            # SET NX opens the window with its expiry exactly once; INCR counts.
            pipeline.set(key, 0, ex=limit.window_seconds, nx=True).incr(key)
            _, failures = pipeline.execute()
    except RedisError as error:
        raise _unavailable(limit, error) from None
    log.info("rate_limit.failure", limit=limit.name, client=client, failures=failures)
    return failures


def _unavailable(limit: FailureLimit, error: RedisError) -> LimiterUnavailable:
    log.warning("rate_limit.unavailable", limit=limit.name, error=type(error).__name__)
    return LimiterUnavailable("the rate limiter's store (Redis) does not answer; retry shortly")
