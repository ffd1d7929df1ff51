"""The Redis client for small state every process shares: rate-limit counters, console
sessions (``REDIS_URL``, the broker's server)."""

from __future__ import annotations

from functools import cache

import redis

from shared.platform.settings import get_settings


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def shared_redis() -> redis.Redis:
    """The process's client of ``REDIS_URL`` (one connection pool per URL)."""
    return _client(get_settings().redis_url)
