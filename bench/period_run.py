"""Period run bench: one organisation's day reconciled in full, against a SQL floor and pandas.

What it does, in one run:

1. creates a fresh database ``recon_bench_period`` on the machine's PostgreSQL, migrates it,
   adds one organisation (time zone UTC, grace period 0 so that every seeded case is
   certain whatever the hour) and empties Redis database 13;
2. generates N internal payments and about N provider records for YESTERDAY (UTC) —
   Stripe (``pi_…``) and Adyen (16-digit pspReference), EUR/USD/GBP/CHF/JPY/KWD, many
   customers, succeeded/refunded/partially refunded/failed/canceled; 70 % of the payments
   know their provider reference, the rest match by merchant reference (= external id),
   1 % by the heuristic only — and seeds about 2 % of rows spread evenly over the six
   discrepancy types; both tables are loaded with COPY (two connections, one stream each),
   in the shape the incremental path leaves them before the daily run: each record bound
   to its payment, except ``--unbound-share`` of them (default 5 %; 1 binds nothing, the
   worst case) that the run has to bind itself; then VACUUM ANALYZE;
3. times (a) the SQL floor: a bare ``count(*)`` over a FULL OUTER JOIN of payments and
   provider records on the provider reference, and one on the merchant reference (best
   of two each; the floor is their sum, since the run binds by both), and (b) an analyst's
   pandas script in a child process: both tables COPY'd to CSV and read with
   ``read_csv``, merged on provider reference, then merchant reference, then the
   heuristic among the unmatched, flagging the six types — load + merge timed together;
4. times the full run — ``trigger_run`` + ``execute_run`` in one ``unit_of_work`` — in a
   child process of its own, whose peak RSS (``VmHWM``) is the run's, not the
   generator's, and the time of each of its SQL statements (SQLAlchemy's cursor events);
   with ``--profile DIR`` that child runs under ``py-spy`` and the bench prints where its
   wall time went;
5. prints rows, seconds, ratios, peak RSS, the discrepancies the run reported by type
   against the seeded ones (and pandas' counts), and the issue's targets with PASS/FAIL;
6. drops the database and empties Redis database 13 at the end, also on Ctrl-C or an error.

``--scale`` does all of it at N and then at 4N (a fresh database each) and compares the
two peaks (target: at most +20 %).

Run from the repository root: ``.venv/bin/python bench/period_run.py [--payments N]``.
pandas must be installed in the virtualenv (``.venv/bin/pip install pandas``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
# Run as a script, this file's directory would come first on sys.path, and bench/worker.py
# would shadow the project's ``worker`` package (which shared.platform.dispatch imports).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != BENCH_DIR]
sys.path.insert(0, str(REPO_ROOT))

from bench.ingest import (  # noqa: E402 - needs the sys.path above
    REDIS_BASE_URL,
    database_url_named,
    drop_database,
    flush_redis,
    recreate_database,
    verdict,
)
from shared.platform.ids import new_id  # noqa: E402

DATABASE = "recon_bench_period"
REDIS_DATABASE = 13

TARGET_FLOOR_RATIO = 3.0
TARGET_PEAK_RSS_MB = 400.0
TARGET_SCALE_GROWTH = 0.20

TYPES = (
    "MissingInternalRecord",
    "MissingProviderRecord",
    "AmountMismatch",
    "CurrencyMismatch",
    "StatusMismatch",
    "DuplicateChargeSuspected",
)
DISCREPANCY_SHARE = 0.02  # of the payments, spread evenly over TYPES
HEURISTIC_SHARE = 0.01  # of the clean rows: no reference on either side
PROVIDER_REFERENCE_SHARE = 0.70  # of the payments: the rest only know their external id
ADYEN_SHARE = 0.25
# (code, weight, smallest and largest amount in minor units, step): JPY has no minor unit,
# KWD three decimals.
CURRENCIES = (
    ("EUR", 35, 100, 500_000, 1),
    ("USD", 30, 100, 500_000, 1),
    ("GBP", 15, 100, 300_000, 1),
    ("CHF", 5, 100, 300_000, 1),
    ("JPY", 10, 100, 500_000, 1),
    ("KWD", 5, 1_000, 1_500_000, 10),
)
# Clean rows' statuses (payment and record agree): (status, weight).
STATUSES = (
    ("succeeded", 85),
    ("refunded", 4),
    ("partially_refunded", 3),
    ("failed", 6),
    ("canceled", 2),
)
CHUNK = 20_000
DAY_SECONDS = 86_400
EDGE_SECONDS = 300  # seeded cases stay this far from midnight: they belong to the day
PAYMENT_COLUMNS = (
    "id, org_id, external_id, provider, provider_reference, amount_minor, currency, status, "
    "amount_refunded_minor, customer_ref, occurred_at, created_at, updated_at"
)
RECORD_COLUMNS = (
    "id, org_id, provider, provider_reference, merchant_reference, amount_minor, currency, status, "
    "amount_refunded_minor, customer_ref, occurred_at, last_event_at, payment_status, status_at, "
    "refunds, reported_refunded_minor, created_at, updated_at, payment_id, match_method, "
    "matched_at"
)
# Of the records the incremental path would have matched before the daily run, the share
# that arrives unbound (its events not yet processed): the run binds these itself.
UNBOUND_SHARE = 0.05
FLOOR_JOINS = {
    "provider reference": "r.provider_reference = p.provider_reference",
    "merchant reference": "r.merchant_reference = p.external_id",
}
PROFILE_HZ = 100
STATEMENT_WORDS = 90  # a statement's first characters name it in the run's breakdown
BREAKDOWN_SHARE = 0.01  # statements under this share of the run are summed as the rest


# --- Environment: database, Redis -----------------------------------------------------------


def redis_url() -> str:
    return urlsplit(REDIS_BASE_URL)._replace(path=f"/{REDIS_DATABASE}").geturl()


def database_url() -> str:
    return database_url_named(DATABASE)


def prepare_organization() -> uuid.UUID:
    """Migrate the bench database and add its organisation (UTC, grace period 0)."""
    from shared.access.organizations import create_organization
    from shared.platform import migrations
    from shared.platform.db import dispose_engine, unit_of_work

    migrations.upgrade(database_url=os.environ["DATABASE_URL"])
    with unit_of_work() as session:
        organization = create_organization(session=session, name="Bench Period Ltd", timezone="UTC")
        organization.grace_period_seconds = 0
        org_id = organization.id
    dispose_engine()
    return org_id


def connect(**options):
    import psycopg

    return psycopg.connect(os.environ["DATABASE_URL"], **options)


# --- Data -----------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What the generator made: rows written and discrepancies planted, by type."""

    payments: int = 0
    records: int = 0
    heuristic_pairs: int = 0
    by_method: Counter = field(default_factory=Counter)
    by_type: Counter = field(default_factory=Counter)


def _copy_text(value) -> str:
    return "\\N" if value is None else str(value)


class Generator:
    """Payments and provider records of one day, as COPY text lines, ``CHUNK`` at a time."""

    def __init__(
        self, org_id: uuid.UUID, day: date, count: int, seed: int, unbound_share: float
    ) -> None:
        self.org = str(org_id)
        self.unbound_share = unbound_share
        self.start = datetime.combine(day, datetime.min.time(), UTC)
        self.count = count
        self.random = random.Random(seed)
        self.seeded = Seeded()
        self.customers = max(count // 4, 10)
        self.codes = [c[0] for c in CURRENCIES]
        self.ranges = {c[0]: c[2:] for c in CURRENCIES}
        self.weights = [c[1] for c in CURRENCIES]
        self.statuses = [s[0] for s in STATUSES]
        self.status_weights = [s[1] for s in STATUSES]
        self.unique_amount = 0  # rows left unbound get distinct amounts: no heuristic pairs
        self.tag = f"{seed % 100:02d}"

    # Small pieces -------------------------------------------------------------------

    def _time(self, seconds: float) -> str:
        return (self.start + timedelta(seconds=seconds)).isoformat()

    def _id(self, seconds: float) -> uuid.UUID:
        """The id the service gives a row it creates at that moment (time-ordered)."""
        return new_id(self.start + timedelta(seconds=seconds))

    def _amount(self, currency: str) -> int:
        low, high, step = self.ranges[currency]
        return self.random.randrange(low, high, step)

    def _distinct_amount(self, currency: str) -> int:
        self.unique_amount += 1
        low, _, step = self.ranges[currency]
        return low + 7 * step * self.unique_amount

    def _reference(self, provider: str, number: int, variant: int = 0) -> str:
        if provider == "stripe":
            return f"pi_3P{self.tag}{variant}{number:010d}{self.random.getrandbits(40):010x}"
        return f"{88 + variant:02d}{number:014d}"

    def _payment(self, ext, provider, reference, amount, currency, status, refunded, customer, at):
        """The payment's COPY line, and its id."""
        self.seeded.payments += 1
        created = self._time(at + 2)
        payment_id = str(self._id(at + 2))
        line = "\t".join(
            (payment_id, self.org, ext, provider, _copy_text(reference), str(amount), currency,
             status, str(refunded), customer, self._time(at), created, created)
        )  # fmt: skip
        return line, payment_id

    def _record(self, provider, reference, merchant, amount, currency, status, refunded,
                customer, at, payment_id=None, method=None):  # fmt: skip
        """The record's COPY line; bound to ``payment_id`` as the incremental path would
        have bound it, unless it is one of the ``unbound_share`` still unprocessed."""
        self.seeded.records += 1
        occurred = self._time(at)
        settled = self._time(at + 3600) if refunded else occurred
        base = "succeeded" if status in ("refunded", "partially_refunded") else status
        if payment_id is not None and self.random.random() < self.unbound_share:
            payment_id = method = None
        matched = None if payment_id is None else self._time(at + 2)
        return "\t".join(
            (str(self._id(at + 1)), self.org, provider, reference, _copy_text(merchant),
             str(amount), currency, status, str(refunded), customer, occurred, settled, base,
             occurred, "{}", str(refunded), self._time(at + 1), settled, _copy_text(payment_id),
             _copy_text(method), _copy_text(matched))
        )  # fmt: skip

    # Rows ---------------------------------------------------------------------------

    def rows(self, number: int) -> tuple[list[str], list[str]]:
        """The payment lines and record lines of sale ``number``."""
        rnd = self.random
        provider = "adyen" if rnd.random() < ADYEN_SHARE else "stripe"
        currency = rnd.choices(self.codes, self.weights)[0]
        customer = f"cus_{rnd.randrange(self.customers):09d}"
        ext = f"inv_{self.tag}{number:010d}"
        reference = self._reference(provider, number)
        knows_reference = rnd.random() < PROVIDER_REFERENCE_SHARE
        roll = rnd.random()
        share = DISCREPANCY_SHARE / len(TYPES)
        if roll < DISCREPANCY_SHARE:
            kind = TYPES[int(roll / share)]
            self.seeded.by_type[kind] += 1
            return self._discrepancy(
                kind, number, provider, currency, customer, ext, reference, knows_reference
            )
        at = rnd.uniform(0, DAY_SECONDS)  # clean rows may spill over midnight
        delay = rnd.uniform(0.5, 90)
        status = rnd.choices(self.statuses, self.status_weights)[0]
        if rnd.random() < HEURISTIC_SHARE:
            amount = self._distinct_amount(currency)
            self.seeded.heuristic_pairs += 1
            self.seeded.by_method["heuristic"] += 1
            payment, payment_id = self._payment(ext, provider, None, amount, currency, status,
                                                0, customer, at)  # fmt: skip
            return (
                [payment],
                [self._record(provider, reference, None, amount, currency, status, 0, customer,
                              at + delay, payment_id, "heuristic")],
            )  # fmt: skip
        amount = self._amount(currency)
        refunded = {"refunded": amount, "partially_refunded": amount // 3}.get(status, 0)
        method = "provider_reference" if knows_reference else "merchant_reference"
        self.seeded.by_method[method] += 1
        known = reference if knows_reference else None
        payment, payment_id = self._payment(ext, provider, known, amount, currency, status,
                                            refunded, customer, at)  # fmt: skip
        return (
            [payment],
            [self._record(provider, reference, ext, amount, currency, status, refunded,
                          customer, at + delay, payment_id, method)],
        )  # fmt: skip

    def _discrepancy(self, kind, number, provider, currency, customer, ext, reference, knows):
        rnd = self.random
        at = rnd.uniform(EDGE_SECONDS, DAY_SECONDS - EDGE_SECONDS)
        delay = rnd.uniform(0.5, 90)
        known = reference if knows else None
        if kind == "MissingInternalRecord":  # the provider charged; billing knows nothing
            amount = self._distinct_amount(currency)
            merchant = f"ord_lost_{self.tag}{number:010d}" if rnd.random() < 0.5 else None
            return [], [self._record(provider, reference, merchant, amount, currency,
                                     "succeeded", 0, customer, at)]  # fmt: skip
        if kind == "MissingProviderRecord":  # billing says paid; the provider never told
            amount = self._distinct_amount(currency)
            payment, _ = self._payment(ext, provider, known, amount, currency, "succeeded", 0,
                                       customer, at)  # fmt: skip
            return [payment], []
        amount = self._amount(currency)
        payment_status, record_status = "succeeded", "succeeded"
        record_amount, record_currency = amount, currency
        if kind == "AmountMismatch":
            low, _, step = self.ranges[currency]
            record_amount = amount + rnd.choice((-1, 1)) * step * rnd.randrange(1, 500)
            if record_amount < low:
                record_amount = amount + step * rnd.randrange(1, 500)
        elif kind == "CurrencyMismatch":
            record_currency = rnd.choice([c for c in self.codes if c != currency])
        elif kind == "StatusMismatch":
            payment_status, record_status = rnd.choice(
                (("failed", "succeeded"), ("succeeded", "failed"), ("canceled", "succeeded"))
            )
        payment, payment_id = self._payment(ext, provider, known, amount, currency,
                                            payment_status, 0, customer, at)  # fmt: skip
        method = "provider_reference" if knows else "merchant_reference"
        records = [self._record(provider, reference, ext, record_amount, record_currency,
                                record_status, 0, customer, at + delay, payment_id,
                                method)]  # fmt: skip
        if kind == "DuplicateChargeSuspected":  # charged twice for one invoice
            second = self._reference(provider, number, variant=1)
            records.append(self._record(provider, second, ext, amount, currency, "succeeded", 0,
                                        customer, at + delay + rnd.uniform(5, 120), payment_id,
                                        "merchant_reference"))  # fmt: skip
        return [payment], records

    def chunks(self):
        """(payment lines, record lines), ``CHUNK`` sales at a time."""
        for first in range(0, self.count, CHUNK):
            payments: list[str] = []
            records: list[str] = []
            for number in range(first, min(first + CHUNK, self.count)):
                made_payments, made_records = self.rows(number)
                payments += made_payments
                records += made_records
            yield payments, records


def load(org_id: uuid.UUID, day: date, count: int, seed: int, unbound_share: float) -> Seeded:
    """Generate and COPY both tables at once (one connection per table), then VACUUM ANALYZE.

    The records stream names payments the other stream has not committed yet, so it skips
    the foreign-key triggers (``session_replication_role = replica``, as ``pg_restore
    --disable-triggers``; the bench's admin URL is a superuser's): the ids are consistent
    by construction.
    """
    generator = Generator(org_id, day, count, seed, unbound_share)
    payments_copy = f"COPY payments ({PAYMENT_COLUMNS}) FROM STDIN"
    records_copy = f"COPY provider_records ({RECORD_COLUMNS}) FROM STDIN"
    with (
        connect() as payments_db,
        connect(options="-c session_replication_role=replica") as records_db,
        payments_db.cursor().copy(payments_copy) as to_payments,
        records_db.cursor().copy(records_copy) as to_records,
    ):
        for payments, records in generator.chunks():
            if payments:
                to_payments.write("\n".join(payments) + "\n")
            if records:
                to_records.write("\n".join(records) + "\n")
    with connect(autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE payments")
        connection.execute("VACUUM ANALYZE provider_records")
    return generator.seeded


# --- The floor: bare SQL joins -------------------------------------------------------------


def floor_seconds(org_id: uuid.UUID) -> dict[str, tuple[float, int]]:
    """Best of two timings of each FULL OUTER JOIN count, with the count it gave."""
    timings = {}
    with connect(autocommit=True) as connection:
        for name, condition in FLOOR_JOINS.items():
            sql = (
                "SELECT count(*) FROM payments p FULL OUTER JOIN provider_records r "
                f"ON r.org_id = p.org_id AND r.provider = p.provider AND {condition}"
            )
            best, rows = float("inf"), 0
            for _ in range(2):
                began = time.perf_counter()
                rows = connection.execute(sql).fetchone()[0]
                best = min(best, time.perf_counter() - began)
            timings[name] = (best, rows)
    return timings


# --- Child processes: the run, and the pandas script ----------------------------------------


def child(mode: str, org_id: uuid.UUID, day: date, workdir: Path, profile: Path | None = None):
    """Run ``mode`` (``run`` or ``pandas``) in a fresh interpreter; return its JSON result."""
    out = workdir / f"{mode}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode,
               "--org", str(org_id), "--day", day.isoformat(), "--out", str(out)]  # fmt: skip
    if profile is not None:
        py_spy = Path(sys.executable).with_name("py-spy")
        command = [str(py_spy), "record", "--idle", "--rate", str(PROFILE_HZ), "--format", "raw",
                   "--output", str(profile), "--", *command]  # fmt: skip
    log = workdir / f"{mode}.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=os.environ.copy(),
                                   stdout=log_file, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            code = process.wait()
        except BaseException:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            if process.poll() is None:
                process.kill()
            raise
    if code != 0 or not out.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"the {mode} child exited {code}:\n{tail}")
    return json.loads(out.read_text())


def _memory_kb(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in kB.

    Not ``ru_maxrss``: Linux keeps it across ``execve``, so a child started by this bench
    would report the bench's own peak (the generator's) whenever it is the larger.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return 0


def _time_statements(engine) -> Counter:
    """Wall time of each SQL statement the engine runs, summed by its first words.

    COPY (written through the driver) and fetches from server-side cursors are not
    statements here: their time is in what the caller does not find in this Counter.
    """
    from sqlalchemy import event

    spent: Counter = Counter()

    @event.listens_for(engine, "before_cursor_execute")
    def started(conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def finished(conn, cursor, statement, parameters, context, executemany):
        words = " ".join(statement.split())
        spent[words[:STATEMENT_WORDS]] += time.perf_counter() - conn.info["bench_started"]

    return spent


def child_run(org_id: uuid.UUID, day: date) -> dict:
    """The full run, as the worker task would do it; its wall time and this process's peak."""
    from shared.platform.db import get_engine, unit_of_work
    from shared.runs.lifecycle import execute_run, trigger_run

    with get_engine().connect():  # connected and imported before the clock starts
        pass
    statements = _time_statements(get_engine())
    baseline = _memory_kb("VmRSS")
    began = time.perf_counter()
    with unit_of_work() as session:
        triggered = trigger_run(session=session, org_id=org_id, period_start=day,
                                period_end=day, triggered_by="cli")  # fmt: skip
        status = execute_run(session=session, run_id=triggered.run.id, now=datetime.now(UTC))
        run_id = triggered.run.id
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "status": status,
        "run_id": str(run_id),
        "baseline_rss_kb": baseline,
        "peak_rss_kb": _memory_kb("VmHWM"),
        "statements": statements.most_common(),
    }


def _read_table(connection, sql: str, dtypes: dict, dates: list[str]):
    import io

    import pandas as pd

    buffer = io.BytesIO()
    with connection.cursor().copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
        for data in copy:
            buffer.write(data)
    buffer.seek(0)
    frame = pd.read_csv(buffer, dtype=dtypes)
    for column in dates:
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def child_pandas(org_id: uuid.UUID, day: date) -> dict:
    """What an analyst would write: load both tables, merge, flag; timed load + merge."""
    import pandas as pd

    settled = ["succeeded", "refunded", "partially_refunded"]
    charged = ["succeeded", "partially_refunded"]
    window = pd.Timedelta(minutes=15)
    start = pd.Timestamp(day, tz="UTC")
    end = start + pd.Timedelta(days=1)
    text = {"external_id": str, "provider": str, "provider_reference": str, "currency": str,
            "status": str, "merchant_reference": str, "customer_ref": str}  # fmt: skip
    began = time.perf_counter()
    with connect() as connection:
        payments = _read_table(
            connection,
            "SELECT id, external_id, provider, provider_reference, amount_minor, currency, "
            f"status, amount_refunded_minor, occurred_at FROM payments WHERE org_id = '{org_id}'",
            text, ["occurred_at"],
        )  # fmt: skip
        records = _read_table(
            connection,
            "SELECT id, provider, provider_reference, merchant_reference, amount_minor, "
            "currency, status, amount_refunded_minor, customer_ref, occurred_at "
            f"FROM provider_records WHERE org_id = '{org_id}'",
            text, ["occurred_at"],
        )  # fmt: skip
    loaded = time.perf_counter() - began
    payments = payments[(payments.occurred_at >= start) & (payments.occurred_at < end)]
    by_reference = payments.dropna(subset=["provider_reference"]).merge(
        records, on=["provider", "provider_reference"], suffixes=("_p", "_r")
    )
    by_reference["method"] = 0
    left = records[~records.id.isin(by_reference.id_r)].dropna(subset=["merchant_reference"])
    by_merchant = payments.merge(
        left, left_on=["provider", "external_id"], right_on=["provider", "merchant_reference"],
        suffixes=("_p", "_r"),
    )  # fmt: skip
    by_merchant["method"] = 1
    pairs = pd.concat([by_reference, by_merchant], ignore_index=True)
    # The heuristic: same provider, currency and amount within the window, one on each side.
    lone_p = payments[~payments.id.isin(pairs.id_p)]
    lone_r = records[~records.id.isin(pairs.id_r)]
    near = lone_p.merge(lone_r, on=["provider", "currency", "amount_minor"], suffixes=("_p", "_r"))
    near = near[(near.occurred_at_p - near.occurred_at_r).abs() <= window]
    near = near[
        (near.groupby("id_p").id_r.transform("size") == 1)
        & (near.groupby("id_r").id_p.transform("size") == 1)
    ]
    near = near.assign(currency_p=near.currency, currency_r=near.currency,
                       amount_minor_p=near.amount_minor, amount_minor_r=near.amount_minor,
                       method=2)  # fmt: skip
    pairs = pd.concat([pairs, near], ignore_index=True)
    pairs = pairs.sort_values(["id_p", "method", "occurred_at_r", "id_r"])
    primary = pairs.drop_duplicates("id_p")
    further = pairs[pairs.duplicated("id_p") & pairs.status_r.isin(charged)]
    currency = primary.currency_p != primary.currency_r
    amount = ~currency & (
        (primary.amount_minor_p != primary.amount_minor_r)
        | (primary.amount_refunded_minor_p != primary.amount_refunded_minor_r)
    )
    status = (primary.status_p != primary.status_r) & ~(
        primary.status_p.eq("pending") | primary.status_r.eq("pending")
    )
    unmatched_r = records[
        ~records.id.isin(pairs.id_r)
        & records.status.isin(settled)
        & (records.occurred_at >= start)
        & (records.occurred_at < end)
    ]
    unmatched_p = payments[~payments.id.isin(pairs.id_p) & payments.status.isin(settled)]
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "load_seconds": loaded,
        "peak_rss_kb": _memory_kb("VmHWM"),
        "by_type": {
            "MissingInternalRecord": len(unmatched_r),
            "MissingProviderRecord": len(unmatched_p),
            "AmountMismatch": int(amount.sum()),
            "CurrencyMismatch": int(currency.sum()),
            "StatusMismatch": int(status.sum()),
            "DuplicateChargeSuspected": len(further),
        },
        "note": "no same-customer duplicate rule",
    }


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=("run", "pandas"), required=True)
    parser.add_argument("--org", type=uuid.UUID, required=True)
    parser.add_argument("--day", type=date.fromisoformat, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    work = child_run if args.child == "run" else child_pandas
    args.out.write_text(json.dumps(work(args.org, args.day)))
    return 0


# --- Profile --------------------------------------------------------------------------------


def _frame(frame: str) -> tuple[str, str]:
    """(function, file) of one py-spy raw frame ``function (file:line)``."""
    name, _, where = frame.rpartition(" (")
    return name, where.rstrip(")").rsplit(":", 1)[0]


def summarise_profile(path: Path, top: int = 12) -> list[str]:
    """Where the run's wall time went, by the project function nearest each sample's leaf,
    split into waiting on PostgreSQL (psycopg's ``wait``) and everything else (Python)."""
    waiting: Counter[str] = Counter()
    python: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_frame(frame) for frame in stack.split(";")]
        ours = [f"{name} ({where})" for name, where in frames if where.startswith("shared/")]
        for key in set(ours):
            inclusive[key] += samples
        owner = ours[-1] if ours else "(outside shared/)"
        leaf_name, leaf_file = frames[-1]
        if "psycopg" in leaf_file and "wait" in leaf_name:
            waiting[owner] += samples
        else:
            python[owner] += samples
    if not total:
        return ["  (no samples)"]
    lines = [
        f"  {total} samples at {PROFILE_HZ} Hz, idle included; share of the run's wall time:",
        "    inclusive  function",
    ]
    for key, samples in inclusive.most_common(top):
        lines.append(f"    {100 * samples / total:7.1f} %  {key}")
    lines.append("    by the project function nearest the leaf:   PostgreSQL  Python")
    for key in sorted(set(waiting) | set(python), key=lambda k: -(waiting[k] + python[k]))[:top]:
        lines.append(
            f"      {key[:44]:<44} {100 * waiting[key] / total:6.1f} %"
            f" {100 * python[key] / total:6.1f} %"
        )
    return lines


def time_breakdown(run: dict) -> list[str]:
    """The run's largest SQL statements and the rest, in seconds and share of the run."""
    lines, listed = [], 0.0
    for statement, seconds in run["statements"]:
        if seconds < BREAKDOWN_SHARE * run["seconds"]:
            break
        listed += seconds
        lines.append(f"    {seconds:8.2f} s {100 * seconds / run['seconds']:5.1f} %  {statement} …")
    rest = run["seconds"] - listed
    lines.append(
        f"    {rest:8.2f} s {100 * rest / run['seconds']:5.1f} %  everything else: Python, "
        "COPY, cursor fetches, smaller statements"
    )
    return lines


# --- One measurement ------------------------------------------------------------------------


@dataclass
class Measured:
    payments: int
    seeded: Seeded
    load_seconds: float
    floor: dict
    pandas: dict | None
    run: dict
    report: dict
    opened: Counter
    items: Counter


def measure(count: int, args: argparse.Namespace, workdir: Path) -> Measured:
    day = datetime.now(UTC).date() - timedelta(days=1)
    recreate_database(DATABASE)
    if held := flush_redis(redis_url()):
        print(f"  warning: Redis database {REDIS_DATABASE} held {held} keys (flushed)")
    org_id = prepare_organization()
    print(f"\n== {count:,} payments, day {day}, {args.unbound_share:.0%} of records unbound ==")
    began = time.perf_counter()
    seeded = load(org_id, day, count, args.seed, args.unbound_share)
    load_seconds = time.perf_counter() - began
    print(f"  loaded {seeded.payments:,} payments and {seeded.records:,} provider records "
          f"with COPY + VACUUM ANALYZE in {load_seconds:.1f} s")  # fmt: skip
    floor = floor_seconds(org_id)
    for name, (seconds, rows) in floor.items():
        print(f"  floor, FULL OUTER JOIN on {name:<19} {seconds:7.2f} s  ({rows:,} rows)")
    pandas_result = None
    if not args.no_pandas:
        pandas_result = child("pandas", org_id, day, workdir)
        print(f"  pandas load + merge                        {pandas_result['seconds']:7.2f} s  "
              f"(load {pandas_result['load_seconds']:.2f} s, "
              f"peak RSS {pandas_result['peak_rss_kb'] / 1024:.0f} MB)")  # fmt: skip
    profile = None
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        profile = args.profile / f"run-{count}.txt"
    run = child("run", org_id, day, workdir, profile)
    print(f"  full run (trigger_run + execute_run)       {run['seconds']:7.2f} s  "
          f"(peak RSS {run['peak_rss_kb'] / 1024:.0f} MB, "
          f"{run['baseline_rss_kb'] / 1024:.0f} MB before the run)")  # fmt: skip
    print(f"  where the run's time went (SQL statements over {100 * BREAKDOWN_SHARE:g} % of it):")
    print("\n".join(time_breakdown(run)))
    with connect() as connection:
        report = connection.execute(
            "SELECT report_json FROM reconciliation_runs WHERE id = %s", (run["run_id"],)
        ).fetchone()[0]
        opened = Counter(dict(connection.execute(
            "SELECT type, count(*) FROM reconciliation_discrepancies GROUP BY type"
        ).fetchall()))  # fmt: skip
        items = Counter(dict(connection.execute(
            "SELECT coalesce(match_method, outcome), count(*) FROM reconciliation_items "
            "GROUP BY 1"
        ).fetchall()))  # fmt: skip
    if profile is not None and profile.exists():
        print(f"  profile of the run ({profile}):")
        print("\n".join(summarise_profile(profile)))
    return Measured(count, seeded, load_seconds, floor, pandas_result, run, report, opened, items)


def print_outcome(measured: Measured) -> bool:
    """The figures and the targets of one size; True when every target passed."""
    run_seconds = measured.run["seconds"]
    floor = sum(seconds for seconds, _ in measured.floor.values())
    reference_only = measured.floor["provider reference"][0]
    peak_mb = measured.run["peak_rss_kb"] / 1024
    found = measured.report["discrepancies_by_type"]
    seeded = measured.seeded.by_type
    pandas_found = measured.pandas["by_type"] if measured.pandas else {}
    print("\n  discrepancies by type      seeded     run  opened  pandas")
    same = True
    for kind in TYPES:
        agree = found.get(kind, 0) == seeded.get(kind, 0)
        same &= agree
        print(f"    {kind:<24}{seeded.get(kind, 0):7d} {found.get(kind, 0):7d} "
              f"{measured.opened.get(kind, 0):7d} {pandas_found.get(kind, '-'):>7}"
              f"{'' if agree else '   <- differs'}")  # fmt: skip
    print(
        f"  items by match method / outcome: {dict(sorted(measured.items.items()))}; "
        f"seeded clean pairs by method: {dict(sorted(measured.seeded.by_method.items()))}"
    )
    print(f"  matched {measured.report['matched_percent']} % of items")
    print(
        f"\n  rows                  {measured.payments:>10,} payments, "
        f"{measured.seeded.records:,} records"
    )
    print(f"  run                   {run_seconds:10.2f} s")
    print(
        f"  SQL floor             {floor:10.2f} s  (provider ref {reference_only:.2f} s "
        f"+ merchant ref {floor - reference_only:.2f} s)"
    )
    if measured.pandas:
        print(f"  pandas                {measured.pandas['seconds']:10.2f} s")
    print(
        f"  run / floor           {run_seconds / floor:10.1f} x  "
        f"({run_seconds / reference_only:.1f} x the provider-reference join alone)"
    )
    print(f"  peak RSS of the run   {peak_mb:10.0f} MB")
    ok = True
    ratio_ok = run_seconds <= TARGET_FLOOR_RATIO * floor
    print(f"  target run <= {TARGET_FLOOR_RATIO:g} x floor        {verdict(ratio_ok)}")
    ok &= ratio_ok
    if measured.pandas:
        pandas_ok = run_seconds < measured.pandas["seconds"]
        print(f"  target run faster than pandas  {verdict(pandas_ok)}")
        ok &= pandas_ok
    rss_ok = peak_mb < TARGET_PEAK_RSS_MB
    print(f"  target peak RSS < {TARGET_PEAK_RSS_MB:.0f} MB      {verdict(rss_ok)}")
    print(f"  discrepancies as seeded        {verdict(same)}")
    return ok and rss_ok and same


# --- Main -----------------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=1_000_000, help="payments of the day")
    parser.add_argument("--scale", action="store_true", help="run N, then 4N, compare peak RSS")
    parser.add_argument("--seed", type=int, default=5, help="seed of the generated data")
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas comparison")
    parser.add_argument("--profile", type=Path, help="record the run with py-spy into DIR")
    parser.add_argument(
        "--unbound-share",
        type=float,
        default=UNBOUND_SHARE,
        help="share of the matchable records that arrive unbound (1: the run binds them all)",
    )
    args = parser.parse_args(argv)
    if args.payments < 100:
        parser.error("--payments must be at least 100")
    if not 0 <= args.unbound_share <= 1:
        parser.error("--unbound-share must be between 0 and 1")
    return args


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--child" in argv:
        return child_main(argv)
    args = parse_arguments(argv)
    if not args.no_pandas:
        try:
            import pandas  # noqa: F401
        except ImportError:
            print("pandas is not installed: .venv/bin/pip install pandas (or --no-pandas)")
            return 2
    # Before anything imports shared.platform.settings: this process and its children use the
    # bench's own database and Redis database, never the development ones.
    os.environ["DATABASE_URL"] = database_url()
    os.environ["REDIS_URL"] = redis_url()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    sizes = [args.payments, 4 * args.payments] if args.scale else [args.payments]
    results: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="recon-bench-period-") as workdir:
        try:
            passed = True
            for count in sizes:
                measured = measure(count, args, Path(workdir))
                results.append(measured)
                passed = print_outcome(measured) and passed
            if args.scale:
                small, large = (r.run["peak_rss_kb"] for r in results)
                growth = large / small - 1
                scale_ok = growth <= TARGET_SCALE_GROWTH
                print(
                    f"\n  peak RSS {small / 1024:.0f} MB at {sizes[0]:,} -> "
                    f"{large / 1024:.0f} MB at {sizes[1]:,}: {100 * growth:+.1f} %"
                )
                print(f"  target peak RSS at 4x <= +{100 * TARGET_SCALE_GROWTH:.0f} %   "
                      f"{verdict(scale_ok)}")  # fmt: skip
                passed = passed and scale_ok
            return 0 if passed else 1
        except KeyboardInterrupt:
            print("interrupted; cleaning up", file=sys.stderr)
            return 130
        finally:
            with contextlib.suppress(Exception):
                flush_redis(redis_url())
            drop_database(DATABASE)


if __name__ == "__main__":
    sys.exit(main())
