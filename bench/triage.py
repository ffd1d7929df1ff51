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
5. prints p50/p99 for each (and per filtered listing), then PASS/FAIL against the issue's
   target, p99 < 50 ms for each kind of request;
6. stops the server, drops the database and empties Redis database 12, also on Ctrl-C or an
   error.

Run from the repository root: ``.venv/bin/python bench/triage.py [--discrepancies N] ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
# Run as a script, this file's directory would come first on sys.path, and bench/worker.py
# would shadow the project's ``worker`` package (which shared.platform.dispatch imports).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != BENCH_DIR]
sys.path.insert(0, str(REPO_ROOT))

from bench.ingest import (  # noqa: E402 - needs the sys.path above
    REDIS_BASE_URL,
    CpuMeter,
    Outcome,
    Server,
    closed_loop,
    drop_database,
    flush_redis,
    free_port,
    healthz_requests,
    measure,
    print_outcome,
    recreate_database,
    use_own_services,
    verdict,
)

DATABASE = "recon_bench_triage"
REDIS_DATABASE = 12  # the server's metrics land here; nothing else is written
DISCREPANCIES = "/billing/reconciliation/discrepancies"

TARGET_P99_MS = 50.0
WARMUP_REQUESTS = 300
CHUNK = 20_000
DAYS = 180
ORG_SKEW = 0.6  # organisation k holds a share proportional to 1 / (k + 1) ** ORG_SKEW
PAGES = 5  # the cursor phase follows each listing to this page
# (type, weight): missing rows and amount or status differences are the common findings.
TYPES = (
    ("MissingInternalRecord", 22),
    ("MissingProviderRecord", 26),
    ("AmountMismatch", 20),
    ("CurrencyMismatch", 4),
    ("StatusMismatch", 18),
    ("DuplicateChargeSuspected", 10),
)
CURRENCIES = (("EUR", 40), ("USD", 30), ("GBP", 14), ("CHF", 5), ("JPY", 8), ("KWD", 3))
LOW_SEVERITY_SHARE = 0.10  # the rest keep their type's severity (shared.matching.rules.SEVERITY)
RUN_SHARE = 0.70  # found by a daily period run; the rest by the incremental path
ACKNOWLEDGED_SHARE = 0.12
OLDEST_RESOLVED_SHARE = 0.36  # resolved share grows with age, from 0 to this (18 % overall)
AUTO_RESOLVED_SHARE = 0.30  # of the resolved: the system's ``auto_resolved``
ASSIGNED_SHARE = {"open": 0.10, "acknowledged": 0.70, "resolved": 0.60}
NOTE_SHARE = 0.10
ASSIGNEES = ("ana.silva", "ben.okafor", "chloe.martin", "dev.patel", "eva.novak",
             "farid.haddad", "grace.liu", "hugo.berg")  # fmt: skip
HUMAN_RESOLUTIONS = ("provider_error", "internal_error_adjusted", "timing_difference",
                     "duplicate_refunded", "false_positive", "written_off", "other")  # fmt: skip
OUTCOMES = {
    "MissingInternalRecord": "missing_internal",
    "MissingProviderRecord": "missing_provider",
}

RUN_COLUMNS = (
    "id, org_id, period_start, period_end, status, triggered_by, created_at, started_at, "
    "finished_at"
)
PAYMENT_COLUMNS = (
    "id, org_id, external_id, provider, provider_reference, amount_minor, currency, status, "
    "customer_ref, occurred_at, created_at, updated_at"
)
RECORD_COLUMNS = (
    "id, org_id, provider, provider_reference, merchant_reference, amount_minor, currency, "
    "status, customer_ref, occurred_at, last_event_at, payment_status, status_at, payment_id, "
    "match_method, matched_at, created_at, updated_at"
)
ITEM_COLUMNS = (
    "id, org_id, run_id, payment_id, provider_record_id, outcome, match_method, "
    "amount_difference_minor, created_at"
)
DISCREPANCY_COLUMNS = (
    "id, org_id, type, severity, status, payment_id, provider_record_id, run_id, item_id, "
    "amount_minor, currency, difference_minor, assignee, resolution, resolution_reason, "
    "opened_at, acknowledged_at, resolved_at, version"
)
ACTION_COLUMNS = "id, org_id, discrepancy_id, action, actor, actor_name, payload, created_at"
TABLES = (
    ("payments", PAYMENT_COLUMNS),
    ("provider_records", RECORD_COLUMNS),
    ("reconciliation_items", ITEM_COLUMNS),
    ("reconciliation_discrepancies", DISCREPANCY_COLUMNS),
    ("reconciliation_action_logs", ACTION_COLUMNS),
)


# --- Environment: database, Redis ---------------------------------------------------------


def redis_url() -> str:
    return urlsplit(REDIS_BASE_URL)._replace(path=f"/{REDIS_DATABASE}").geturl()


def connect(**options):
    import psycopg

    return psycopg.connect(os.environ["DATABASE_URL"], **options)


@dataclass
class BenchOrg:
    """One organisation of the bench: its owner key and what its listings filter on."""

    id: uuid.UUID
    slug: str
    key: str
    actor: str  # the owner key's id, the actor of the generated human actions
    share: int = 0  # discrepancies generated for it
    runs: dict[int, tuple[str, datetime]] = field(default_factory=dict)  # day → (id, start)

    @property
    def assignees(self) -> list[str]:
        return [f"{name}@{self.slug}.example" for name in ASSIGNEES]


def prepare_organizations(count: int) -> list[BenchOrg]:
    """Migrate the bench database; add ``count`` organisations, each with an owner key."""
    from shared.access.api_keys import create_api_key
    from shared.access.organizations import create_organization
    from shared.platform import migrations
    from shared.platform.db import dispose_engine, unit_of_work

    migrations.upgrade(database_url=os.environ["DATABASE_URL"])
    orgs = []
    with unit_of_work() as session:
        for number in range(count):
            organization = create_organization(session=session, name=f"Bench Triage {number}")
            issued = create_api_key(
                session=session, org_id=organization.id, role="owner", name="bench owner"
            )
            orgs.append(
                BenchOrg(
                    id=organization.id,
                    slug=f"org{number}",
                    key=issued.secret,
                    actor=str(issued.api_key.id),
                )
            )
    dispose_engine()
    return orgs


# --- Data -----------------------------------------------------------------------------------


def _text(value: object) -> str:
    """One COPY text-format field: NULL as ``\\N``; backslashes, tabs and newlines escaped."""
    if value is None:
        return "\\N"
    return (
        str(value)
        .replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def _line(*values: object) -> str:
    return "\t".join(_text(value) for value in values)


def split_by_skew(total: int, count: int) -> list[int]:
    """``total`` split over ``count`` organisations by ORG_SKEW (largest remainder)."""
    weights = [1 / (k + 1) ** ORG_SKEW for k in range(count)]
    exact = [total * weight / sum(weights) for weight in weights]
    shares = [int(value) for value in exact]
    by_remainder = sorted(range(count), key=lambda k: exact[k] - shares[k], reverse=True)
    for k in by_remainder[: total - sum(shares)]:
        shares[k] += 1
    return shares


class Generator:
    """Discrepancies with everything they reference, as COPY lines, ``CHUNK`` at a time.

    Deterministic for a seed and a start time, apart from the organisations and their keys.
    """

    def __init__(self, orgs: list[BenchOrg], total: int, seed: int, now: datetime) -> None:
        from shared.matching.rules import SEVERITY

        self.orgs = orgs
        self.severities = SEVERITY
        self.random = random.Random(seed)
        self.now = now
        self.today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        for org, share in zip(orgs, split_by_skew(total, len(orgs)), strict=True):
            org.share = share
        self.types = [name for name, _ in TYPES]
        self.type_weights = [weight for _, weight in TYPES]
        self.currencies = [code for code, _ in CURRENCIES]
        self.currency_weights = [weight for _, weight in CURRENCIES]
        self.counts: dict[str, int] = defaultdict(int)

    def _id(self) -> str:
        return str(uuid.UUID(int=self.random.getrandbits(128), version=4))

    def runs(self) -> list[str]:
        """One completed daily run per organisation and day (``day`` days ago at 02:00)."""
        lines = []
        for org in self.orgs:
            for day in range(1, DAYS + 1):
                started = self.today - timedelta(days=day) + timedelta(hours=2)
                run_id = self._id()
                org.runs[day] = (run_id, started)
                period = (started - timedelta(days=1)).date().isoformat()
                lines.append(_line(run_id, org.id, period, period, "completed", "schedule",
                                   started, started, started + timedelta(minutes=10)))  # fmt: skip
        return lines

    def _amount(self) -> int:
        return int(math.exp(self.random.uniform(math.log(100), math.log(2_000_000))))

    def discrepancy(self, org: BenchOrg, number: int, lines: dict[str, list[str]]) -> None:
        """Append the lines of one discrepancy and of everything it references."""
        rnd = self.random
        kind = rnd.choices(self.types, self.type_weights)[0]
        currency = rnd.choices(self.currencies, self.currency_weights)[0]
        amount = self._amount()
        severity = "low" if rnd.random() < LOW_SEVERITY_SHARE else self.severities[kind]
        run_id = None
        if rnd.random() < RUN_SHARE:
            day = rnd.randint(1, DAYS)
            run_id, started = org.runs[day]
            opened = started + timedelta(seconds=rnd.uniform(1, 600))
        else:
            opened = self.now - timedelta(seconds=rnd.uniform(60, DAYS * 86_400))
        age = (self.now - opened) / timedelta(days=DAYS)
        roll = rnd.random()
        if roll < OLDEST_RESOLVED_SHARE * age:
            status = "resolved"
        elif roll < OLDEST_RESOLVED_SHARE * age + ACKNOWLEDGED_SHARE:
            status = "acknowledged"
        else:
            status = "open"
        self.counts[kind] += 1
        self.counts[status] += 1

        provider = "stripe" if rnd.random() < 0.7 else "adyen"
        external_id = f"inv_{org.slug}_{number:09d}"
        reference = (
            f"pi_3B{number:012d}{rnd.getrandbits(40):010x}"
            if provider == "stripe"
            else f"{88:02d}{number:014d}"
        )
        customer = f"cus_{rnd.randrange(50_000):08d}"
        occurred = opened - timedelta(hours=rnd.uniform(2, 30))
        payment_id = record_id = difference = None
        # StatusMismatch: our side failed and the provider charged, or the reverse.
        failed_charge = kind == "StatusMismatch" and rnd.random() < 0.3
        if kind != "MissingInternalRecord":
            payment_id = self._id()
            lines["payments"].append(_line(
                payment_id, org.id, external_id, provider,
                reference if rnd.random() < 0.7 else None, amount, currency,
                "failed" if failed_charge else "succeeded", customer, occurred, occurred,
                occurred,
            ))  # fmt: skip
        if kind != "MissingProviderRecord":
            record_id = self._id()
            record_amount, record_currency, record_status = amount, currency, "succeeded"
            if kind == "AmountMismatch":
                difference = rnd.choice((-1, 1)) * rnd.randint(1, max(1, amount // 10))
                record_amount = amount + difference
            elif kind == "CurrencyMismatch":
                record_currency = rnd.choice([c for c in self.currencies if c != currency])
            elif kind == "StatusMismatch" and not failed_charge:
                record_status = "failed"
            # A suspected duplicate is a further charge, left unbound beside the matched one.
            bound = payment_id if kind != "DuplicateChargeSuspected" else None
            seen = occurred + timedelta(seconds=rnd.uniform(1, 90))
            lines["provider_records"].append(_line(
                record_id, org.id, provider, reference, external_id, record_amount,
                record_currency, record_status, customer, seen, seen, record_status, seen,
                bound, "provider_reference" if bound else None, seen if bound else None,
                seen, seen,
            ))  # fmt: skip
        item_id = self._id()
        outcome = OUTCOMES.get(kind, "mismatched")
        lines["reconciliation_items"].append(_line(
            item_id, org.id, run_id, payment_id, record_id, outcome,
            "provider_reference" if outcome == "mismatched" else None, difference, opened,
        ))  # fmt: skip

        discrepancy_id = self._id()
        actions = [(opened, "opened", "system", None, {
            "finding": {"type": kind, "amount_minor": amount, "currency": currency},
            "source": {"run_id": run_id} if run_id else {"path": "incremental"},
        })]  # fmt: skip
        assignee = acknowledged = resolved = resolution = reason = None
        if status != "open":
            acknowledged = min(opened + timedelta(hours=rnd.uniform(1, 72)), self.now)
        if status == "resolved":
            resolved = min(acknowledged + timedelta(hours=rnd.uniform(1, 240)), self.now)
            if rnd.random() < AUTO_RESOLVED_SHARE:
                acknowledged = None
                resolution, reason = "auto_resolved", "the condition no longer holds"
            else:
                resolution = rnd.choice(HUMAN_RESOLUTIONS)
                reason = f"checked against the {provider} dashboard"
        human = (org.actor, "bench owner")
        if rnd.random() < ASSIGNED_SHARE[status]:
            assignee = rnd.choice(org.assignees)
            until = acknowledged or resolved or self.now
            at = opened + (until - opened) * rnd.uniform(0.1, 0.5)
            actions.append((at, "assigned", *human, {"assignee": assignee, "previous": None}))
        if acknowledged is not None:
            actions.append((acknowledged, "acknowledged", *human, {}))
        if rnd.random() < NOTE_SHARE:
            until = resolved or self.now
            at = opened + (until - opened) * rnd.uniform(0.5, 0.9)
            actions.append((at, "note_added", *human, {"note": "asked the provider for details"}))
        if resolution == "auto_resolved":
            actions.append((resolved, "auto_resolved", "system", None, {
                "reason": "condition no longer holds", "evidence": {"run_id": run_id},
            }))  # fmt: skip
        elif resolved is not None:
            actions.append((resolved, "resolved", *human, {
                "resolution": resolution, "reason": reason, "adjustment_reference": None,
            }))  # fmt: skip
        lines["reconciliation_discrepancies"].append(_line(
            discrepancy_id, org.id, kind, severity, status, payment_id, record_id, run_id,
            item_id, amount, currency, difference, assignee, resolution, reason, opened,
            acknowledged, resolved, len(actions),
        ))  # fmt: skip
        for at, action, actor, actor_name, payload in sorted(actions, key=lambda a: a[0]):
            lines["reconciliation_action_logs"].append(_line(
                self._id(), org.id, discrepancy_id, action, actor, actor_name,
                json.dumps(payload), at,
            ))  # fmt: skip

    def chunks(self) -> Iterator[dict[str, list[str]]]:
        """The COPY lines of each table, ``CHUNK`` discrepancies at a time."""
        numbered = ((org, n) for org in self.orgs for n in range(org.share))
        while batch := list(itertools.islice(numbered, CHUNK)):
            lines: dict[str, list[str]] = {table: [] for table, _ in TABLES}
            for org, number in batch:
                self.discrepancy(org, number, lines)
            yield lines


def load(orgs: list[BenchOrg], total: int, seed: int, now: datetime) -> dict[str, int]:
    """Generate and COPY everything, one chunk per transaction, then VACUUM ANALYZE.

    Needs a superuser (the bench's admin URL): foreign-key triggers are off while loading.
    The next chunk is generated in a thread while PostgreSQL takes the current one. Returns
    the rows written per table and the discrepancies per type and status.
    """
    generator = Generator(orgs, total, seed, now)
    rows: dict[str, int] = defaultdict(int)
    with connect() as connection:
        # Foreign-key checks (triggers) are skipped for this session, as pg_restore's
        # --disable-triggers does: the generator makes every reference, and the checks
        # made the load five times slower (48 s instead of 11 s for 100,000).
        connection.execute("SET session_replication_role = replica")
        with connection.cursor().copy(
            f"COPY reconciliation_runs ({RUN_COLUMNS}) FROM STDIN"
        ) as copy:
            runs = generator.runs()
            copy.write("\n".join(runs) + "\n")
            rows["reconciliation_runs"] = len(runs)
        connection.commit()
        with ThreadPoolExecutor(max_workers=1) as pool:
            chunks = generator.chunks()
            upcoming = pool.submit(next, chunks, None)
            while (lines := upcoming.result()) is not None:
                upcoming = pool.submit(next, chunks, None)
                for table, columns in TABLES:
                    if lines[table]:
                        with connection.cursor().copy(
                            f"COPY {table} ({columns}) FROM STDIN"
                        ) as copy:
                            copy.write("\n".join(lines[table]) + "\n")
                        rows[table] += len(lines[table])
                connection.commit()
    with connect(autocommit=True) as connection:
        for table in ("reconciliation_runs", *(table for table, _ in TABLES)):
            connection.execute(f"VACUUM ANALYZE {table}")
    return {**rows, **generator.counts}


def table_sizes() -> list[tuple[str, int]]:
    """The discrepancy table's heap and each of its indexes, in bytes."""
    with connect() as connection:
        return connection.execute(
            "SELECT 'heap', pg_relation_size('reconciliation_discrepancies') UNION ALL "
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
            "WHERE indrelid = 'reconciliation_discrepancies'::regclass ORDER BY 2 DESC"
        ).fetchall()


# --- Listings and requests ------------------------------------------------------------------


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


# --- The run ------------------------------------------------------------------------------


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


def run(args: argparse.Namespace, orgs: list[BenchOrg], now: datetime, server: Server) -> bool:
    """Measure every phase; print figures and targets; True when every target passed."""
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
    n = args.requests

    baseline = measure(
        meter, "baseline GET /healthz",
        closed_loop(port, healthz_requests(n, port), args.concurrency),
    )  # fmt: skip
    print_outcome(baseline, "req")

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

    print()
    print(f"targets (issue 6): p99 < {TARGET_P99_MS:.0f} ms, every response 2xx; "
          f"baseline /healthz p50 {baseline.percentile_ms(0.5):.1f} ms, "
          f"p99 {baseline.percentile_ms(0.99):.1f} ms")  # fmt: skip
    passed = True
    for outcome in (default, filtered, cursor, detail):
        p50, p99 = outcome.percentile_ms(0.5), outcome.percentile_ms(0.99)
        ok = p99 < TARGET_P99_MS and outcome.ok == outcome.sent and outcome.sent > 0
        passed &= ok
        print(
            f"  {outcome.label:<38} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
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
    args = parser.parse_args(argv)
    if args.concurrency is None:
        args.concurrency = args.workers
    if min(args.orgs, args.requests, args.concurrency, args.workers) < 1:
        parser.error("--orgs, --requests, --concurrency and --workers must be positive")
    if args.discrepancies < args.orgs:
        parser.error("--discrepancies must be at least --orgs")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    use_own_services(DATABASE, redis_url())

    workdir = Path(tempfile.mkdtemp(prefix="recon-bench-triage-"))
    server: Server | None = None
    try:
        recreate_database(DATABASE)
        if held := flush_redis(redis_url()):
            print(f"warning: Redis database {REDIS_DATABASE} held {held} keys (flushed)")
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
        return 0 if run(args, orgs, now, server) else 1
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            server.stop()
        with contextlib.suppress(Exception):
            flush_redis(redis_url())
        drop_database(DATABASE)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
