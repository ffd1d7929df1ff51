"""Worker bench: events matched per second from a pre-filled queue, and webhook-to-item latency.

What it does, in one run:

1. creates a fresh database ``recon_bench_worker`` on the machine's PostgreSQL, migrates it,
   registers an organisation and a Stripe provider account, and empties Redis database 15;
2. loads internal payments with COPY: one per event of both phases, in EUR, USD, GBP, CHF,
   JPY (no decimals) and KWD (three), 30 % of them knowing their PaymentIntent id (they
   match by provider reference) and the rest only their external id (they match by the
   event's ``metadata.external_id``, the merchant reference); about 2 % of the events
   state another amount than their payment, so AmountMismatch discrepancies (with their
   action-log entries) are written too;
3. **phase A, throughput**: stores N ``payment_intent.succeeded`` events straight into
   ``provider_events`` with COPY (ingestion has its own bench), queues one
   ``worker.tasks.process_event`` task per event with ``shared.platform.dispatch.send_now``, *then*
   starts the Celery worker, and polls PostgreSQL until every event is ``processed``;
   events/s is counted from the first item stored to the last (the worker's start-up is
   printed apart), then the items and discrepancies are checked against what was made;
4. **phase B, latency**: with the same worker running, starts ``recon serve`` and delivers
   signed webhooks over HTTP at a steady R events/s for S seconds (open loop). For each
   event it records when the 200 arrived, and measures from there to (a) the moment a
   poller saw the event's processing committed (the item is written in the same
   transaction), (b) ``provider_events.processed_at`` and (c) the item's ``created_at``;
5. prints the figures, how busy each process group kept the cores, and the issue's targets
   with PASS/FAIL; stops every process, empties the Redis database and drops the bench
   database at the end, also on Ctrl-C or an error.

"2 worker processes" are two prefork pool processes. By default they are one
``celery worker --concurrency 2`` (what ``recon worker`` and ``recon up`` run); with
``--layout two-workers`` they are two ``celery worker --concurrency 1``, each with its own
consumer process.

Which latency is "item stored": (a) is the commit as another connection sees it, an upper
bound by at most the poll interval (5 ms) — the PASS/FAIL figure; (b) and (c) are lower
bounds: ``processed_at`` is taken when the task starts and ``created_at`` is ``now()``, the
start of the task's transaction, so neither includes the matching work or the commit.

On a server running with ``autovacuum = off`` the bench runs ANALYZE itself, at
autovacuum's thresholds, on the tables the worker fills (``--no-analyze`` not to): without
statistics the planner keeps plans made for empty tables and the cost per event grows with
the table, which would measure the server's configuration rather than the worker.

Run from the repository root: ``.venv/bin/python bench/event_processing.py [--events N] ...``.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from autoanalyze import Autoanalyze, autovacuum_is_on
from celery_workers import QUEUES, CeleryWorker, start_workers
from cpu_meters import GroupMeter
from environment import (
    LoggedProcess,
    Server,
    clean_up,
    connect,
    free_port,
    redis_url,
    start_afresh,
    use_own_services,
)
from figures import percentile_ms, verdict
from paced_webhooks import deliveries, describe_latencies, describe_timeline, run_paced
from processed_events import check_phase, stored, stored_times
from py_spy_profiles import Profiler, summarise_by_kind_of_work
from queue_progress import Throughput, wait_for_drain, wait_for_items, waiting_deliveries
from sales import Sale, SaleMaker, enqueue, load_payments, store_events
from statement_counts import count_statements
from stripe_webhooks import prepare_account

DATABASE = "recon_bench_worker"
REDIS_DATABASE = 15

TARGET_EVENTS_PER_SECOND = 1_000
TARGET_P99_MS = 250.0
PROFILE_HZ = 200
WARMUP_SECONDS = 2.0


def org_of(account_id: str):
    """The organisation of the bench's provider account."""
    with connect(autocommit=True) as connection:
        return connection.execute(
            "SELECT org_id FROM provider_accounts WHERE id = %s", (account_id,)
        ).fetchone()[0]


@dataclass
class Batches:
    """The sales of each phase: A (throughput), W (warm-up of B) and P (paced, phase B)."""

    a: list[Sale]
    w: list[Sale]
    p: list[Sale]


def prepare(args: argparse.Namespace, org_id, children: list) -> tuple[Batches, Autoanalyze | None]:
    """Load every phase's payments, start ANALYZE if autovacuum is off, print the set-up."""
    maker = SaleMaker(random.Random(args.seed))
    paced_count = math.ceil(args.rate * args.duration)
    warmup_count = math.ceil(args.rate * WARMUP_SECONDS)
    batches = Batches(
        a=maker.sales(args.events, "A"),
        w=maker.sales(warmup_count, "W"),
        p=maker.sales(paced_count, "P"),
    )
    started = time.perf_counter()
    load_payments(org_id, batches.a + batches.w + batches.p)
    print(
        f"{maker.made} payments loaded in {time.perf_counter() - started:.1f} s "
        f"(currencies {dict(Counter(sale.currency for sale in batches.a).most_common())})"
    )
    layout = (
        "1 celery worker --concurrency 2 (2 prefork pool processes + 1 consumer)"
        if args.layout == "one-worker"
        else "2 celery workers --concurrency 1 (1 pool process + 1 consumer each)"
    )
    analyzer = None
    if not autovacuum_is_on():
        if args.no_analyze:
            print("autovacuum is off on this server and --no-analyze: no statistics")
        else:
            print(
                "autovacuum is off on this server: the bench runs ANALYZE as autovacuum "
                "would (--no-analyze not to)"
            )
            analyzer = Autoanalyze()
            children.append(analyzer)
            analyzer.start()
    with connect(autocommit=True) as connection:
        server_version = connection.info.server_version
    if args.prefetch is not None:
        layout += f", --prefetch-multiplier {args.prefetch}"
    print(
        f"worker: {layout}, queues {QUEUES}; {os.cpu_count()} cores; "
        f"Python {sys.version.split()[0]}; PostgreSQL {server_version // 10_000}"
    )
    return batches, analyzer


def phase_a(
    args: argparse.Namespace, workdir: Path, children: list, org_id, account_id: str,
    batch: list[Sale],
) -> tuple[Throughput, GroupMeter, list[CeleryWorker], list[Profiler]]:  # fmt: skip
    """Throughput: the queue is full before the worker starts; poll until every item."""
    started = time.perf_counter()
    ids = store_events(org_id, account_id, batch, "A")
    queued = enqueue(ids)
    print(
        f"\nphase A: {len(ids)} events stored and {queued} tasks queued in "
        f"{time.perf_counter() - started:.1f} s; starting the worker"
    )
    meter = GroupMeter(DATABASE)
    workers = start_workers(args.layout, workdir, args.prefetch)
    children.extend(workers)
    consumers = [worker.process.pid for worker in workers]
    meter.watch("consumer", consumers, "root")
    meter.watch("pool", consumers, "children")
    profiler: list[Profiler] = []

    def first_item() -> None:
        if args.profile:
            pool = [pid for worker in workers for pid in worker.pool_pids()]
            pids = {"pool": pool, "consumer": consumers}
            profiler.append(Profiler(pids, Path(args.profile), PROFILE_HZ))
            children.insert(0, profiler[0])  # stopped first, also on Ctrl-C

    spawned = time.monotonic()
    before = meter.snapshot()
    throughput = wait_for_items(args.events, spawned, on_first=first_item)
    after = meter.snapshot()
    for each in profiler:
        each.stop()
    print(
        f"  worker start-up (spawn -> first item): {throughput.startup:.1f} s; "
        f"{throughput.counted} events in the next {throughput.elapsed:.1f} s: "
        f"{throughput.rate:,.0f} ev/s  (incl. start-up {args.events / throughput.total:,.0f} ev/s)"
    )
    print(GroupMeter.describe(before, after, throughput.total, args.events))
    # A task claims up to a batch of pending events, so most messages are left for events
    # another task's batch processed: each costs a delivery and a claim that finds nothing.
    leftover = waiting_deliveries()
    drained = wait_for_drain()
    after_drain = meter.snapshot()
    whole = throughput.total + drained
    print(
        f"  {leftover} task messages were left when the last item was stored (their events "
        f"processed by other tasks' batches): acknowledged in {drained:.1f} s more, "
        f"{leftover / drained if drained else 0:,.0f}/s; every message acknowledged "
        f"{whole:.1f} s after spawn ({args.events / whole:,.0f} ev/s)"
    )
    if leftover:
        print(GroupMeter.describe(after, after_drain, drained, leftover, unit="message"))
    return throughput, meter, workers, profiler


@dataclass
class Latencies:
    """Phase B's latencies (seconds) of the accepted webhooks, from their 200."""

    sent: int
    accepted: int
    seen: list[float]  # -> committed, as the poller saw it
    processed: list[float]  # -> provider_events.processed_at (task start)
    created: list[float]  # -> item created_at (transaction start)


def phase_b(
    args: argparse.Namespace, workdir: Path, children: list, meter: GroupMeter,
    account_id: str, batches: Batches,
) -> Latencies:  # fmt: skip
    """Latency: webhooks over HTTP at a steady rate while the worker keeps running."""
    server = Server(free_port(), 2, workdir / "server.log")
    children.append(server)
    server.wait_ready()
    meter.watch("gunicorn", [server.process.pid])
    print(
        f"\nphase B: recon serve (2 gunicorn workers) on 127.0.0.1:{server.port}; "
        f"{args.rate:g} webhooks/s for {args.duration:g} s after {WARMUP_SECONDS:g} s of warm-up"
    )
    warmup = deliveries(batches.w, "W", account_id, server.port)
    run_paced(server.port, warmup, args.rate, account_id)
    paced = deliveries(batches.p, "P", account_id, server.port)
    before = meter.snapshot()
    elapsed, lag, watcher = run_paced(server.port, paced, args.rate, account_id)
    after = meter.snapshot()
    statuses = Counter(delivery.status for delivery in paced)
    accepted = [delivery for delivery in paced if delivery.status == 200]
    print(
        f"  {len(paced)} sent in {elapsed:.1f} s, answers {dict(statuses)}; "
        f"worst send lag behind schedule {lag * 1000:.1f} ms"
    )
    print(GroupMeter.describe(before, after, elapsed, len(paced)))
    times = stored_times("P")
    latencies = Latencies(len(paced), len(accepted), [], [], [])
    for delivery in accepted:
        latencies.seen.append(watcher.seen[delivery.event_id] - delivery.accepted_at)
        if delivery.event_id in times:
            latencies.processed.append(times[delivery.event_id][0] - delivery.accepted_at)
            latencies.created.append(times[delivery.event_id][1] - delivery.accepted_at)
    print(describe_latencies("webhook sent -> 200 (HTTP)", [d.latency for d in accepted]))
    print(describe_latencies("200 -> committed (seen by a 5 ms poller)", latencies.seen))
    print(
        describe_latencies("200 -> provider_events.processed_at (task start)", latencies.processed)
    )
    print(describe_latencies("200 -> item created_at (transaction start)", latencies.created))
    print(describe_timeline(accepted, watcher.seen))
    return latencies


def run(args: argparse.Namespace, workdir: Path, children: list) -> bool:
    """Both phases; print figures and targets; True when the data came out as expected."""
    account_id = prepare_account()
    org_id = org_of(account_id)
    batches, analyzer = prepare(args, org_id, children)
    throughput, meter, workers, profiler = phase_a(
        args, workdir, children, org_id, account_id, batches.a
    )
    if analyzer is not None:
        print(f"  ANALYZE run by the bench so far: {dict(analyzer.runs) or 'none'}")
    good_a = check_phase("phase A", batches.a, stored("A"))
    for label, paths in profiler[0].outputs.items() if profiler else ():
        summarise_by_kind_of_work(label, paths, throughput.counted, PROFILE_HZ)

    latencies = phase_b(args, workdir, children, meter, account_id, batches)
    good_b = check_phase("phase B", batches.p, stored("P"))
    problems = sum(worker.problems() for worker in workers)
    if problems:
        print(f"  the worker logged {problems} errors: see below")
        for worker in workers:
            print(worker.tail())

    p99 = percentile_ms(latencies.seen, 0.99)
    print("\ntargets (issue 4)")
    print(
        f"  phase A throughput        {throughput.rate:8,.0f} ev/s   >= "
        f"{TARGET_EVENTS_PER_SECOND:,}    {verdict(throughput.rate >= TARGET_EVENTS_PER_SECOND)}"
    )
    print(
        f"  p99 200 -> committed      {p99:8.1f} ms     < {TARGET_P99_MS:.0f} ms   "
        f"{verdict(p99 < TARGET_P99_MS and latencies.accepted == latencies.sent)}"
        f"   (lower bounds: processed_at {percentile_ms(latencies.processed, 0.99):.1f} ms, "
        f"created_at {percentile_ms(latencies.created, 0.99):.1f} ms)"
    )
    print(f"  items and discrepancies as expected          {verdict(good_a and good_b)}")
    return good_a and good_b


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in phase A")
    parser.add_argument("--rate", type=float, default=200, help="webhooks/s in phase B")
    parser.add_argument("--duration", type=float, default=20, help="seconds of phase B")
    parser.add_argument(
        "--layout",
        choices=("one-worker", "two-workers"),
        default="one-worker",
        help="the 2 pool processes as 1 worker x 2, or 2 workers x 1",
    )
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="with autovacuum off on the server, do not run ANALYZE in its place",
    )
    parser.add_argument("--seed", type=int, default=4, help="seed of the generated data")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="record the pool processes with py-spy during phase A into DIR and summarise",
    )
    parser.add_argument(
        "--prefetch",
        type=int,
        metavar="M",
        help="run the worker with --prefetch-multiplier M (default: the app's setting)",
    )
    parser.add_argument(
        "--statements",
        type=int,
        default=0,
        metavar="N",
        help="instead of the phases: count SQL statements per event over N events each way",
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.rate <= 0 or args.duration <= 0 or args.statements < 0:
        parser.error("--events, --rate and --duration must be positive, --statements not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    use_own_services(DATABASE, redis_url(REDIS_DATABASE))

    workdir = Path(tempfile.mkdtemp(prefix="recon-bench-worker-"))
    children: list[LoggedProcess | Autoanalyze | Profiler] = []  # stopped at the end, in order
    try:
        start_afresh(DATABASE, REDIS_DATABASE)
        if args.statements:
            account_id = prepare_account()
            org_id = org_of(account_id)
            print(f"SQL per event, {args.statements} events each way (no Celery worker):")
            return 0 if count_statements(account_id, org_id, args.statements, args.seed) else 1
        return 0 if run(args, workdir, children) else 1
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    except Exception:
        for child in children:
            if isinstance(child, LoggedProcess):
                print(f"--- {child.log_path.name}:\n{child.tail()}", file=sys.stderr)
        raise
    finally:
        for child in children:
            child.stop()
        clean_up(DATABASE, redis_url(REDIS_DATABASE))
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
