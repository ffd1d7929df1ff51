"""Triage bench: the discrepancy list and detail over HTTP, with 1,000,000 discrepancies.

What it does, in one run:

1. creates a fresh database ``recon_bench_triage`` on the machine's PostgreSQL, migrates it,
   adds ``--orgs`` organisations (sizes skewed: the largest holds about four times the
   smallest's share) with an owner API key each (the domain's ``create_api_key``), and
   empties Redis database 12;
2. generates N discrepancies over the last 180 days with COPY, one chunk per transaction
   (foreign-key triggers off in the loading session: the generator makes every reference):
   all six types, the type's severity (10 % ``low``), statuses mostly open (resolved more
   often the older the row), six currencies, log-uniform amounts, assignees on a quarter,
   70 % found by a daily run (one per organisation and day) and the rest by the incremental
   path; with the payments and provider records they concern, the match result (item)
   that found each, and the action log: ``opened`` for every one, then ``assigned``,
   ``acknowledged``, ``note_added``, ``resolved`` or ``auto_resolved`` as their state
   says; then VACUUM ANALYZE;
3. starts ``recon serve`` (gunicorn, 2 workers) on a free loopback port; walks the default
   list and each filtered listing of ``listings()`` for every organisation (unmeasured: it
   warms the caches, checks that no page repeats a row, counts the rows of each first
   page and keeps the cursors of pages 2 to 5);
4. closed loop, C concurrent connections (default: one per worker), N requests a phase,
   each request with the key of a random organisation: ``GET /healthz`` (the baseline),
   the default list, the filtered lists (page 1), the filtered and default lists at a
   cursor (pages 2 to 5), and the detail of random discrepancies;
5. then the same phases again under load (issue 17): a Celery worker (2 processes) starts
   and a child process sends signed Stripe webhooks for the largest organisation at
   ``--webhook-rate``/s to the same server (open loop), from 3 s before the phases to
   their end;
6. prints p50/p99 for each (and per filtered listing), quiet and under load, then
   PASS/FAIL against the target, p99 < 50 ms for each kind of request under load;
7. stops the worker and the server, drops the database and empties Redis database 12,
   also on Ctrl-C or an error.

Run from the repository root: ``.venv/bin/python bench/triage.py [--discrepancies N] ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from celery_workers import start_workers
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
from http_load import Outcome, closed_loop, healthz_requests, measure, print_outcome
from triage_data import DAYS, TABLES, TYPES, BenchOrg, load, prepare_organizations, table_sizes
from webhook_load import WebhookLoad, add_stripe_account

DATABASE = "recon_bench_triage"
REDIS_DATABASE = 12  # the server's metrics and the load's webhook tasks land here
DISCREPANCIES = "/billing/reconciliation/discrepancies"
TARGET_P99_MS = 50.0
WARMUP_REQUESTS = 300
PAGES = 5  # the cursor phase follows each listing to this page
WEBHOOK_WARMUP_SECONDS = 3.0  # the load runs this long before the measured phases


def listings(org: BenchOrg, now: datetime) -> list[tuple[str, dict[str, str]]]:
    """The filtered listings measured, (label, query) for ``org``: what finance asks for."""
    run_id, _ = org.runs[min(30, DAYS)]
    month_ago = (now - timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)
    return [
        ("open AmountMismatch EUR >= 100.00 by amount",
         {"status": "open", "type": "AmountMismatch", "currency": "EUR", "min_amount": "10000",
          "sort": "amount"}),
        ("open by amount", {"status": "open", "sort": "amount"}),
        ("acknowledged", {"status": "acknowledged"}),
        ("open DuplicateChargeSuspected high",
         {"status": "open", "type": "DuplicateChargeSuspected", "severity": "high"}),
        ("CurrencyMismatch", {"type": "CurrencyMismatch"}),
        ("assignee", {"assignee": org.assignees[0]}),
        ("assignee acknowledged", {"assignee": org.assignees[1], "status": "acknowledged"}),
        ("run_id", {"run_id": run_id}),
        ("run_id by amount", {"run_id": run_id, "sort": "amount"}),
        ("KWD", {"currency": "KWD"}),
        ("resolved KWD low", {"status": "resolved", "currency": "KWD", "severity": "low"}),
        ("one day", {"since": month_ago.isoformat(),
                     "until": (month_ago + timedelta(days=1)).isoformat()}),
        ("one week high by amount",
         {"severity": "high", "since": month_ago.isoformat(),
          "until": (month_ago + timedelta(days=7)).isoformat(), "sort": "amount"}),
        ("low >= 10,000.00 by amount", {"severity": "low", "min_amount": "1000000",
                                        "sort": "amount"}),
    ]  # fmt: skip


def path_of(query: dict[str, str]) -> str:
    return f"{DISCREPANCIES}?{urlencode(query)}" if query else DISCREPANCIES


def request_bytes(port: int, path: str, key: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: recon-bench\r\n"
        f"Authorization: Bearer {key}\r\nAccept: application/json\r\n\r\n"
    ).encode()


def get_json(port: int, path: str, key: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - http://127.0.0.1
        return json.load(response)


@dataclass
class Walked:
    """What the unmeasured walk found: rows of each first page, and the later pages."""

    first_rows: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    pages: list[tuple[str, BenchOrg, str]] = field(default_factory=list)  # label, org, path


def walk(port: int, orgs: list[BenchOrg], now: datetime) -> Walked:
    """Follow every listing of every organisation to page PAGES, checking that no row
    repeats; keep each later page's path (with its cursor) for the cursor phase."""
    walked = Walked()
    for org in orgs:
        for label, query in [("default", {}), *listings(org, now)]:
            seen: set[str] = set()
            path = path_of(query)
            for page in range(1, PAGES + 1):
                body = get_json(port, path, org.key)
                ids = [item["id"] for item in body["items"]]
                if seen.intersection(ids):
                    raise RuntimeError(f"{label}: page {page} repeats rows of earlier pages")
                seen.update(ids)
                if page == 1:
                    walked.first_rows[label].append(len(ids))
                else:
                    walked.pages.append((label, org, path))
                if body["next_cursor"] is None:
                    break
                path = path_of({**query, "cursor": body["next_cursor"]})
    return walked


def random_discrepancies(count: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(id, org_id) of ``count`` discrepancies drawn at random (with repeats if few)."""
    with connect() as connection:
        rows = connection.execute(
            "SELECT id, org_id FROM reconciliation_discrepancies ORDER BY random() LIMIT %s",
            (count,),
        ).fetchall()
    return [rows[index % len(rows)] for index in range(count)]


def print_by_label(outcome: Outcome, labels: list[str], rows: dict[str, list[int]]) -> None:
    """p50/p99 of each listing in ``outcome``, slowest p99 first (and its first pages' rows)."""
    grouped: dict[str, list[float]] = defaultdict(list)
    for label, latency in zip(labels, outcome.latencies, strict=True):
        grouped[label].append(latency)
    parts = [
        Outcome(label=label, sent=len(latencies), elapsed=0.0, latencies=latencies,
                statuses=Counter())
        for label, latencies in grouped.items()
    ]  # fmt: skip
    for part in sorted(parts, key=lambda part: -part.percentile_ms(0.99)):
        counts = rows.get(part.label, [])
        shown = f"  rows on page 1: {min(counts)}-{max(counts)}" if counts else ""
        print(
            f"    {part.label:<44} {part.sent:>6}  p50 {part.percentile_ms(0.5):6.1f} ms"
            f"  p99 {part.percentile_ms(0.99):6.1f} ms{shown}"
        )


def measure_cases(
    args: argparse.Namespace, orgs: list[BenchOrg], now: datetime, port: int, meter: CpuMeter,
    walked: Walked, rnd: random.Random, condition: str,
) -> list[Outcome]:  # fmt: skip
    """(a) the default list, (b) filtered lists at page 1 and at a cursor, (c) the detail;
    each phase printed, labelled with ``condition``."""
    n = args.requests
    print(f"\n{condition}:")
    picks = [rnd.choice(orgs) for _ in range(n)]
    default = measure(
        meter, "(a) default list",
        closed_loop(port, [request_bytes(port, DISCREPANCIES, org.key) for org in picks],
                    args.concurrency),
    )  # fmt: skip
    print_outcome(default, "req")

    chosen = [(org, rnd.choice(listings(org, now))) for org in (rnd.choice(orgs) for _ in range(n))]
    filtered = measure(
        meter, "(b) filtered lists, page 1",
        closed_loop(port, [request_bytes(port, path_of(query), org.key)
                           for org, (_, query) in chosen], args.concurrency),
    )  # fmt: skip
    print_outcome(filtered, "req")
    print_by_label(filtered, [label for _, (label, _) in chosen], walked.first_rows)

    paged = [rnd.choice(walked.pages) for _ in range(n)] if walked.pages else []
    cursor = measure(
        meter, f"(b) lists at a cursor, pages 2-{PAGES}",
        closed_loop(port, [request_bytes(port, path, org.key) for _, org, path in paged],
                    args.concurrency),
    )  # fmt: skip
    print_outcome(cursor, "req")
    print_by_label(cursor, [label for label, _, _ in paged], {})

    keys = {org.id: org.key for org in orgs}
    details = random_discrepancies(n)
    detail = measure(
        meter, "(c) detail of a random discrepancy",
        closed_loop(port, [request_bytes(port, f"{DISCREPANCIES}/{id_}", keys[org_id])
                           for id_, org_id in details], args.concurrency),
    )  # fmt: skip
    print_outcome(detail, "req")
    return [default, filtered, cursor, detail]


def run(
    args: argparse.Namespace, orgs: list[BenchOrg], now: datetime, server: Server,
    workdir: Path, children: list,
) -> bool:  # fmt: skip
    """Measure every phase, quiet and under load; print figures and targets; True when
    every target passed under load."""
    port = server.port
    meter = CpuMeter(server.process.pid)
    rnd = random.Random(args.seed + 1)
    print(
        f"recon serve: {args.workers} gunicorn workers on 127.0.0.1:{port}; client: asyncio, "
        f"{args.concurrency} connections, {args.requests} requests a phase; "
        f"{os.cpu_count()} cores; Python {sys.version.split()[0]}"
    )
    began = time.perf_counter()
    walked = walk(port, orgs, now)
    print(f"(walked every listing of every organisation to page {PAGES} in "
          f"{time.perf_counter() - began:.1f} s: warm-up, row counts, cursors)")  # fmt: skip
    asyncio.run(closed_loop(port, healthz_requests(WARMUP_REQUESTS, port), args.concurrency))

    baseline = measure(
        meter, "baseline GET /healthz",
        closed_loop(port, healthz_requests(args.requests, port), args.concurrency),
    )  # fmt: skip
    print_outcome(baseline, "req")
    quiet = measure_cases(args, orgs, now, port, meter, walked, rnd, "quiet (nothing else runs)")

    loaded: list[Outcome] = []
    load = None
    if args.webhook_rate > 0:
        account_id = add_stripe_account(orgs[0].id)
        workers = start_workers("one-worker", workdir, None)
        children.extend(workers)
        load = WebhookLoad(port, account_id, args.webhook_rate)
        time.sleep(WEBHOOK_WARMUP_SECONDS)
        try:
            loaded = measure_cases(
                args, orgs, now, port, meter, walked, rnd,
                f"under load: {args.webhook_rate:g} webhooks/s to the same server, matched by "
                "a Celery worker (2 processes)",
            )  # fmt: skip
        finally:
            outcome = load.stop()
        with connect(autocommit=True) as connection:
            processed = connection.execute(
                "SELECT count(*) FROM provider_events WHERE state = 'processed'"
            ).fetchone()[0]
        if outcome is not None:
            print(
                f"  webhook load: {outcome.accepted_rate:,.0f}/s accepted over "
                f"{outcome.elapsed:.0f} s, answers {outcome.statuses}; {processed:,} events "
                "processed by the worker"
            )

    print()
    print(f"targets (issues 6 and 17): p99 < {TARGET_P99_MS:.0f} ms, every response 2xx; "
          f"baseline /healthz p50 {baseline.percentile_ms(0.5):.1f} ms, "
          f"p99 {baseline.percentile_ms(0.99):.1f} ms")  # fmt: skip
    passed = True
    for index, outcome in enumerate(quiet):
        under = loaded[index] if loaded else None
        cases = [("quiet", outcome)] + ([("under load", under)] if under else [])
        for condition, case in cases:
            p50, p99 = case.percentile_ms(0.5), case.percentile_ms(0.99)
            ok = p99 < TARGET_P99_MS and case.ok == case.sent and case.sent > 0
            if condition == "under load" or under is None:
                passed &= ok
            print(
                f"  {case.label:<38} {condition:<10} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
                f"({p99 / baseline.percentile_ms(0.99):4.1f} x baseline p99)  {verdict(ok)}"
            )
    return passed


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--discrepancies", type=int, default=1_000_000,
                        help="discrepancies generated, over every organisation")  # fmt: skip
    parser.add_argument("--orgs", type=int, default=10, help="organisations")
    parser.add_argument("--requests", type=int, default=2_000, help="requests per phase")
    parser.add_argument(
        "--concurrency", type=int, help="client connections (default: as many as --workers)"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--seed", type=int, default=6, help="seed of the generated data")
    parser.add_argument(
        "--webhook-rate",
        type=float,
        default=200,
        help="webhooks/s of the concurrent load (0: measure quiet only)",
    )
    args = parser.parse_args(argv)
    if args.concurrency is None:
        args.concurrency = args.workers
    if args.webhook_rate < 0:
        parser.error("--webhook-rate must not be negative")
    if min(args.orgs, args.requests, args.concurrency, args.workers) < 1:
        parser.error("--orgs, --requests, --concurrency and --workers must be positive")
    if args.discrepancies < args.orgs:
        parser.error("--discrepancies must be at least --orgs")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    use_own_services(DATABASE, redis_url(REDIS_DATABASE))

    workdir = Path(tempfile.mkdtemp(prefix="recon-bench-triage-"))
    server: Server | None = None
    children: list = []  # the load's Celery worker, stopped at the end
    try:
        start_afresh(DATABASE, REDIS_DATABASE)
        orgs = prepare_organizations(args.orgs)
        now = datetime.now(UTC)
        began = time.perf_counter()
        rows = load(orgs, args.discrepancies, args.seed, now)
        print(f"loaded in {time.perf_counter() - began:.0f} s with COPY + VACUUM ANALYZE: "
              + ", ".join(f"{table} {rows[table]:,}" for table in
                          ("reconciliation_runs", *(table for table, _ in TABLES))))  # fmt: skip
        print("  organisations: " + ", ".join(f"{org.share:,}" for org in orgs))
        print("  by type: " + ", ".join(f"{kind} {rows[kind]:,}" for kind, _ in TYPES))
        statuses = ("open", "acknowledged", "resolved")
        print("  by status: " + ", ".join(f"{status} {rows[status]:,}" for status in statuses))
        print("  reconciliation_discrepancies: " + ", ".join(
            f"{name} {size / 2**20:.0f} MB" for name, size in table_sizes()))  # fmt: skip
        server = Server(free_port(), args.workers, workdir / "server.log")
        server.wait_ready()
        return 0 if run(args, orgs, now, server, workdir, children) else 1
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        for child in children:
            child.stop()
        if server is not None:
            server.stop()
        clean_up(DATABASE, redis_url(REDIS_DATABASE))
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
