"""Metrics bench: our Redis-aggregated metrics (``shared/platform/metrics.py``) against
prometheus_client's multiprocess mode.

What it does, in one run, against Redis database 13 (its ``recon:metrics:*`` hashes are
deleted before and after) and a temporary ``PROMETHEUS_MULTIPROC_DIR``:

1. **per increment**: ``--increments`` counter increments and as many histogram
   observations over ``--series`` label sets, in this process, each way: ours
   (``record_webhook``, ``observe_request_duration``: a per-process buffer that a thread
   sends to Redis every second) and prometheus_client's (``Counter(...).labels(...).inc()``,
   ``Histogram(...).labels(...).observe()`` on its memory-mapped files); and the cost of
   one of our flushes of ``--series`` counter and histogram series;
2. **scrape**: for each count in ``--processes``, that many forked processes each record
   every series once and exit; then one scrape each way, ``--scrapes`` times (best kept):
   ours is ``render_metrics`` (one Redis pipeline, whatever the process count; the
   database gauge is not read), theirs ``MultiProcessCollector`` + ``generate_latest``
   (it reads and merges every process's files);
3. checks that both scrapes count the same total, and prints µs per increment, ms per
   scrape, and the ratios.

Run from the repository root: ``.venv/bin/python bench/metrics.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
MULTIPROC_DIR = tempfile.mkdtemp(prefix="bench-metrics-")
# Before prometheus_client and ``shared`` are imported: the library chooses its multiprocess
# value class at import, and the settings are read once.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = MULTIPROC_DIR
os.environ["REDIS_URL"] = REDIS_URL
os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

import redis  # noqa: E402
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from shared.platform import metrics  # noqa: E402
from shared.platform.metrics import (  # noqa: E402
    KEY_PREFIX,
    REQUEST_DURATION,
    WEBHOOKS,
    observe_request_duration,
    record_webhook,
    render_metrics,
)

THEIR_WEBHOOKS = Counter(WEBHOOKS.name, WEBHOOKS.documentation, WEBHOOKS.labels)
THEIR_DURATION = Histogram(
    REQUEST_DURATION.name,
    REQUEST_DURATION.documentation,
    REQUEST_DURATION.labels,
    buckets=REQUEST_DURATION.buckets,
)


def series(count: int) -> list[tuple[str, str, str]]:
    """``count`` label sets, the same for both families' label arity of three."""
    return [("stripe", "accepted", f"reason-{number}") for number in range(count)]


def record_ours(labels: tuple[str, str, str]) -> None:
    record_webhook(*labels)
    observe_request_duration("POST", labels[2], 200, 0.003)


def record_theirs(labels: tuple[str, str, str]) -> None:
    THEIR_WEBHOOKS.labels(*labels).inc()
    THEIR_DURATION.labels("POST", labels[2], "200").observe(0.003)


def per_increment_us(record: Callable[[tuple[str, str, str]], None], sets, count: int) -> float:
    """µs of one counter increment plus one histogram observation."""
    for labels in sets:  # warm-up: every series exists, caches are filled
        record(labels)
    started = time.perf_counter()
    for number in range(count):
        record(sets[number % len(sets)])
    return (time.perf_counter() - started) / count * 1e6


def flush_ms(sets) -> float:
    """ms of one flush of every series (what the thread does once a second)."""
    for labels in sets:
        record_ours(labels)
    started = time.perf_counter()
    metrics.flush()
    return (time.perf_counter() - started) * 1e3


def reset(client: redis.Redis) -> None:
    """No stored metrics either way: Redis hashes and the multiprocess files."""
    metrics.flush()
    keys = client.keys(KEY_PREFIX + "*")
    if keys:
        client.delete(*keys)
    for name in os.listdir(MULTIPROC_DIR):
        os.remove(os.path.join(MULTIPROC_DIR, name))


def fork_recorders(processes: int, sets) -> None:
    """``processes`` children that each record every series once, both ways, and exit."""
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:  # the child: its own buffer (metrics' at-fork hook) and its own files
            for labels in sets:
                record_ours(labels)
                record_theirs(labels)
            metrics.flush()
            os._exit(0)
        children.append(pid)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise SystemExit(f"a recording process exited with status {status}")


def scrape_ours() -> bytes:
    return render_metrics(lambda session: 0.0)


def scrape_theirs() -> bytes:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=MULTIPROC_DIR)
    return generate_latest(registry)


def best_ms(scrape: Callable[[], bytes], times: int) -> tuple[float, bytes]:
    best, body = float("inf"), b""
    for _ in range(times):
        started = time.perf_counter()
        body = scrape()
        best = min(best, (time.perf_counter() - started) * 1e3)
    return best, body


def webhook_total(body: bytes) -> float:
    """The sum of the webhook counter's samples in a scrape."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(body.decode())
        if family.name == WEBHOOKS.name
        for sample in family.samples
        if sample.name == WEBHOOKS.name + "_total"
    )


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--increments", type=int, default=200_000)
    parser.add_argument("--series", type=int, default=100, help="label sets per family")
    parser.add_argument("--processes", default="1,4,16,64", help="process counts to scrape")
    parser.add_argument("--scrapes", type=int, default=5, help="scrapes per case; best kept")
    parser.add_argument("--quick", action="store_true", help="20,000 increments, 1 and 8 processes")
    args = parser.parse_args()
    if args.quick:
        args.increments, args.processes, args.scrapes = 20_000, "1,8", 3
    args.processes = [int(count) for count in args.processes.split(",")]
    return args


def main() -> None:
    args = parse_arguments()
    client = redis.Redis.from_url(REDIS_URL)
    sets = series(args.series)
    print(f"broker {REDIS_URL}; {args.series} series per family; multiprocess dir {MULTIPROC_DIR}")
    try:
        reset(client)
        ours = per_increment_us(record_ours, sets, args.increments)
        theirs = per_increment_us(record_theirs, sets, args.increments)
        print("per increment (one counter inc + one histogram observe), µs:")
        print(f"  ours {ours:.2f}   multiprocess {theirs:.2f}   ratio x{theirs / ours:.1f}")
        flushed = flush_ms(sets)
        print(f"  our flush of {args.series} + {args.series} series: {flushed:.2f} ms (1 a second)")
        print(f"{'processes':>9} {'ours ms':>9} {'multiproc ms':>13} {'ratio':>7} {'total':>8}")
        for processes in args.processes:
            reset(client)
            fork_recorders(processes, sets)
            ours_ms, ours_body = best_ms(scrape_ours, args.scrapes)
            theirs_ms, theirs_body = best_ms(scrape_theirs, args.scrapes)
            total = webhook_total(ours_body)
            if total != webhook_total(theirs_body) or total != processes * args.series:
                raise SystemExit(
                    f"the scrapes disagree: ours {total}, theirs {webhook_total(theirs_body)}"
                )
            print(
                f"{processes:>9} {ours_ms:>9.2f} {theirs_ms:>13.2f} "
                f"{theirs_ms / ours_ms:>6.1f}x {total:>8.0f}"
            )
    finally:
        reset(client)
        shutil.rmtree(MULTIPROC_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
