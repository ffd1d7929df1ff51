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
   (``bench/replay.lua``) when it is installed, else the asyncio client below;
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
import contextlib
import gc
import json
import math
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

DATABASE = "recon_bench_ingest"
ADMIN_DATABASE_URL = os.environ.get(
    "BENCH_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
REDIS_DATABASE = 14
WEBHOOK_QUEUE = "webhooks"
STRIPE_SECRET = "whsec_bench_5f1c2a9e7d4b8c3a6e0f1d2c3b4a5968"  # noqa: S105 - bench-only

TARGET_RATIO = 0.50
TARGET_EVENTS_PER_SECOND = 1_500
TARGET_PACED_P99_MS = 50.0
WARMUP_REQUESTS = 500
REPLAY_SCRIPT = Path(__file__).resolve().with_name("replay.lua")
# PostgreSQL's own processes: their work (WAL writing, checkpoints) is the bench's too.
POSTGRES_SERVER_PROCESSES = ("checkpointer", "background writer", "walwriter", "autovacuum")


# --- Environment: database, Redis, server -------------------------------------------------


def database_url_named(name: str) -> str:
    """The admin URL with its database replaced by ``name``."""
    return urlsplit(ADMIN_DATABASE_URL)._replace(path=f"/{name}").geturl()


def redis_url() -> str:
    return urlsplit(REDIS_BASE_URL)._replace(path=f"/{REDIS_DATABASE}").geturl()


def recreate_database(name: str = DATABASE) -> None:
    """Drop (ending its sessions) and create the bench database ``name``."""
    import psycopg

    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str = DATABASE) -> None:
    """Drop the bench database ``name``."""
    import psycopg

    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_redis(url: str | None = None) -> int:
    """Empty the bench's Redis database; return how many keys it held."""
    import redis

    client = redis.Redis.from_url(url or redis_url(), socket_timeout=5)
    try:
        held = int(client.dbsize())
        client.flushdb()
        return held
    finally:
        client.close()


def queued_tasks() -> int:
    import redis

    client = redis.Redis.from_url(redis_url(), socket_timeout=5)
    try:
        return int(client.llen(WEBHOOK_QUEUE))
    finally:
        client.close()


def prepare_account() -> str:
    """Migrate the bench database, add an organisation and its Stripe account; return its id.

    ``DATABASE_URL`` and ``REDIS_URL`` are set before ``shared`` is first imported, so the
    service's own settings, engine and domain functions are the ones used.
    """
    from shared.access.organizations import create_organization
    from shared.platform import migrations
    from shared.platform.db import get_engine, unit_of_work
    from shared.providers.accounts import add_provider_account

    migrations.upgrade(database_url=os.environ["DATABASE_URL"])
    with unit_of_work() as session:
        organization = create_organization(session=session, name="Bench Ltd")
        account = add_provider_account(
            session=session,
            org_id=organization.id,
            provider="stripe",
            secret=STRIPE_SECRET,
            name="bench",
        )
    get_engine().dispose()
    return str(account.id)


def stored_events() -> Counter[str]:
    """Rows in provider_events by phase (the letter after ``evt_``)."""
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"]) as connection:
        rows = connection.execute(
            "SELECT substr(provider_event_id, 5, 1), count(*) FROM provider_events GROUP BY 1"
        ).fetchall()
    return Counter(dict(rows))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``recon serve`` as a child process; its output goes to a log file.

    ``worker_class`` (gevent, sync, gthread) overrides ``recon serve``'s default.
    """

    def __init__(
        self, port: int, workers: int, log_path: Path, worker_class: str | None = None
    ) -> None:
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("wb")
        chosen = ["--worker-class", worker_class] if worker_class else []
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "cli", "serve",
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                *chosen,
            ],
            cwd=REPO_ROOT,
            env=os.environ.copy(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 60) -> None:
        url = f"http://127.0.0.1:{self.port}/readyz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"recon serve exited early:\n{self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{url} never answered 200:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class CpuMeter:
    """CPU seconds used by the client, the gunicorn processes, PostgreSQL and Redis.

    The client is this process and the children it has waited for (wrk). With
    ``database``, PostgreSQL counts only that database's backends and the server's own
    processes: the server may be shared with other benches and test runs.
    """

    def __init__(self, server_pid: int, database: str | None = None) -> None:
        try:
            import psutil
        except ImportError:  # psutil is a dev dependency; without it, no CPU line
            self.psutil = None
            return
        self.psutil = psutil
        self.server = psutil.Process(server_pid)
        self.database = database

    def _counts_for_bench(self, cmdline: list[str] | None) -> bool:
        title = " ".join(cmdline or [])
        if self.database is None or not title.startswith("postgres:"):
            return True  # every process, or the postmaster
        return f" {self.database} " in title or any(
            name in title for name in POSTGRES_SERVER_PROCESSES
        )

    def _seconds(self, processes: Iterator) -> float:
        total = 0.0
        for process in processes:
            with contextlib.suppress(self.psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def snapshot(self) -> dict[str, float] | None:
        if self.psutil is None:
            return None
        by_name: dict[str, list] = {"postgres": [], "redis-server": []}
        for process in self.psutil.process_iter(["name", "cmdline"]):
            name = process.info["name"] or ""
            if name == "postgres" and not self._counts_for_bench(process.info["cmdline"]):
                continue
            if name in by_name:
                by_name[name].append(process)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "client": time.process_time() + children.ru_utime + children.ru_stime,
            "gunicorn": self._seconds(iter([self.server, *self.server.children(recursive=True)])),
            "postgres": self._seconds(iter(by_name["postgres"])),
            "redis": self._seconds(iter(by_name["redis-server"])),
        }

    @staticmethod
    def describe(before: dict | None, after: dict | None, elapsed: float, requests: int) -> str:
        if before is None or after is None or elapsed <= 0 or requests <= 0:
            return ""
        busy = ", ".join(f"{name} {(after[name] - before[name]) / elapsed:.2f}" for name in before)
        per_request = ", ".join(
            f"{name} {(after[name] - before[name]) / requests * 1000:.3f}" for name in before
        )
        return f"  cores busy: {busy} (of {os.cpu_count()})\n  CPU ms per request: {per_request}"


# --- Requests -----------------------------------------------------------------------------


def _hex(length: int) -> str:
    return uuid.uuid4().hex[:length]


def stripe_event(event_id: str, created: int) -> dict:
    """A payment_intent.succeeded event with the fields Stripe really sends (API 2024-06-20)."""
    intent = f"pi_3{_hex(23)}"
    amount = random.randrange(100, 500_000)
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": {
            "object": {
                "id": intent,
                "object": "payment_intent",
                "amount": amount,
                "amount_capturable": 0,
                "amount_details": {"tip": {}},
                "amount_received": amount,
                "application": None,
                "application_fee_amount": None,
                "automatic_payment_methods": {"allow_redirects": "always", "enabled": True},
                "canceled_at": None,
                "cancellation_reason": None,
                "capture_method": "automatic_async",
                "client_secret": f"{intent}_secret_{_hex(25)}",
                "confirmation_method": "automatic",
                "created": created - 3,
                "currency": random.choice(["eur", "usd", "gbp"]),
                "customer": f"cus_{_hex(14)}",
                "description": f"Invoice INV-{random.randrange(10**6):06d}",
                "invoice": None,
                "last_payment_error": None,
                "latest_charge": f"ch_3{_hex(23)}",
                "livemode": False,
                "metadata": {"external_id": f"inv_{_hex(12)}", "order_id": str(uuid.uuid4())},
                "next_action": None,
                "on_behalf_of": None,
                "payment_method": f"pm_1{_hex(23)}",
                "payment_method_configuration_details": None,
                "payment_method_options": {
                    "card": {
                        "installments": None,
                        "mandate_options": None,
                        "network": None,
                        "request_three_d_secure": "automatic",
                    }
                },
                "payment_method_types": ["card"],
                "processing": None,
                "receipt_email": "billing@example.com",
                "review": None,
                "setup_future_usage": None,
                "shipping": None,
                "source": None,
                "statement_descriptor": None,
                "statement_descriptor_suffix": None,
                "status": "succeeded",
                "transfer_data": None,
                "transfer_group": None,
            }
        },
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": f"req_{_hex(14)}", "idempotency_key": str(uuid.uuid4())},
        "type": "payment_intent.succeeded",
    }


def stripe_requests(phase: str, count: int, account_id: str, port: int) -> list[bytes]:
    """``count`` complete HTTP requests, each a uniquely identified, freshly signed event.

    Signed with the service's own ``stripe_signature`` (the tests prove Stripe's library
    accepts it); the event id starts ``evt_<phase>`` so stored rows can be told apart.
    """
    from shared.providers.stripe import stripe_signature

    created = int(time.time())
    head = (
        f"POST /webhooks/stripe/{account_id} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
        "Accept: */*; q=0.5, application/json\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
    )
    requests = []
    for number in range(count):
        event_id = f"evt_{phase}{number:08d}{_hex(12)}"
        body = json.dumps(stripe_event(event_id, created), indent=2).encode()
        signature = stripe_signature(STRIPE_SECRET, created, body)
        requests.append(
            (
                f"{head}Stripe-Signature: t={created},v1={signature}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
    return requests


def healthz_requests(count: int, port: int) -> list[bytes]:
    request = (
        f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "User-Agent: recon-bench\r\nAccept: application/json\r\n\r\n"
    ).encode()
    return [request] * count


# --- A small asyncio HTTP/1.1 client ------------------------------------------------------


class HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 connection; answers each request's future with the status code.

    Honours ``Connection: close`` (gunicorn's sync workers close after every response),
    so a slot reconnects when needed and reuses the connection otherwise.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        length, close = 0, head.startswith(b"http/1.0")
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip() == b"close"
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        if close:
            self.closed = True
            self.transport.close()
        waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed before the response ended"))


class Slot:
    """A client connection slot: one request at a time, reconnecting when closed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection: HttpConnection | None = None

    async def send(self, raw: bytes) -> int:
        """The response status of ``raw``, or 0 on a connection error."""
        loop = asyncio.get_running_loop()
        try:
            if self.connection is None or self.connection.closed:
                _, self.connection = await loop.create_connection(
                    HttpConnection, "127.0.0.1", self.port
                )
            connection = self.connection
            connection.waiter = loop.create_future()
            connection.transport.write(raw)
            return await connection.waiter
        except OSError:
            self.close()
            return 0

    def close(self) -> None:
        if self.connection is not None and self.connection.transport is not None:
            self.connection.transport.close()
        self.connection = None


@dataclass
class Outcome:
    """What one phase measured."""

    label: str
    sent: int
    elapsed: float
    latencies: list[float]
    statuses: Counter[int]
    cpu: str = ""
    # Percentiles (fraction → ms) a client reported itself, when it gives no latency list.
    percentiles: dict[float, float] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, fraction: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        if fraction in self.percentiles:
            return self.percentiles[fraction]
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] * 1000


async def closed_loop(port: int, requests: list[bytes], concurrency: int) -> Outcome:
    """Send every request through ``concurrency`` slots, each sending its next when answered."""
    latencies = [0.0] * len(requests)
    statuses: Counter[int] = Counter()
    pending = iter(range(len(requests)))

    async def run_slot() -> None:
        slot = Slot(port)
        for index in pending:
            started = time.perf_counter()
            status = await slot.send(requests[index])
            latencies[index] = time.perf_counter() - started
            statuses[status] += 1
        slot.close()

    started = time.perf_counter()
    await asyncio.gather(*(run_slot() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Outcome("", len(requests), elapsed, latencies, statuses)


@contextlib.contextmanager
def _no_collector_pauses() -> Iterator[None]:
    """No cyclic garbage collection in this process meanwhile: a full collection over the
    bench's objects held the paced client 45-50 ms behind its schedule, time the open
    loop counts against the server (worst lag 3-7 ms without)."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


async def open_loop(port: int, requests: list[bytes], rate: float) -> tuple[Outcome, float]:
    """Send request i at start + i/rate whatever the server does; latency from that instant.

    Returns the outcome and the largest lag of a send behind its schedule (a client that
    cannot keep its schedule would show here).
    """
    loop = asyncio.get_running_loop()
    latencies = [0.0] * len(requests)
    statuses: Counter[int] = Counter()
    idle: list[Slot] = []

    async def send(index: int, scheduled: float) -> None:
        slot = idle.pop() if idle else Slot(port)
        status = await slot.send(requests[index])
        latencies[index] = loop.time() - scheduled
        statuses[status] += 1
        idle.append(slot)

    elapsed, worst_lag = await send_paced(range(len(requests)), rate, send)
    for slot in idle:
        slot.close()
    return Outcome("", len(requests), elapsed, latencies, statuses), worst_lag


async def send_paced(
    items: Iterable[Any], rate: float, send: Callable[[Any, float], Awaitable[None]]
) -> tuple[float, float]:
    """Start ``send(item, scheduled)`` for item i at start + i/rate, whatever the server
    does, and wait for all; (elapsed, largest lag of a start behind its schedule)."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task] = []
    worst_lag = 0.0
    start = loop.time() + 0.05
    with _no_collector_pauses():
        for index, item in enumerate(items):
            scheduled = start + index / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            worst_lag = max(worst_lag, loop.time() - scheduled)
            tasks.append(asyncio.create_task(send(item, scheduled)))
        await asyncio.gather(*tasks)
    return loop.time() - start, worst_lag


# --- wrk: the same closed loop, from C ----------------------------------------------------


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_replay(port: int, requests: list[bytes], concurrency: int, workdir: Path) -> Outcome:
    """Send every request once through ``concurrency`` wrk connections (one wrk thread).

    The requests are written to a file that ``bench/replay.lua`` hands out in order; the
    script ends the run when the last one is answered and reports the time from the first
    send to the last answer, the status codes and wrk's own latency percentiles.
    """
    path = workdir / "requests.bin"
    with path.open("wb") as file:
        for raw in requests:
            file.write(b"%d\n" % len(raw))
            file.write(raw)
    # --duration only bounds a run that never completes; the script stops it before.
    bound = max(120, len(requests) // 10)
    completed = subprocess.run(
        [
            "wrk", "--threads", "1", "--connections", str(concurrency),
            "--duration", f"{bound}s", "--timeout", "10s", "--script", str(REPLAY_SCRIPT),
            f"http://127.0.0.1:{port}/", "--", str(path),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    path.unlink()
    report = next(
        (line for line in completed.stdout.splitlines() if line.startswith("REPLAY ")), None
    )
    if report is None:
        raise RuntimeError(f"wrk failed:\n{completed.stdout}\n{completed.stderr}")
    figures = json.loads(report.removeprefix("REPLAY "))
    statuses = Counter({int(status): count for status, count in figures["statuses"].items()})
    unanswered = figures["requests"] - figures["answered"]
    if unanswered:
        statuses[0] += unanswered  # counted as connection errors, like the asyncio client
    # An unfinished run has no last answer: its rate is over wrk's whole --duration.
    elapsed = figures["elapsed"] if not unanswered else float(bound)
    return Outcome(
        "",
        len(requests),
        elapsed,
        [],
        statuses,
        percentiles={0.50: figures["p50_us"] / 1000, 0.99: figures["p99_us"] / 1000},
    )


def closed_loop_phase(
    client: str, port: int, requests: list[bytes], concurrency: int, workdir: Path
):
    """A closed-loop phase with ``client`` (``wrk`` or ``asyncio``), for :func:`measure`."""
    if client == "wrk":

        async def replay() -> Outcome:
            return await asyncio.to_thread(wrk_replay, port, requests, concurrency, workdir)

        return replay()
    return closed_loop(port, requests, concurrency)


# --- The run ------------------------------------------------------------------------------


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def print_outcome(outcome: Outcome, unit: str) -> None:
    errors = outcome.sent - outcome.ok
    codes = ", ".join(
        f"{status or 'connection error'}: {count}"
        for status, count in sorted(outcome.statuses.items())
    )
    print(
        f"{outcome.label:<34} {outcome.sent:>7} sent  {outcome.rate:>8,.0f} {unit}/s  "
        f"p50 {outcome.percentile_ms(0.50):6.1f} ms  p99 {outcome.percentile_ms(0.99):6.1f} ms  "
        f"non-2xx {errors}" + (f" ({codes})" if errors else "")
    )
    if outcome.cpu:
        print(outcome.cpu)


def measure(meter: CpuMeter, label: str, coroutine) -> Outcome:
    before = meter.snapshot()
    result = asyncio.run(coroutine)
    outcome, extra = result if isinstance(result, tuple) else (result, None)
    after = meter.snapshot()
    outcome.label = label
    outcome.cpu = CpuMeter.describe(before, after, outcome.elapsed, outcome.sent)
    if extra is not None:
        outcome.cpu += f"\n  worst send lag behind schedule: {extra * 1000:.1f} ms"
    return outcome


def choose_client(requested: str) -> str:
    """``wrk`` when asked for or (``auto``) installed, else ``asyncio``."""
    if requested == "wrk" and not wrk_available():
        raise SystemExit("--client wrk: wrk is not installed (apt-get install -y wrk)")
    if requested == "auto":
        return "wrk" if wrk_available() else "asyncio"
    return requested


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


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def use_own_services(database: str, redis: str) -> None:
    """Point this process and its children at the bench's own database and Redis database
    (before anything imports shared.platform.settings), and make Ctrl-C and SIGTERM end in the
    caller's cleanup (a shell may start a background job with SIGINT ignored)."""
    os.environ["DATABASE_URL"] = database_url_named(database)
    os.environ["REDIS_URL"] = redis
    os.environ.setdefault("LOG_LEVEL", "INFO")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    use_own_services(DATABASE, redis_url())
    # An overloaded server makes the open-loop run hold many connections at once.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    workdir = Path(tempfile.mkdtemp(prefix="recon-bench-"))
    server: Server | None = None
    try:
        recreate_database()
        flush_redis()
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
        with contextlib.suppress(Exception):
            flush_redis()
        drop_database()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
