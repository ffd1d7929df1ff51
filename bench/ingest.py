"""Webhook ingestion bench: signed Stripe webhooks against ``recon serve``, with a baseline.

What it does, in one run:

1. creates a fresh database ``recon_bench_ingest`` on the machine's PostgreSQL, migrates it,
   registers an organisation and a Stripe provider account, and empties Redis database 14;
2. starts ``recon serve`` (gunicorn, 2 workers) on a free loopback port and waits for
   ``/readyz``;
3. closed loop, C concurrent connections: N ``GET /healthz`` (the baseline: the same server
   doing nothing), then N signed ``payment_intent.succeeded`` webhooks, each a unique
   ``evt_…`` id; bodies and ``Stripe-Signature`` headers are made before the clock starts.
   Both phases use the same client: ``wrk`` replaying the requests from a file
   (``bench/replay.lua``) when it is installed, else the asyncio client of ``http_load.py``;
4. open loop at a steady R events/s for S seconds (always the asyncio client): each send
   is scheduled at a fixed instant and its latency runs from that instant (so a stalled
   server cannot hide its queueing delay by slowing the client down);
5. counts the rows in ``provider_events``: lost = sent unique − stored;
6. stops the server, empties the Redis database and drops the bench database, also on
   Ctrl-C or an error.

No Celery worker runs: events stay ``pending`` and their tasks pile up in Redis; that is
the point (the bench measures the request path, not matching).

The asyncio client is a small HTTP/1.1 client over raw protocols (no dependency); at a
few thousand requests/s it needs most of a core, which on a 2-core machine it takes from
the server — wrk (C, one thread) needs a few percent of one. The CPU lines printed after
each phase show where the machine's time went (PostgreSQL: the bench database's backends
and the server's own processes, not other databases' backends).

Run from the repository root: ``.venv/bin/python bench/ingest.py [--events N] ...``.
Each phase's events are signed just before it starts, so keep a phase shorter than the
server's 300 s timestamp tolerance (at ~1,000 events/s, up to ~300,000 events).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from cpu_meters import CpuMeter
from environment import (
    Server,
    clean_up,
    connect,
    free_port,
    redis_url,
    start_afresh,
    use_own_services,
)
from figures import verdict
from http_load import healthz_requests, measure, open_loop, print_outcome
from stripe_webhooks import prepare_account, stripe_requests
from wrk_replay import choose_client, closed_loop_phase

DATABASE = "recon_bench_ingest"
REDIS_DATABASE = 14
WEBHOOK_QUEUE = "webhooks"

TARGET_RATIO = 0.50
TARGET_EVENTS_PER_SECOND = 1_500
TARGET_PACED_P99_MS = 50.0
WARMUP_REQUESTS = 500


def queued_tasks() -> int:
    """The tasks waiting in the webhook queue (no worker runs)."""
    import redis

    client = redis.Redis.from_url(redis_url(REDIS_DATABASE), socket_timeout=5)
    try:
        return int(client.llen(WEBHOOK_QUEUE))
    finally:
        client.close()


def stored_events() -> Counter[str]:
    """Rows in provider_events by phase (the letter after ``evt_``)."""
    with connect() as connection:
        rows = connection.execute(
            "SELECT substr(provider_event_id, 5, 1), count(*) FROM provider_events GROUP BY 1"
        ).fetchall()
    return Counter(dict(rows))


def run(args: argparse.Namespace, account_id: str, server: Server, workdir: Path) -> None:
    port = server.port
    meter = CpuMeter(server.process.pid, database=DATABASE)
    sent: Counter[str] = Counter()
    client = choose_client(args.client)

    print(
        f"recon serve: {args.workers} gunicorn {args.worker_class or 'default'} workers on "
        f"127.0.0.1:{port}; closed-loop client: {client}, {args.concurrency} connections; "
        f"paced client: asyncio; {os.cpu_count()} cores; Python {sys.version.split()[0]}"
    )
    if client == "asyncio" and args.client == "auto":
        print("(wrk is not installed: `apt-get install -y wrk` for a client that leaves the")
        print(" server its cores; both closed-loop phases use the asyncio client instead)")

    def phase(requests: list[bytes]):
        return closed_loop_phase(client, port, requests, args.concurrency, workdir)

    # Warm-up: worker imports, database pool, Redis connection; not measured.
    asyncio.run(phase(healthz_requests(WARMUP_REQUESTS, port)))
    warmup = stripe_requests("W", WARMUP_REQUESTS, account_id, port)
    asyncio.run(phase(warmup))
    sent["W"] = len(warmup)

    baseline = measure(meter, "baseline GET /healthz", phase(healthz_requests(args.events, port)))
    print_outcome(baseline, "req")

    burst = stripe_requests("B", args.events, account_id, port)
    body_bytes = len(burst[0].partition(b"\r\n\r\n")[2])
    print(f"(webhook body {body_bytes} bytes; all {len(burst)} signed before the clock starts)")
    ingest = measure(meter, "ingest POST /webhooks/stripe", phase(burst))
    sent["B"] = len(burst)
    del burst
    print_outcome(ingest, "ev")

    paced_requests = stripe_requests("P", int(args.rate * args.duration), account_id, port)
    paced = measure(
        meter,
        f"paced {args.rate:g} ev/s for {args.duration:g} s",
        open_loop(port, paced_requests, args.rate),
    )
    sent["P"] = len(paced_requests)
    del paced_requests
    print_outcome(paced, "ev")

    stored = stored_events()
    queued = queued_tasks()
    ratio = ingest.rate / baseline.rate if baseline.rate else 0.0
    lost = sum(sent.values()) - sum(stored.values())
    print()
    print("phase      sent unique   stored   lost")
    for phase, name in (("W", "warm-up"), ("B", "burst"), ("P", "paced")):
        print(f"{name:<10} {sent[phase]:>11} {stored[phase]:>8} {sent[phase] - stored[phase]:>6}")
    print(f"tasks queued in Redis ({WEBHOOK_QUEUE}): {queued}")
    print()
    print("targets (issue 3)")
    print(
        f"  ingest/baseline rate   {ratio:8.2f}         >= {TARGET_RATIO:.2f}     "
        f"{verdict(ratio >= TARGET_RATIO)}"
    )
    print(
        f"  ingest rate            {ingest.rate:8,.0f} ev/s    >= {TARGET_EVENTS_PER_SECOND:,} "
        f"  {verdict(ingest.rate >= TARGET_EVENTS_PER_SECOND)}"
    )
    p99 = paced.percentile_ms(0.99)
    print(
        f"  p99 at {args.rate:g} ev/s        {p99:8.1f} ms      < {TARGET_PACED_P99_MS:.0f} ms"
        f"    {verdict(p99 < TARGET_PACED_P99_MS and paced.ok == paced.sent)}"
    )
    print(f"  lost                   {lost:8d}         = 0        {verdict(lost == 0)}")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="requests per closed-loop phase")
    parser.add_argument("--concurrency", type=int, default=64, help="client connections")
    parser.add_argument("--rate", type=float, default=500, help="events/s of the paced run")
    parser.add_argument("--duration", type=float, default=10, help="seconds of the paced run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--worker-class",
        choices=("gevent", "sync", "gthread"),
        help="gunicorn worker type (default: recon serve's)",
    )
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "asyncio"),
        default="auto",
        help="closed-loop client: wrk if installed (auto), or the asyncio one",
    )
    args = parser.parse_args(argv)
    if min(args.events, args.concurrency, args.workers) < 1 or args.rate <= 0:
        parser.error("--events, --concurrency, --workers and --rate must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    use_own_services(DATABASE, redis_url(REDIS_DATABASE))

    workdir = Path(tempfile.mkdtemp(prefix="recon-bench-"))
    server: Server | None = None
    try:
        start_afresh(DATABASE, REDIS_DATABASE)
        account_id = prepare_account()
        server = Server(free_port(), args.workers, workdir / "server.log", args.worker_class)
        server.wait_ready()
        run(args, account_id, server, workdir)
        return 0
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            server.stop()
        clean_up(DATABASE, redis_url(REDIS_DATABASE))
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
