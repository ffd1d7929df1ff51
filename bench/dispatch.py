"""Dispatch bench: our task messages (``platform/dispatch.py``) against Celery's ``send_task``.

What it does, in one run, against Redis database 13 (emptied of the queues it fills, before
and after; nothing consumes it):

1. publishes ``--messages`` ``worker.tasks.process_event`` messages four ways, each after a
   short warm-up, ``--rounds`` times, keeping each way's best round:

   - **ours, single**: ``send_now(PROCESS_EVENT, [id])``, one message per call (one LPUSH);
   - **ours, batched**: ``send_now`` with ``--batch`` ids per call (one LPUSH per batch), as
     the webhook path's group commit sends them;
   - **send_task, single**: ``app.send_task(PROCESS_EVENT, args=[id])``;
   - **send_task, batched**: ``--batch`` ``send_task`` calls sharing one producer
     (``app.producer_or_acquire()``), the closest kombu has to a batch;

   the ``send_task`` app has the service's routing (``shared/platform/tasks.py``) and a
   broker on the same Redis;
2. checks that each way queued exactly the messages it sent;
3. prints, per message, the wall time and the CPU time of this process in µs, and the ratio
   ``send_task`` / ours for the single and the batched case.

Run from the repository root: ``.venv/bin/python bench/dispatch.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
# Before ``shared`` reads its settings: the bench's broker is its own Redis database.
os.environ["REDIS_URL"] = REDIS_URL

from celery import Celery  # noqa: E402

from shared.platform.dispatch import broker, queue_of, send_now  # noqa: E402
from shared.platform.tasks import PROCESS_EVENT, QUEUES, routing_configuration  # noqa: E402


@dataclass(frozen=True)
class Timing:
    """One way of publishing: per message, wall and CPU microseconds."""

    name: str
    wall_us: float
    cpu_us: float


def celery_publisher() -> Celery:
    """A Celery app that publishes as the worker's app would (routing, JSON, no results)."""
    app = Celery("recon", broker=REDIS_URL, set_as_current=False)
    app.conf.update(routing_configuration(), task_ignore_result=True)
    return app


def ours_single(ids: list[str]) -> None:
    for identifier in ids:
        send_now(PROCESS_EVENT, [identifier])


def ours_batched(ids: list[str], batch: int) -> None:
    for start in range(0, len(ids), batch):
        send_now(PROCESS_EVENT, ids[start : start + batch])


def send_task_single(app: Celery, ids: list[str]) -> None:
    for identifier in ids:
        app.send_task(PROCESS_EVENT, args=[identifier])


def send_task_batched(app: Celery, ids: list[str], batch: int) -> None:
    for start in range(0, len(ids), batch):
        with app.producer_or_acquire() as producer:
            for identifier in ids[start : start + batch]:
                app.send_task(PROCESS_EVENT, args=[identifier], producer=producer)


def empty_queues() -> None:
    broker().delete(*QUEUES)


def measure(name: str, publish: Callable[[list[str]], None], count: int, rounds: int) -> Timing:
    """The best of ``rounds`` runs of ``publish`` over ``count`` fresh ids, per message."""
    queue = queue_of(PROCESS_EVENT)
    publish([str(uuid.uuid4()) for _ in range(min(count, 50))])  # warm-up: connections, caches
    best: Timing | None = None
    for _ in range(rounds):
        empty_queues()
        ids = [str(uuid.uuid4()) for _ in range(count)]
        wall, cpu = time.perf_counter(), time.process_time()
        publish(ids)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        queued = broker().llen(queue)
        if queued != count:
            raise SystemExit(f"{name}: {queued} messages queued, {count} sent")
        timing = Timing(name, wall / count * 1e6, cpu / count * 1e6)
        if best is None or timing.wall_us < best.wall_us:
            best = timing
    assert best is not None
    return best


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="messages per round")
    parser.add_argument("--batch", type=int, default=100, help="messages per batch")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per way; best kept")
    parser.add_argument("--quick", action="store_true", help="500 messages, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.rounds = 500, 2
    return args


def main() -> None:
    args = parse_arguments()
    app = celery_publisher()
    ways = [
        ("ours, single", ours_single),
        ("ours, batched", lambda ids: ours_batched(ids, args.batch)),
        ("send_task, single", lambda ids: send_task_single(app, ids)),
        ("send_task, batched", lambda ids: send_task_batched(app, ids, args.batch)),
    ]
    print(f"{args.messages} messages a round, best of {args.rounds}, batches of {args.batch}")
    print(f"broker {REDIS_URL}")
    try:
        timings = {name: measure(name, way, args.messages, args.rounds) for name, way in ways}
    finally:
        empty_queues()
    print(f"{'way':<20} {'wall µs/msg':>12} {'CPU µs/msg':>12}")
    for timing in timings.values():
        print(f"{timing.name:<20} {timing.wall_us:>12.1f} {timing.cpu_us:>12.1f}")
    for case in ("single", "batched"):
        ours, theirs = timings[f"ours, {case}"], timings[f"send_task, {case}"]
        print(
            f"send_task / ours, {case}: wall x{theirs.wall_us / ours.wall_us:.1f}, "
            f"CPU x{theirs.cpu_us / ours.cpu_us:.1f}"
        )


if __name__ == "__main__":
    main()
