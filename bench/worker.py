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

Run from the repository root: ``.venv/bin/python bench/worker.py [--events N] ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import queue
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
# Run as a script, this file's directory would come first on sys.path, and this module,
# named worker.py, would shadow the project's ``worker`` package (the Celery app).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != BENCH_DIR]
sys.path.insert(0, str(REPO_ROOT))

from bench.ingest import (  # noqa: E402 - needs the sys.path above
    REDIS_BASE_URL,
    STRIPE_SECRET,
    CpuMeter,
    Server,
    Slot,
    drop_database,
    flush_redis,
    free_port,
    prepare_account,
    recreate_database,
    send_paced,
    stripe_event,
    use_own_services,
    verdict,
)
from shared.platform.ids import new_id  # noqa: E402

DATABASE = "recon_bench_worker"
REDIS_DATABASE = 15
QUEUES = "webhooks,matching"

TARGET_EVENTS_PER_SECOND = 1_000
TARGET_P99_MS = 250.0

MISMATCH_SHARE = 0.02
PROVIDER_REFERENCE_SHARE = 0.30
# (code, weight, smallest and largest amount in minor units, step): JPY has no minor unit
# and KWD three decimals, of which Stripe requires the last to be 0.
CURRENCIES = (
    ("EUR", 35, 100, 500_000, 1),
    ("USD", 30, 100, 500_000, 1),
    ("GBP", 15, 100, 300_000, 1),
    ("CHF", 5, 100, 300_000, 1),
    ("JPY", 10, 100, 500_000, 1),
    ("KWD", 5, 1_000, 1_500_000, 10),
)
SEND_CHUNK = 2_000
PROGRESS_POLL_SECONDS = 0.1
COMMIT_POLL_SECONDS = 0.005
COMMIT_POLL_WINDOW = 100
PROFILE_HZ = 200
ANALYZE_CHECK_SECONDS = 5.0
STALL_SECONDS = 60.0
WARMUP_SECONDS = 2.0


# --- Environment: database, Redis -----------------------------------------------------------


def redis_url() -> str:
    return urlsplit(REDIS_BASE_URL)._replace(path=f"/{REDIS_DATABASE}").geturl()


def queued(queue_name: str = "webhooks") -> int:
    import redis

    client = redis.Redis.from_url(redis_url(), socket_timeout=5)
    try:
        return int(client.llen(queue_name))
    finally:
        client.close()


def connect():
    """A psycopg connection to the bench database, in autocommit."""
    import psycopg

    return psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)


# --- Data: payments and the events that settle them -----------------------------------------


@dataclass(frozen=True)
class Sale:
    """One internal payment and the Stripe PaymentIntent that settled it."""

    payment_id: uuid.UUID
    external_id: str
    intent_id: str
    intent_known: bool  # the billing side stored the pi_… id: a provider-reference match
    amount_minor: int
    provider_amount_minor: int  # differs from amount_minor for the deliberate mismatches
    currency: str
    customer: str
    occurred_at: datetime

    @property
    def mismatched(self) -> bool:
        return self.amount_minor != self.provider_amount_minor


@dataclass
class SaleMaker:
    """Makes sales with unique (customer, currency, amount) so no duplicate charge is
    suspected by accident: the only discrepancies are the deliberate AmountMismatches."""

    rng: random.Random
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    made: int = 0
    taken: set[tuple[str, str, int]] = field(default_factory=set)

    def _amount(self, customer: str, currency: str, low: int, high: int, step: int) -> int:
        while True:
            amount = self.rng.randrange(low // step, high // step) * step
            if (customer, currency, amount) not in self.taken:
                self.taken.add((customer, currency, amount))
                return amount

    def sales(self, count: int, phase: str) -> list[Sale]:
        codes = [entry[0] for entry in CURRENCIES]
        weights = [entry[1] for entry in CURRENCIES]
        ranges = {entry[0]: entry[2:] for entry in CURRENCIES}
        mismatched = set(self.rng.sample(range(count), round(count * MISMATCH_SHARE)))
        made = []
        for index in range(count):
            number = self.made + index
            currency = self.rng.choices(codes, weights)[0]
            customer = f"cus_B{number // 4:07d}"  # four payments per customer
            amount = self._amount(customer, currency, *ranges[currency])
            provider_amount = amount
            if index in mismatched:
                provider_amount = self._amount(customer, currency, *ranges[currency])
            made.append(
                Sale(
                    payment_id=new_id(),
                    external_id=f"INV-{phase}{number:08d}",
                    intent_id=f"pi_3B{number:08d}{uuid.uuid4().hex[:15]}",
                    intent_known=self.rng.random() < PROVIDER_REFERENCE_SHARE,
                    amount_minor=amount,
                    provider_amount_minor=provider_amount,
                    currency=currency,
                    customer=customer,
                    occurred_at=self.now - timedelta(seconds=self.rng.randrange(60, 7_200)),
                )
            )
        self.made += count
        return made


def load_payments(org_id: uuid.UUID, sales: list[Sale]) -> None:
    """The internal payments of ``sales``, with COPY (the billing side's bulk import)."""
    with connect() as connection, connection.cursor() as cursor:
        with cursor.copy(
            "COPY payments (id, org_id, external_id, provider, provider_reference, "
            "amount_minor, currency, status, amount_refunded_minor, customer_ref, occurred_at) "
            "FROM STDIN"
        ) as copy:
            for sale in sales:
                copy.write_row(
                    (
                        sale.payment_id,
                        org_id,
                        sale.external_id,
                        "stripe",
                        sale.intent_id if sale.intent_known else None,
                        sale.amount_minor,
                        sale.currency,
                        "succeeded",
                        0,
                        sale.customer,
                        sale.occurred_at,
                    )
                )
        cursor.execute("ANALYZE payments")


def succeeded_event(sale: Sale, event_id: str) -> dict:
    """The ``payment_intent.succeeded`` Stripe sends for ``sale`` (bench/ingest.py's shape)."""
    created = int(sale.occurred_at.timestamp())
    event = stripe_event(event_id, created + 2)
    intent = event["data"]["object"]
    intent.update(
        id=sale.intent_id,
        amount=sale.provider_amount_minor,
        amount_received=sale.provider_amount_minor,
        currency=sale.currency.lower(),
        customer=sale.customer,
        created=created,
        client_secret=f"{sale.intent_id}_secret_{uuid.uuid4().hex[:25]}",
    )
    intent["metadata"]["external_id"] = sale.external_id
    return event


def event_id_of(phase: str, number: int) -> str:
    return f"evt_{phase}{number:08d}{uuid.uuid4().hex[:12]}"


def store_events(
    org_id: uuid.UUID, account_id: uuid.UUID, sales: list[Sale], phase: str
) -> list[str]:
    """Verified events for ``sales`` written with COPY, as ingestion would have stored them;
    their row ids, in order."""
    ids = []
    with connect() as connection, connection.cursor() as cursor:
        with cursor.copy(
            "COPY provider_events (id, org_id, provider_account_id, provider, "
            "provider_event_id, event_type, payload, signature_verified) FROM STDIN"
        ) as copy:
            for number, sale in enumerate(sales):
                row_id = new_id()
                event_id = event_id_of(phase, number)
                payload = json.dumps(succeeded_event(sale, event_id))
                copy.write_row(
                    (row_id, org_id, account_id, "stripe", event_id,
                     "payment_intent.succeeded", payload, True)
                )  # fmt: skip
                ids.append(str(row_id))
        cursor.execute("ANALYZE provider_events")
    return ids


def enqueue(ids: list[str]) -> int:
    """One process_event task per id, pushed to Redis the way ingestion does."""
    from shared.platform.dispatch import send_now
    from shared.platform.tasks import PROCESS_EVENT

    return sum(
        send_now(PROCESS_EVENT, ids[start : start + SEND_CHUNK])
        for start in range(0, len(ids), SEND_CHUNK)
    )


# --- Statistics, for a server without autovacuum --------------------------------------------


class Autoanalyze(threading.Thread):
    """ANALYZE as autovacuum would, for a server running with ``autovacuum = off``.

    Without it the tables the worker fills never get statistics, the planner keeps
    choosing plans made for an empty table (a lookup by provider reference walks every
    record of the organisation), and the cost per event grows with the table: the bench
    would measure the server's configuration, not the worker. Thresholds are autovacuum's
    defaults (50 rows + 10 % changed since the last ANALYZE); VACUUM is not emulated.
    """

    TABLES = (
        "provider_events",
        "provider_records",
        "reconciliation_items",
        "reconciliation_discrepancies",
        "reconciliation_action_logs",
    )

    def __init__(self) -> None:
        super().__init__(name="autoanalyze", daemon=True)
        self.finish = threading.Event()
        self.runs: Counter[str] = Counter()

    def run(self) -> None:
        with connect() as connection:
            while not self.finish.wait(ANALYZE_CHECK_SECONDS):
                rows = connection.execute(
                    "SELECT s.relname, s.n_mod_since_analyze, greatest(c.reltuples, 0) "
                    "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                    "WHERE s.relname = ANY(%s)",
                    (list(self.TABLES),),
                ).fetchall()
                for table, modified, tuples in rows:
                    if modified > 50 + 0.1 * tuples:
                        connection.execute(f"ANALYZE {table}")
                        self.runs[table] += 1

    def stop(self) -> None:
        self.finish.set()
        self.join(timeout=30)


def autovacuum_is_on() -> bool:
    with connect() as connection:
        return connection.execute("SHOW autovacuum").fetchone()[0] == "on"


# --- Processes ------------------------------------------------------------------------------


class CeleryWorker(Server):
    """``celery worker`` (the argv ``recon worker`` runs) as a child; output to a log file.

    Shares bench/ingest.py's Server for the log tail and the graceful stop.
    """

    def __init__(
        self, name: str, concurrency: int, log_path: Path, prefetch: int | None = None
    ) -> None:
        from cli.processes import worker_argv

        self.port = 0
        self.log_path = log_path
        self._log = log_path.open("wb")
        options = ["--hostname", f"{name}@%h"]
        if prefetch is not None:
            options += ["--prefetch-multiplier", str(prefetch)]
        self.process = subprocess.Popen(
            [*worker_argv(QUEUES, concurrency), *options],
            cwd=REPO_ROOT,
            env=os.environ.copy(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def pool_pids(self) -> list[int]:
        import psutil

        with contextlib.suppress(psutil.Error):
            return [child.pid for child in psutil.Process(self.process.pid).children()]
        return []

    def problems(self) -> int:
        """Lines the worker logged at ERROR or above (or a traceback)."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace")
        return sum(
            1
            for line in text.splitlines()
            if '"level": "error"' in line or '"level": "critical"' in line or "Traceback" in line
        )


POSTGRES_SERVER_PROCESSES = ("checkpointer", "background writer", "walwriter", "autovacuum")


def _serves_bench(cmdline: list[str] | None) -> bool:
    """A postgres process working for this bench: a backend of its database, or one of
    the server's own (WAL writer, checkpointer...), not a backend of another database —
    the server may be shared (other benches, test runs)."""
    title = " ".join(cmdline or [])
    if not title.startswith("postgres:"):
        return True  # the postmaster
    return f" {DATABASE} " in title or any(name in title for name in POSTGRES_SERVER_PROCESSES)


class GroupMeter(CpuMeter):
    """CPU seconds of named process groups, PostgreSQL, Redis and this client process."""

    def __init__(self) -> None:
        self.groups: dict[str, tuple[list, str]] = {}
        try:
            import psutil
        except ImportError:
            self.psutil = None
            return
        self.psutil = psutil

    def watch(self, name: str, pids: list[int], part: str = "tree") -> None:
        """Count ``pids`` as ``name``: each with its descendants (``tree``), alone
        (``root``), or only their descendants (``children``)."""
        if self.psutil is not None:
            self.groups[name] = ([self.psutil.Process(pid) for pid in pids], part)

    def _members(self, roots: list, part: str) -> list:
        members = []
        for root in roots:
            if part != "children":
                members.append(root)
            if part != "root":
                with contextlib.suppress(self.psutil.Error):
                    members += root.children(recursive=True)
        return members

    def snapshot(self) -> dict[str, float] | None:
        if self.psutil is None:
            return None
        by_name: dict[str, list] = {"postgres": [], "redis-server": []}
        for process in self.psutil.process_iter(["name", "cmdline"]):
            name = process.info["name"] or ""
            if name == "postgres" and not _serves_bench(process.info["cmdline"]):
                continue
            if name in by_name:
                by_name[name].append(process)
        seconds = {"client": time.process_time()}
        for name, (roots, part) in self.groups.items():
            seconds[name] = self._seconds(iter(self._members(roots, part)))
        seconds["postgres"] = self._seconds(iter(by_name["postgres"]))
        seconds["redis"] = self._seconds(iter(by_name["redis-server"]))
        return seconds

    @staticmethod
    def describe(
        before: dict | None, after: dict | None, elapsed: float, events: int, unit: str = "event"
    ) -> str:
        if before is None or after is None or elapsed <= 0 or events <= 0:
            return ""
        busy = ", ".join(f"{name} {(after[name] - before[name]) / elapsed:.2f}" for name in before)
        per_event = ", ".join(
            f"{name} {(after[name] - before[name]) / events * 1000:.2f}"
            for name in before
            if name != "client"
        )
        return f"  cores busy: {busy} (of {os.cpu_count()})\n  CPU ms per {unit}: {per_event}"


class Profiler:
    """py-spy sampling processes at PROFILE_HZ, idle samples included (so wall time)."""

    def __init__(self, pids: dict[str, list[int]], directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        py_spy = Path(sys.executable).with_name("py-spy")
        self.outputs: dict[str, list[Path]] = {}
        self.processes = []
        for label, group in pids.items():
            for pid in group:
                output = directory / f"{label}-{pid}.txt"
                self.outputs.setdefault(label, []).append(output)
                argv = [
                    str(py_spy), "record", "--pid", str(pid), "--rate", str(PROFILE_HZ),
                    "--idle", "--nonblocking", "--format", "raw", "--output", str(output),
                ]  # fmt: skip
                self.processes.append(
                    subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _frame(raw: str) -> str:
    """``name (file:line)`` without the line: a function, whatever line was running."""
    name, _, place = raw.rpartition(" (")
    return f"{name} ({place.rsplit(':', 1)[0]})" if name else raw


def _where(frames: list[str]) -> str:
    """What a sample was doing, by the innermost frame."""
    leaf = frames[-1]
    if "billiard/queues.py" in leaf or "_recv (billiard" in leaf or "get_payload" in leaf:
        return "waiting for the next task (pipe from the consumer)"
    if "kombu/utils/eventio.py" in leaf:
        return "idle in the event loop (epoll)"
    if leaf.startswith(("Connection.wait (psycopg", "BaseCursor._send_query_prepared (psycopg")):
        return "waiting on PostgreSQL (query round trip)"
    for marker, label in (
        ("psycopg/", "psycopg (Python side)"),
        ("sqlalchemy/", "SQLAlchemy (Python side)"),
        ("structlog/", "logging"),
        ("logging/", "logging"),
        ("kombu/", "kombu / redis client"),
        ("redis/", "kombu / redis client"),
        ("celery/", "celery / billiard"),
        ("billiard/", "celery / billiard"),
        ("shared/", "project code (shared/)"),
        ("json/", "json"),
    ):
        if marker in leaf:
            return label
    return "other"


PROJECT_FILES = ("(shared/", "(worker/", "(api/")


def summarise_profile(label: str, paths: list[Path], events: int, top: int = 15) -> None:
    """Print where a group of processes spent its wall time, in ms per event: by kind of
    work (innermost frame); by the innermost project function (the query or ORM call it
    made included), with how much of it was waiting on PostgreSQL; and by function,
    inclusive (project functions when there are any, else every frame not common to all).
    Only main threads count: helper threads (the metrics flusher) sleep most of the time."""
    inclusive: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    sites: Counter[str] = Counter()
    site_waits: Counter[str] = Counter()
    total = 0
    background = 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            samples = int(count)
            frames = [_frame(raw) for raw in stack.split(";")]
            if frames[0].startswith("Thread._bootstrap "):
                background += samples  # a helper thread (metrics flush...): mostly asleep
                continue
            total += samples
            kind = _where(frames)
            kinds[kind] += samples
            for frame in set(frames):
                inclusive[frame] += samples
            own = [frame for frame in frames if any(part in frame for part in PROJECT_FILES)]
            if own:
                sites[own[-1]] += samples
                if kind.startswith("waiting on PostgreSQL"):
                    site_waits[own[-1]] += samples
    if not total or not events:
        print(f"  ({label}: py-spy recorded nothing)")
        return
    per_event = 1000 / PROFILE_HZ / events  # ms of wall per sample, per event
    print(
        f"  py-spy, {label} ({len(paths)} processes, {total} samples of their main threads; "
        f"wall ms per event; {background} samples of helper threads left out):"
    )
    for kind, samples in kinds.most_common():
        print(f"    {samples * per_event:7.2f} ms  {samples / total:6.1%}  {kind}")
    if sites:
        print("    by the innermost project function (its SQL and ORM calls included):")
        for site, samples in sites.most_common(top):
            print(
                f"    {samples * per_event:7.2f} ms  {samples / total:6.1%}  {site}"
                f"  (waiting on PostgreSQL {site_waits[site] * per_event:.2f} ms)"
            )
    print("    by function, inclusive:")
    if sites:
        chosen = [(f, n) for f, n in inclusive.most_common() if any(p in f for p in PROJECT_FILES)]
    else:
        chosen = [(f, n) for f, n in inclusive.most_common() if n < 0.97 * total]
    for frame, samples in chosen[:top]:
        print(f"    {samples * per_event:7.2f} ms  {samples / total:6.1%}  {frame}")


# --- Phase A: throughput from a pre-filled queue --------------------------------------------


@dataclass
class Stored:
    """What the database holds about a phase's events."""

    states: Counter[str]
    items: Counter[str]
    methods: Counter[str]
    discrepancies: Counter[str]
    opened_actions: int


def stored(phase: str) -> Stored:
    """Counts of the phase's events by state and of what processing them wrote."""
    with connect() as connection:
        # The phase's events, their records (by PaymentIntent id) and what was written.
        scope = (
            "WITH r AS (SELECT pr.id FROM provider_events e JOIN provider_records pr "
            "ON pr.org_id = e.org_id AND pr.provider_reference = "
            "e.payload -> 'data' -> 'object' ->> 'id' "
            "WHERE e.provider_event_id LIKE %(pattern)s) "
        )
        pattern = {"pattern": f"evt_{phase}%"}
        states = connection.execute(
            "SELECT state, count(*) FROM provider_events "
            "WHERE provider_event_id LIKE %(pattern)s GROUP BY 1",
            pattern,
        ).fetchall()
        items = connection.execute(
            scope + "SELECT outcome, count(*) FROM reconciliation_items "
            "WHERE provider_record_id IN (SELECT id FROM r) GROUP BY 1",
            pattern,
        ).fetchall()
        methods = connection.execute(
            scope + "SELECT coalesce(match_method, 'unmatched'), count(*) FROM provider_records "
            "WHERE id IN (SELECT id FROM r) GROUP BY 1",
            pattern,
        ).fetchall()
        discrepancies = connection.execute(
            scope + "SELECT type, count(*) FROM reconciliation_discrepancies "
            "WHERE provider_record_id IN (SELECT id FROM r) GROUP BY 1",
            pattern,
        ).fetchall()
        opened = connection.execute(
            scope + "SELECT count(*) FROM reconciliation_action_logs l "
            "JOIN reconciliation_discrepancies d ON d.id = l.discrepancy_id "
            "WHERE l.action = 'opened' AND d.provider_record_id IN (SELECT id FROM r)",
            pattern,
        ).fetchone()[0]
    return Stored(
        states=Counter(dict(states)),
        items=Counter(dict(items)),
        methods=Counter(dict(methods)),
        discrepancies=Counter(dict(discrepancies)),
        opened_actions=opened,
    )


def check_phase(label: str, sales: list[Sale], result: Stored) -> bool:
    """Print what the phase wrote against what its data must produce; True if it all holds."""
    count = len(sales)
    mismatched = sum(sale.mismatched for sale in sales)
    by_reference = sum(sale.intent_known for sale in sales)
    expected = {
        "processed events": (result.states["processed"], count),
        "failed events": (result.states["failed"], 0),
        "items": (sum(result.items.values()), count),
        "items mismatched": (result.items["mismatched"], mismatched),
        "matched by provider_reference": (result.methods["provider_reference"], by_reference),
        "matched by merchant_reference": (
            result.methods["merchant_reference"],
            count - by_reference,
        ),
        "AmountMismatch discrepancies": (result.discrepancies["AmountMismatch"], mismatched),
        "other discrepancies": (
            sum(result.discrepancies.values()) - result.discrepancies["AmountMismatch"],
            0,
        ),
        "'opened' action-log entries": (result.opened_actions, mismatched),
    }
    good = all(found == wanted for found, wanted in expected.values())
    print(f"  check ({label}): " + ("all as expected" if good else "DIFFERENCES"))
    for name, (found, wanted) in expected.items():
        mark = "ok" if found == wanted else f"expected {wanted}"
        print(f"    {name:<32} {found:>7}  {mark}")
    return good


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
    with connect() as connection:
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
                    f"{REDIS_DATABASE}?)"
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

    client = redis.Redis.from_url(redis_url(), socket_timeout=5)
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


# --- Phase B: latency at a steady rate ------------------------------------------------------


class CommitWatcher(threading.Thread):
    """Sees when each accepted event's processing becomes visible, by polling PostgreSQL.

    An event seen ``processed`` by the query started at t was committed before t and after
    the previous query started: ``seen`` keeps t, an upper bound by one poll interval. Each
    poll asks about the COMMIT_POLL_WINDOW oldest outstanding events (the queue is FIFO,
    so they are the next to finish), which keeps a poll cheap when a backlog builds up.
    """

    def __init__(self, account_id: str) -> None:
        super().__init__(name="commit-watcher", daemon=True)
        self.account_id = account_id
        self.inbox: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.seen: dict[str, float] = {}
        self.outstanding: dict[str, None] = {}  # in order of acceptance
        self.finish = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            with connect() as connection:
                while True:
                    # Every put precedes ``finish``: once it is set, this drain is complete.
                    finishing = self.finish.is_set()
                    with contextlib.suppress(queue.Empty):
                        while True:
                            self.outstanding[self.inbox.get_nowait()] = None
                    if finishing and not self.outstanding:
                        return
                    if self.outstanding:
                        window = list(itertools.islice(self.outstanding, COMMIT_POLL_WINDOW))
                        started = time.time()
                        rows = connection.execute(
                            "SELECT provider_event_id FROM provider_events "
                            "WHERE provider_account_id = %s AND provider_event_id = ANY(%s) "
                            "AND state <> 'pending'",
                            (self.account_id, window),
                        ).fetchall()
                        for (event_id,) in rows:
                            self.seen[event_id] = started
                            del self.outstanding[event_id]
                    time.sleep(COMMIT_POLL_SECONDS)
        except Exception as error:  # noqa: BLE001 - raised again in the main thread (wait_all)
            self.error = error

    def wait_all(self) -> None:
        """Return once every accepted event was seen; raise if progress stalls."""
        self.finish.set()
        last_change, last_count = time.monotonic(), -1
        while self.is_alive():
            self.join(0.5)
            count = len(self.outstanding)
            if count != last_count:
                last_change, last_count = time.monotonic(), count
            elif time.monotonic() - last_change > STALL_SECONDS:
                raise RuntimeError(f"{count} accepted events not processed after {STALL_SECONDS} s")
        if self.error is not None:
            raise self.error


@dataclass
class Delivery:
    event_id: str
    raw: bytes
    accepted_at: float = math.nan  # wall time the 200 arrived
    latency: float = math.nan  # from its scheduled send instant to the answer
    status: int = 0


def deliveries(sales: list[Sale], phase: str, account_id: str, port: int) -> list[Delivery]:
    """Signed HTTP requests for ``sales`` (as bench/ingest.py's), signed now."""
    from shared.providers.stripe import stripe_signature

    signed_at = int(time.time())
    head = (
        f"POST /webhooks/stripe/{account_id} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
        "Accept: */*; q=0.5, application/json\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
    )
    made = []
    for number, sale in enumerate(sales):
        event_id = event_id_of(phase, number)
        body = json.dumps(succeeded_event(sale, event_id), indent=2).encode()
        signature = stripe_signature(STRIPE_SECRET, signed_at, body)
        raw = (
            f"{head}Stripe-Signature: t={signed_at},v1={signature}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        made.append(Delivery(event_id, raw))
    return made


async def deliver_paced(
    port: int, batch: list[Delivery], rate: float, watcher: CommitWatcher
) -> tuple[float, float]:
    """Send delivery i at start + i/rate whatever the server does (bench/ingest.py's open
    loop), noting when each 200 arrived; (elapsed, worst lag of a send behind schedule)."""
    loop = asyncio.get_running_loop()
    idle: list[Slot] = []

    async def send(delivery: Delivery, scheduled: float) -> None:
        slot = idle.pop() if idle else Slot(port)
        delivery.status = await slot.send(delivery.raw)
        delivery.accepted_at = time.time()
        delivery.latency = loop.time() - scheduled
        if delivery.status == 200:
            watcher.inbox.put(delivery.event_id)
        idle.append(slot)

    elapsed, worst_lag = await send_paced(batch, rate, send)
    for slot in idle:
        slot.close()
    return elapsed, worst_lag


def stored_times(phase: str) -> dict[str, tuple[float, float]]:
    """provider_event_id -> (processed_at, item created_at) as Unix times, for the phase."""
    with connect() as connection:
        rows = connection.execute(
            "SELECT e.provider_event_id, extract(epoch FROM e.processed_at)::float8, "
            "extract(epoch FROM i.created_at)::float8 "
            "FROM provider_events e "
            "JOIN provider_records r ON r.org_id = e.org_id "
            "AND r.provider_reference = e.payload -> 'data' -> 'object' ->> 'id' "
            "JOIN reconciliation_items i ON i.provider_record_id = r.id "
            "WHERE e.provider_event_id LIKE %s",
            (f"evt_{phase}%",),
        ).fetchall()
    return {event_id: (processed, created) for event_id, processed, created in rows}


def percentile_ms(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] * 1000


def describe_latencies(label: str, values: list[float]) -> str:
    return (
        f"  {label:<46} p50 {percentile_ms(values, 0.50):7.1f} ms  "
        f"p99 {percentile_ms(values, 0.99):7.1f} ms  max {percentile_ms(values, 1.0):7.1f} ms"
        f"  (n={len(values)})"
    )


def describe_timeline(accepted: list[Delivery], seen: dict[str, float], slices: int = 10) -> str:
    """The p50 of "200 -> committed" per slice of the run: flat when the worker keeps up,
    growing when the queue does."""
    if not accepted:
        return ""
    start = accepted[0].accepted_at
    width = max((accepted[-1].accepted_at - start) / slices, 1e-9)
    buckets: list[list[float]] = [[] for _ in range(slices)]
    for delivery in accepted:
        index = min(int((delivery.accepted_at - start) / width), slices - 1)
        buckets[index].append(seen[delivery.event_id] - delivery.accepted_at)
    medians = " ".join(f"{percentile_ms(bucket, 0.5):.0f}" for bucket in buckets if bucket)
    return f"  200 -> committed, p50 per {width:.1f} s of the run (ms): {medians}"


def run_paced(
    port: int, batch: list[Delivery], rate: float, account_id: str
) -> tuple[float, float, CommitWatcher]:
    watcher = CommitWatcher(account_id)
    watcher.start()
    elapsed, lag = asyncio.run(deliver_paced(port, batch, rate, watcher))
    watcher.wait_all()
    return elapsed, lag, watcher


# --- SQL per event ------------------------------------------------------------------------------


def count_statements(account_id: str, org_id: uuid.UUID, count: int, seed: int) -> bool:
    """Print the SQL statements and commits per event, counted in this process with
    SQLAlchemy's ``before_cursor_execute`` and ``commit`` events: ``count`` events processed
    one per transaction, then ``count`` others through the task's function, called once per
    event as the tasks are (each call claims up to a batch of pending events). True if both
    wrote what their data must produce."""
    from sqlalchemy import event

    from shared.ingest.processing import process_pending_events, process_provider_event
    from shared.platform.db import get_engine, unit_of_work

    maker = SaleMaker(random.Random(seed))
    alone, together = maker.sales(count, "S"), maker.sales(count, "T")
    load_payments(org_id, alone + together)
    counted: Counter[str] = Counter()
    engine = get_engine()
    event.listen(engine, "before_cursor_execute", lambda *_: counted.update(["statements"]))
    event.listen(engine, "commit", lambda *_: counted.update(["commits"]))
    good = True
    for label, sales, phase, process in (
        ("one event per transaction", alone, "S", process_provider_event),
        ("the task's batch claims", together, "T", process_pending_events),
    ):
        ids = store_events(org_id, uuid.UUID(account_id), sales, phase)
        counted.clear()
        started = time.perf_counter()
        for event_id in ids:
            with unit_of_work() as session:
                process(session=session, event_id=uuid.UUID(event_id))
        elapsed = time.perf_counter() - started
        print(
            f"  {label:<26} {counted['statements'] / count:6.2f} statements and "
            f"{counted['commits'] / count:.2f} commits per event (each commit after a BEGIN); "
            f"{elapsed * 1000 / count:.2f} ms per event in this one process"
        )
        good = check_phase(label, sales, stored(phase)) and good
    return good


# --- The run --------------------------------------------------------------------------------


def start_workers(layout: str, workdir: Path, prefetch: int | None) -> list[CeleryWorker]:
    if layout == "one-worker":
        return [CeleryWorker("bench", 2, workdir / "worker.log", prefetch)]
    return [CeleryWorker(f"bench{n}", 1, workdir / f"worker{n}.log", prefetch) for n in (1, 2)]


def run(args: argparse.Namespace, workdir: Path, children: list) -> bool:
    account_id = prepare_account()
    with connect() as connection:
        org_id = connection.execute(
            "SELECT org_id FROM provider_accounts WHERE id = %s", (account_id,)
        ).fetchone()[0]
    maker = SaleMaker(random.Random(args.seed))
    paced_count = math.ceil(args.rate * args.duration)
    warmup_count = math.ceil(args.rate * WARMUP_SECONDS)
    batch_a = maker.sales(args.events, "A")
    batch_w = maker.sales(warmup_count, "W")
    batch_p = maker.sales(paced_count, "P")
    started = time.perf_counter()
    load_payments(org_id, batch_a + batch_w + batch_p)
    print(
        f"{maker.made} payments loaded in {time.perf_counter() - started:.1f} s "
        f"(currencies {dict(Counter(sale.currency for sale in batch_a).most_common())})"
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
    with connect() as connection:
        server_version = connection.info.server_version
    if args.prefetch is not None:
        layout += f", --prefetch-multiplier {args.prefetch}"
    print(
        f"worker: {layout}, queues {QUEUES}; {os.cpu_count()} cores; "
        f"Python {sys.version.split()[0]}; PostgreSQL {server_version // 10_000}"
    )

    # Phase A: the queue is full before the worker starts.
    started = time.perf_counter()
    ids = store_events(org_id, account_id, batch_a, "A")
    queued = enqueue(ids)
    print(
        f"\nphase A: {len(ids)} events stored and {queued} tasks queued in "
        f"{time.perf_counter() - started:.1f} s; starting the worker"
    )
    meter = GroupMeter()
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
            profiler.append(Profiler(pids, Path(args.profile)))
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
    if analyzer is not None:
        print(f"  ANALYZE run by the bench so far: {dict(analyzer.runs) or 'none'}")
    good_a = check_phase("phase A", batch_a, stored("A"))
    for label, paths in profiler[0].outputs.items() if profiler else ():
        summarise_profile(label, paths, throughput.counted)

    # Phase B: webhooks over HTTP at a steady rate, the worker keeps running.
    server = Server(free_port(), 2, workdir / "server.log")
    children.append(server)
    server.wait_ready()
    meter.watch("gunicorn", [server.process.pid])
    print(
        f"\nphase B: recon serve (2 gunicorn workers) on 127.0.0.1:{server.port}; "
        f"{args.rate:g} webhooks/s for {args.duration:g} s after {WARMUP_SECONDS:g} s of warm-up"
    )
    warmup = deliveries(batch_w, "W", account_id, server.port)
    run_paced(server.port, warmup, args.rate, account_id)
    paced = deliveries(batch_p, "P", account_id, server.port)
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
    seen, processed, created = [], [], []
    for delivery in accepted:
        seen.append(watcher.seen[delivery.event_id] - delivery.accepted_at)
        if delivery.event_id in times:
            processed.append(times[delivery.event_id][0] - delivery.accepted_at)
            created.append(times[delivery.event_id][1] - delivery.accepted_at)
    print(describe_latencies("webhook sent -> 200 (HTTP)", [d.latency for d in accepted]))
    print(describe_latencies("200 -> committed (seen by a 5 ms poller)", seen))
    print(describe_latencies("200 -> provider_events.processed_at (task start)", processed))
    print(describe_latencies("200 -> item created_at (transaction start)", created))
    print(describe_timeline(accepted, watcher.seen))
    good_b = check_phase("phase B", batch_p, stored("P"))
    problems = sum(worker.problems() for worker in workers)
    if problems:
        print(f"  the worker logged {problems} errors: see below")
        for worker in workers:
            print(worker.tail())

    p99 = percentile_ms(seen, 0.99)
    print("\ntargets (issue 4)")
    print(
        f"  phase A throughput        {throughput.rate:8,.0f} ev/s   >= "
        f"{TARGET_EVENTS_PER_SECOND:,}    {verdict(throughput.rate >= TARGET_EVENTS_PER_SECOND)}"
    )
    print(
        f"  p99 200 -> committed      {p99:8.1f} ms     < {TARGET_P99_MS:.0f} ms   "
        f"{verdict(p99 < TARGET_P99_MS and len(accepted) == len(paced))}"
        f"   (lower bounds: processed_at {percentile_ms(processed, 0.99):.1f} ms, "
        f"created_at {percentile_ms(created, 0.99):.1f} ms)"
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
    use_own_services(DATABASE, redis_url())
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    workdir = Path(tempfile.mkdtemp(prefix="recon-bench-worker-"))
    children: list[Server | Autoanalyze | Profiler] = []  # stopped at the end, in order
    try:
        recreate_database(DATABASE)
        if held := flush_redis(redis_url()):
            print(
                f"warning: Redis database {REDIS_DATABASE} held {held} keys: if another "
                "process uses it, it will take or flush this bench's tasks"
            )
        if args.statements:
            account_id = prepare_account()
            with connect() as connection:
                org_id = connection.execute(
                    "SELECT org_id FROM provider_accounts WHERE id = %s", (account_id,)
                ).fetchone()[0]
            print(f"SQL per event, {args.statements} events each way (no Celery worker):")
            return 0 if count_statements(account_id, org_id, args.statements, args.seed) else 1
        return 0 if run(args, workdir, children) else 1
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    except Exception:
        for child in children:
            if isinstance(child, Server):
                print(f"--- {child.log_path.name}:\n{child.tail()}", file=sys.stderr)
        raise
    finally:
        for child in children:
            child.stop()
        with contextlib.suppress(Exception):
            flush_redis(redis_url())
        drop_database(DATABASE)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
