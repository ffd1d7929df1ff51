"""Progress of the Celery worker through a pre-filled queue: items stored, messages left."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from environment import connect

PROGRESS_POLL_SECONDS = 0.1
STALL_SECONDS = 60.0


def queued(queue_name: str = "webhooks") -> int:
    """The task messages waiting in ``queue_name`` of the bench's Redis database."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5)
    try:
        return int(client.llen(queue_name))
    finally:
        client.close()


@dataclass
class Throughput:
    events: int
    startup: float  # worker spawned -> first item stored
    elapsed: float  # first item stored -> last
    counted: int  # events processed within ``elapsed``
    total: float  # worker spawned -> last

    @property
    def rate(self) -> float:
        return self.counted / self.elapsed if self.elapsed > 0 else 0.0


def wait_for_items(expected: int, started: float, on_first=None) -> Throughput:
    """Poll until ``expected`` reconciliation items exist (processing writes one per event,
    in the same transaction as the event's ``processed``) or progress stalls."""
    first_at = None
    first_count = 0
    last_change, last_count = time.monotonic(), -1
    with connect(autocommit=True) as connection:
        while True:
            count = connection.execute("SELECT count(*) FROM reconciliation_items").fetchone()[0]
            now = time.monotonic()
            if count and first_at is None:
                first_at, first_count = now, count
                if on_first is not None:
                    on_first()
            if count != last_count:
                last_change, last_count = now, count
            if count >= expected:
                break
            if now - last_change > STALL_SECONDS:
                failed = connection.execute(
                    "SELECT count(*) FROM provider_events WHERE state = 'failed'"
                ).fetchone()[0]
                raise RuntimeError(
                    f"no progress for {STALL_SECONDS:.0f} s: {count} of {expected} items, "
                    f"{failed} events failed, {queued()} tasks still in Redis "
                    f"(none while events are pending: another process used Redis database "
                    f"{urlsplit(os.environ['REDIS_URL']).path.lstrip('/')}?)"
                )
            time.sleep(PROGRESS_POLL_SECONDS)
    first_at = first_at or now
    return Throughput(
        events=expected,
        startup=first_at - started,
        elapsed=now - first_at,
        counted=count - first_count,
        total=now - started,
    )


def waiting_deliveries() -> int:
    """Task messages not acknowledged yet: queued in Redis, or reserved by the worker."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5)
    try:
        return int(client.llen("webhooks")) + int(client.hlen("unacked"))
    finally:
        client.close()


def wait_for_drain() -> float:
    """Seconds until every task message has been acknowledged (or progress stalls)."""
    started = last_change = time.monotonic()
    last = waiting_deliveries()
    while last:
        time.sleep(PROGRESS_POLL_SECONDS)
        now, waiting = time.monotonic(), waiting_deliveries()
        if waiting != last:
            last_change, last = now, waiting
        elif now - last_change > STALL_SECONDS:
            raise RuntimeError(f"{waiting} task messages still unacknowledged")
    return time.monotonic() - started
