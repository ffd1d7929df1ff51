"""Prometheus metrics: every definition, the recording helpers, and the scrape.

The API runs as several gunicorn workers and the worker as Celery prefork children,
possibly on several machines, so counters and histograms are kept in Redis (one hash
per family, ``HINCRBY`` per label set) and any API process answers ``GET /metrics`` for
the whole deployment (docs/decisions.md). Recording never touches the network: a helper
adds to this process's buffer, and a daemon thread sends the buffer to Redis in one
MULTI/EXEC pipeline every :data:`FLUSH_SECONDS` (and at exit). While Redis is down the
buffer is kept — its size is bounded by the label sets, not by the traffic — and sent
once Redis answers again; a webhook or a task never fails or waits because of metrics.

Gauges (queue depth, oldest pending event, dependency status) are read at scrape time.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shared.platform.db import after_commit, unit_of_work
from shared.platform.logs import get_logger
from shared.platform.settings import get_settings
from shared.platform.tasks import QUEUES

FLUSH_SECONDS = 1.0
KEY_PREFIX = "recon:metrics:"
INFINITY = "+Inf"

log = get_logger(__name__)


@dataclass(frozen=True)
class Family:
    """One metric family kept in Redis: a counter, or a histogram with its buckets."""

    name: str
    kind: str
    documentation: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()

    @property
    def key(self) -> str:
        return KEY_PREFIX + self.name


WEBHOOKS = Family(
    "recon_webhook_deliveries",
    "counter",
    "Webhook deliveries by provider and outcome (accepted: new or duplicate; rejected: the "
    "problem type answered).",
    ("provider", "outcome", "reason"),
)
EVENTS = Family(
    "recon_events",
    "counter",
    "Stored provider events the worker finished, by provider and outcome "
    "(processed, ignored, failed).",
    ("provider", "outcome"),
)
DISCREPANCIES_OPENED = Family(
    "recon_discrepancies_opened",
    "counter",
    "Discrepancies opened, by type (incremental matching and period runs).",
    ("type",),
)
RUN_DURATION = Family(
    "recon_run_duration_seconds",
    "histogram",
    "Seconds a worker spent executing a period run, by how it ended (completed, failed).",
    ("status",),
    (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0),
)
REQUEST_DURATION = Family(
    "recon_http_request_duration_seconds",
    "histogram",
    "API request latency by method, route template and status (until the response "
    "headers; a streamed body is not included).",
    ("method", "route", "status"),
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
FAMILIES = (WEBHOOKS, EVENTS, DISCREPANCIES_OPENED, RUN_DURATION, REQUEST_DURATION)


# --- Recording --------------------------------------------------------------------------


def record_webhook(provider: str, outcome: str, reason: str) -> None:
    """Count one webhook delivery: ``accepted`` (``new``/``duplicate``) or ``rejected``."""
    _count(WEBHOOKS, (provider, outcome, reason), 1)


def record_events(
    outcome: str, provider: str, n: int = 1, *, session: Session | None = None
) -> None:
    """Count ``n`` events finished as ``outcome``; with ``session``, once it commits."""
    _on_commit(session, lambda: _count(EVENTS, (provider, outcome), n))


def record_discrepancies_opened(
    discrepancy_type: str, n: int = 1, *, session: Session | None = None
) -> None:
    """Count ``n`` discrepancies of ``discrepancy_type`` opened; with ``session``, on commit."""
    _on_commit(session, lambda: _count(DISCREPANCIES_OPENED, (discrepancy_type,), n))


def observe_run_duration(seconds: float, status: str, *, session: Session | None = None) -> None:
    """Observe a period run that ended as ``status``; with ``session``, once it commits."""
    _on_commit(session, lambda: _observe(RUN_DURATION, (status,), seconds))


def observe_request_duration(method: str, route: str, status: int, seconds: float) -> None:
    """Observe one API request's latency."""
    _observe(REQUEST_DURATION, (method, route, str(status)), seconds)


def _on_commit(session: Session | None, record: Callable[[], None]) -> None:
    # A rolled-back transaction (a retried task) must count nothing.
    if session is None:
        record()
    else:
        after_commit(session, record)


def _count(family: Family, labels: tuple[str, ...], amount: int) -> None:
    _buffer.add(family.key, (_field(labels), amount))


def _observe(family: Family, labels: tuple[str, ...], value: float) -> None:
    bucket = next((bound for bound in family.buckets if value <= bound), None)
    le = INFINITY if bucket is None else _bound_label(bucket)
    _buffer.add(family.key, (_field((*labels, le)), 1), (_field((*labels, "sum")), float(value)))


@cache
def _bound_label(bound: float) -> str:
    return floatToGoString(bound)


@lru_cache(maxsize=4096)  # label sets are few; this is on every request's path
def _field(values: tuple[str, ...]) -> str:
    return json.dumps(values, separators=(",", ":"))


class _Buffer:
    """This process's increments not yet in Redis, sent by a daemon thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[tuple[str, str], int | float] = {}
        self.thread: threading.Thread | None = None
        self.check_thread_at = 0.0
        self.failing = False

    def add(self, key: str, *increments: tuple[str, int | float]) -> None:
        """Add each ``(field, amount)`` to its field of the hash ``key``."""
        with self.lock:
            for field, amount in increments:
                self.pending[key, field] = self.pending.get((key, field), 0) + amount
            # Started on first use (after any fork), and again should it ever have died;
            # looked at once a flush interval: under gevent is_alive() yields to the hub.
            now = time.monotonic()
            if now >= self.check_thread_at:
                self.check_thread_at = now + FLUSH_SECONDS
                if self.thread is None or not self.thread.is_alive():
                    self.thread = threading.Thread(
                        target=self._run, name="metrics-flush", daemon=True
                    )
                    self.thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()

    def flush(self) -> bool:
        """Send the buffer in one transaction; on a Redis error keep it for the next try."""
        with self.lock:
            batch, self.pending = self.pending, {}
        if not batch:
            return True
        try:
            pipeline = _redis(get_settings().redis_url).pipeline(transaction=True)
            for (key, field), amount in batch.items():
                if isinstance(amount, int):
                    pipeline.hincrby(key, field, amount)
                else:
                    pipeline.hincrbyfloat(key, field, amount)
            pipeline.execute()
        except RedisError as error:
            with self.lock:
                for entry, amount in batch.items():
                    self.pending[entry] = self.pending.get(entry, 0) + amount
                first_failure, self.failing = not self.failing, True
            if first_failure:  # once per outage, not once a second
                log.warning("metrics.flush_failed", error=type(error).__name__)
            return False
        self.failing = False
        return True


_buffer = _Buffer()


def _forget_parent_buffer() -> None:
    # A forked child starts empty: the parent sends its own increments, and a thread
    # does not survive fork.
    global _buffer
    _buffer = _Buffer()


os.register_at_fork(after_in_child=_forget_parent_buffer)
atexit.register(lambda: _buffer.flush())


def flush() -> bool:
    """Send this process's buffered increments to Redis now; False if Redis refused."""
    return _buffer.flush()


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)


# --- Scraping ---------------------------------------------------------------------------


class _Deployment:
    """A prometheus_client collector over Redis and PostgreSQL, read at each scrape."""

    def __init__(self, oldest_pending_age: Callable[[Session], float]) -> None:
        self._oldest_pending_age = oldest_pending_age

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "recon_up",
            "1 when the scrape could read the dependency, else 0.",
            labels=["dependency"],
        )
        depth = GaugeMetricFamily(
            "recon_queue_depth", "Task messages waiting on each queue.", labels=["queue"]
        )
        try:
            hashes, lengths = _read_redis()
            up.add_metric(["redis"], 1)
        except RedisError:
            hashes, lengths = {}, {}
            up.add_metric(["redis"], 0)
        for queue, length in lengths.items():
            depth.add_metric([queue], length)
        yield from (_family_metric(family, hashes.get(family.name, {})) for family in FAMILIES)
        yield depth
        oldest = GaugeMetricFamily(
            "recon_oldest_pending_event_age_seconds",
            "Age of the oldest stored event not yet processed (0 when none is pending).",
        )
        try:
            with unit_of_work() as session:
                oldest.add_metric([], self._oldest_pending_age(session))
            up.add_metric(["database"], 1)
        except SQLAlchemyError:
            up.add_metric(["database"], 0)
        yield oldest
        yield up


def _read_redis() -> tuple[dict[str, dict[bytes, bytes]], dict[str, int]]:
    """Every family's hash and every queue's length (``LLEN``, as ``dispatch.queue_depth``
    counts it), in one round trip."""
    pipeline = _redis(get_settings().redis_url).pipeline(transaction=False)
    for family in FAMILIES:
        pipeline.hgetall(family.key)
    for queue in QUEUES:
        pipeline.llen(queue)
    answers = pipeline.execute()
    hashes = {family.name: answer for family, answer in zip(FAMILIES, answers, strict=False)}
    return hashes, dict(zip(QUEUES, answers[len(FAMILIES) :], strict=True))


def _family_metric(family: Family, stored: dict[bytes, bytes]) -> Metric:
    entries = [(tuple(json.loads(field)), float(value)) for field, value in stored.items()]
    if family.kind == "counter":
        counter = CounterMetricFamily(family.name, family.documentation, labels=family.labels)
        for labels, value in sorted(entries):
            counter.add_metric(labels, value)
        return counter
    histogram = HistogramMetricFamily(family.name, family.documentation, labels=family.labels)
    series: dict[tuple[str, ...], dict[str, float]] = {}
    for values, value in entries:
        series.setdefault(values[:-1], {})[values[-1]] = value
    for labels, cells in sorted(series.items()):
        histogram.add_metric(
            labels, _cumulative(family.buckets, cells), sum_value=cells.get("sum", 0.0)
        )
    return histogram


def _cumulative(bounds: Iterable[float], cells: dict[str, float]) -> list[tuple[str, float]]:
    buckets, total = [], 0.0
    for bound in [*map(floatToGoString, bounds), INFINITY]:
        total += cells.get(bound, 0.0)
        buckets.append((bound, total))
    return buckets


def render_metrics(oldest_pending_age: Callable[[Session], float]) -> bytes:
    """The deployment's metrics in the Prometheus text format 0.0.4.

    ``oldest_pending_age`` reads the age in seconds of the oldest unprocessed event.

    This process's own buffer is sent first, so what it just recorded is included. A
    dependency that cannot be read is reported as ``recon_up{dependency=…} 0``; the
    scrape itself never fails.
    """
    flush()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Deployment(oldest_pending_age))
    return generate_latest(registry)
