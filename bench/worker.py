"""Worker bench: a day's payments imported through the API and matched, with webhooks meanwhile.

What it does, in one run (issue 17):

1. creates a fresh database ``recon_bench_payments``, migrates it, registers an
   organisation, a Stripe account and an owner API key, and empties Redis database 11;
2. **events phase**: the webhooks of two days of sales (``--payments`` each, the event
   bench's sales: six currencies, 30 % knowing their PaymentIntent id, 2 % charged
   another amount) are stored with COPY and queued, then the Celery worker (2 prefork
   processes) starts; events/s from the first processed to the last. No payment exists
   yet, so every record stays unbound: the webhooks are "already in";
3. starts ``recon serve`` (2 gunicorn workers) and measures **webhook intake at idle**:
   signed webhooks over ``--connections`` connections (closed loop) for ``--idle-seconds``;
4. **payments phase**, once per day: day 1 with the statistics the load left (autovacuum
   is off on these machines: ``provider_records`` has never been analysed), day 2 after
   ``ANALYZE``. The day's payments go through ``POST /billing/payments`` in batches of
   1,000 over 2 connections while the same webhook load runs; matched/s counts from the
   first import request to the moment no ``pending_payment_matches`` row is left, and the
   intake during that time is compared with the idle rate. Then every payment of the day
   must be bound to its record and every deliberate mismatch open as AmountMismatch;
5. prints the figures and the targets with PASS/FAIL; stops every process, empties the
   Redis database and drops the bench database at the end, also on Ctrl-C or an error.

Run from the repository root: ``.venv/bin/python bench/worker.py [--payments N] ...``.
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
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from autoanalyze import autovacuum_is_on
from celery_workers import start_workers
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
from figures import verdict
from http_load import Slot
from queue_progress import wait_for_drain
from sales import Sale, SaleMaker, enqueue, store_events
from stripe_webhooks import event_id, prepare_account, signed_request, stripe_event

DATABASE = "recon_bench_payments"
REDIS_DATABASE = 11

TARGET_MATCHED_PER_SECOND = 3_000
TARGET_INTAKE_RATIO = 0.50
IMPORT_BATCH = 1_000
IMPORT_CONNECTIONS = 2
POLL_SECONDS = 0.05
STALL_SECONDS = 120.0


def owner_key(org_id) -> str:
    """A new owner API key of the organisation (the billing side's credentials)."""
    from shared.access.api_keys import create_api_key
    from shared.platform.db import get_engine, unit_of_work

    with unit_of_work() as session:
        key = create_api_key(session=session, org_id=org_id, role="owner").secret
    get_engine().dispose()
    return key


def org_of(account_id: str):
    with connect(autocommit=True) as connection:
        return connection.execute(
            "SELECT org_id FROM provider_accounts WHERE id = %s", (account_id,)
        ).fetchone()[0]


def import_requests(sales: list[Sale], port: int, key: str) -> list[bytes]:
    """``POST /billing/payments`` requests of IMPORT_BATCH payments each, as billing sends."""
    requests = []
    for start in range(0, len(sales), IMPORT_BATCH):
        payments = [
            {
                "external_id": sale.external_id,
                "provider": "stripe",
                "provider_reference": sale.intent_id if sale.intent_known else None,
                "amount_minor": sale.amount_minor,
                "currency": sale.currency,
                "status": "succeeded",
                "customer_ref": sale.customer,
                "occurred_at": sale.occurred_at.isoformat(),
            }
            for sale in sales[start : start + IMPORT_BATCH]
        ]
        body = json.dumps({"payments": payments}).encode()
        requests.append(
            (
                f"POST /billing/payments HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
    return requests


def webhook_maker(account_id: str, port: int, phase: str) -> Callable[[], bytes]:
    """A function returning the next freshly signed webhook of ``phase`` (made on demand:
    a phase's length is not known beforehand)."""
    numbers: Iterator[int] = iter(range(10**8))

    def make() -> bytes:
        created = int(time.time())
        event = stripe_event(event_id(phase, next(numbers)), created)
        return signed_request(account_id, port, event, created)

    return make


@dataclass
class Intake:
    """Webhooks answered while a phase ran."""

    statuses: Counter[int]
    elapsed: float

    @property
    def rate(self) -> float:
        accepted = self.statuses.get(200, 0)
        return accepted / self.elapsed if self.elapsed else 0.0


async def send_webhooks(
    port: int, make: Callable[[], bytes], connections: int, stop: asyncio.Event
) -> Counter[int]:
    """Closed loop: each connection sends its next webhook when answered, until ``stop``."""
    statuses: Counter[int] = Counter()

    async def one() -> None:
        slot = Slot(port)
        while not stop.is_set():
            statuses[await slot.send(make())] += 1
        slot.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return statuses


async def idle_intake(port: int, make: Callable[[], bytes], connections: int, seconds: float):
    stop = asyncio.Event()
    started = time.perf_counter()
    sending = asyncio.create_task(send_webhooks(port, make, connections, stop))
    await asyncio.sleep(seconds)
    stop.set()
    statuses = await sending
    return Intake(statuses, time.perf_counter() - started)


@dataclass
class ImportOutcome:
    imported: float  # first import request -> last answered
    matched: float  # first import request -> no pending match left
    import_statuses: Counter[int]
    intake: Intake


def nothing_pending(connection) -> bool:
    return not connection.execute("SELECT EXISTS (SELECT FROM pending_payment_matches)").fetchone()[
        0
    ]


async def import_during_webhooks(
    port: int, requests: list[bytes], make: Callable[[], bytes], connections: int
) -> ImportOutcome:
    """Send the import over IMPORT_CONNECTIONS while webhooks arrive; until all is matched."""
    stop = asyncio.Event()
    import_statuses: Counter[int] = Counter()
    waiting = iter(requests)

    async def importer() -> None:
        slot = Slot(port)
        for request in waiting:
            import_statuses[await slot.send(request)] += 1
        slot.close()

    started = time.perf_counter()
    sending = asyncio.create_task(send_webhooks(port, make, connections, stop))
    await asyncio.gather(*(importer() for _ in range(IMPORT_CONNECTIONS)))
    imported = time.perf_counter() - started
    with connect(autocommit=True) as connection:
        last_change, last = time.monotonic(), None
        while not await asyncio.to_thread(nothing_pending, connection):
            count = connection.execute("SELECT count(*) FROM pending_payment_matches").fetchone()
            if count != last:
                last_change, last = time.monotonic(), count
            elif time.monotonic() - last_change > STALL_SECONDS:
                stop.set()
                await sending
                raise RuntimeError(f"matching stalled with {count[0]} payments pending")
            await asyncio.sleep(POLL_SECONDS)
    matched = time.perf_counter() - started
    stop.set()
    statuses = await sending
    return ImportOutcome(imported, matched, import_statuses, Intake(statuses, matched))


def wait_for_events(expected: int) -> tuple[float, float]:
    """Poll until ``expected`` events are no longer pending; (first processed -> last, and
    spawn -> last), raising if progress stalls."""
    spawned = time.monotonic()
    first = None
    last_change, last = spawned, -1
    with connect(autocommit=True) as connection:
        while True:
            done = connection.execute(
                "SELECT count(*) FROM provider_events WHERE state <> 'pending'"
            ).fetchone()[0]
            now = time.monotonic()
            if done and first is None:
                first = now
            if done != last:
                last_change, last = now, done
            if done >= expected:
                return now - (first or now), now - spawned
            if now - last_change > STALL_SECONDS:
                raise RuntimeError(f"event processing stalled at {done} of {expected}")
            time.sleep(POLL_SECONDS)


def check_day(label: str, sales: list[Sale]) -> bool:
    """Every payment of the day bound to its record; the deliberate mismatches open."""
    prefix = sales[0].external_id[:5]
    with connect(autocommit=True) as connection:
        bound = connection.execute(
            "SELECT count(*) FROM provider_records r JOIN payments p ON p.id = r.payment_id "
            "WHERE p.external_id LIKE %s AND r.provider_reference = "
            "coalesce(p.provider_reference, r.provider_reference)",
            (prefix + "%",),
        ).fetchone()[0]
        mismatches = connection.execute(
            "SELECT count(*) FROM reconciliation_discrepancies d JOIN payments p "
            "ON p.id = d.payment_id WHERE p.external_id LIKE %s AND d.type = 'AmountMismatch'",
            (prefix + "%",),
        ).fetchone()[0]
        others = connection.execute(
            "SELECT count(*) FROM reconciliation_discrepancies d JOIN payments p "
            "ON p.id = d.payment_id WHERE p.external_id LIKE %s AND d.type <> 'AmountMismatch'",
            (prefix + "%",),
        ).fetchone()[0]
    expected = sum(1 for sale in sales if sale.mismatched)
    good = bound == len(sales) and mismatches == expected and others == 0
    print(
        f"  {label}: {bound} of {len(sales)} payments bound; AmountMismatch {mismatches} "
        f"(expected {expected}); other discrepancies {others}  {verdict(good)}"
    )
    return good


def run(args: argparse.Namespace, workdir: Path, children: list) -> bool:
    from shared.ingest.processing import EVENT_BATCH  # once DATABASE_URL names the bench's

    account_id = prepare_account()
    org_id = org_of(account_id)
    key = owner_key(org_id)
    maker = SaleMaker(random.Random(args.seed))
    days = [("day 1, statistics as the load left them", maker.sales(args.payments, "Y"), False),
            ("day 2, after ANALYZE", maker.sales(args.payments, "Z"), True)]  # fmt: skip
    print(
        f"{os.cpu_count()} cores; autovacuum {'on' if autovacuum_is_on() else 'off'}; "
        f"{args.payments:,} payments a day, their webhooks in first"
    )

    # --- events phase ---------------------------------------------------------------
    started = time.perf_counter()
    ids = [
        identifier
        for _, sales, _ in days
        for identifier in store_events(org_id, account_id, sales, sales[0].external_id[4])
    ]
    # A task claims up to a batch of pending events (fewer when its own was taken): a message
    # per half batch is enough here,
    # where the events are the set-up (bench/event_processing.py measures their intake).
    queued = enqueue(ids[:: EVENT_BATCH // 2])
    print(
        f"\nevents phase: {len(ids):,} webhooks stored and {queued:,} tasks queued in "
        f"{time.perf_counter() - started:.1f} s; starting the worker (2 pool processes)"
    )
    meter = GroupMeter(DATABASE)
    workers = start_workers("one-worker", workdir, None)
    children.extend(workers)
    consumers = [worker.process.pid for worker in workers]
    meter.watch("consumer", consumers, "root")
    meter.watch("pool", consumers, "children")
    elapsed, total = wait_for_events(len(ids))
    print(
        f"  {len(ids):,} events processed in {elapsed:.1f} s after the first: "
        f"{len(ids) / elapsed if elapsed else 0:,.0f} ev/s ({total:.1f} s from spawn)"
    )
    print(f"  leftover task messages acknowledged in {wait_for_drain():.1f} s more")

    # --- webhook intake at idle -------------------------------------------------------
    server = Server(free_port(), 2, workdir / "server.log")
    children.append(server)
    server.wait_ready()
    meter.watch("gunicorn", [server.process.pid])
    idle = asyncio.run(
        idle_intake(
            server.port,
            webhook_maker(account_id, server.port, "I"),
            args.connections,
            args.idle_seconds,
        )
    )
    print(
        f"\nwebhook intake at idle: {idle.rate:,.0f}/s over {args.connections} connections "
        f"for {idle.elapsed:.1f} s, answers {dict(idle.statuses)}"
    )
    wait_for_drain()

    # --- payments phase, twice ------------------------------------------------------
    results = []
    good = True
    for (label, sales, analyze), phase in zip(days, ("J", "K"), strict=True):
        if analyze:
            with connect(autocommit=True) as connection:
                connection.execute("ANALYZE")
        requests = import_requests(sales, server.port, key)
        before = meter.snapshot()
        outcome = asyncio.run(
            import_during_webhooks(
                server.port, requests, webhook_maker(account_id, server.port, phase),
                args.connections,
            )
        )  # fmt: skip
        after = meter.snapshot()
        rate = len(sales) / outcome.matched
        ratio = outcome.intake.rate / idle.rate if idle.rate else 0.0
        print(
            f"\npayments phase, {label}: {len(requests)} requests of up to {IMPORT_BATCH:,} "
            f"answered {dict(outcome.import_statuses)} in {outcome.imported:.1f} s; "
            f"all matched {outcome.matched:.1f} s after the first: {rate:,.0f} payments/s"
        )
        print(
            f"  webhook intake meanwhile: {outcome.intake.rate:,.0f}/s "
            f"({ratio:.0%} of idle), answers {dict(outcome.intake.statuses)}"
        )
        print(GroupMeter.describe(before, after, outcome.matched, len(sales), unit="payment"))
        good &= check_day(label, sales)
        results.append((label, rate, ratio))
        wait_for_drain()
    problems = sum(worker.problems() for worker in workers)
    if problems:
        print(f"  the worker logged {problems} errors:")
        for worker in workers:
            print(worker.tail())

    print("\ntargets (issue 17)")
    for label, rate, ratio in results:
        print(
            f"  {label:<42} {rate:8,.0f} payments/s >= {TARGET_MATCHED_PER_SECOND:,}  "
            f"{verdict(rate >= TARGET_MATCHED_PER_SECOND)}   intake {ratio:4.0%} of idle "
            f">= {TARGET_INTAKE_RATIO:.0%}  {verdict(ratio >= TARGET_INTAKE_RATIO)}"
        )
    print(f"  every payment bound and judged as expected           {verdict(good)}")
    return good


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=50_000, help="payments of each day")
    parser.add_argument(
        "--connections", type=int, default=8, help="webhook connections (closed loop)"
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=10, help="seconds of webhooks at idle"
    )
    parser.add_argument("--seed", type=int, default=17, help="seed of the generated sales")
    args = parser.parse_args(argv)
    if args.payments < 1 or args.connections < 1 or args.idle_seconds <= 0:
        parser.error("--payments, --connections and --idle-seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    use_own_services(DATABASE, redis_url(REDIS_DATABASE))
    workdir = Path(tempfile.mkdtemp(prefix="recon-bench-payments-"))
    children: list[LoggedProcess] = []  # stopped at the end, in order
    try:
        start_afresh(DATABASE, REDIS_DATABASE)
        return 0 if run(args, workdir, children) else 1
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    except Exception:
        for child in children:
            print(f"--- {child.log_path.name}:\n{child.tail()}", file=sys.stderr)
        raise
    finally:
        for child in children:
            child.stop()
        clean_up(DATABASE, redis_url(REDIS_DATABASE))
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
