"""Period run bench: one organisation's day reconciled in full, against a SQL floor and pandas.

What it does, in one run:

1. creates a fresh database ``recon_bench_period`` on the machine's PostgreSQL, migrates it,
   adds one organisation (time zone UTC, grace period 0 so that every seeded case is
   certain whatever the hour) and empties Redis database 13;
2. generates N internal payments and about N provider records for YESTERDAY (UTC) —
   Stripe (``pi_…``) and Adyen (16-digit pspReference), EUR/USD/GBP/CHF/JPY/KWD, many
   customers, succeeded/refunded/partially refunded/failed/canceled; 70 % of the payments
   know their provider reference, the rest match by merchant reference (= external id),
   1 % by the heuristic only — and seeds about 2 % of rows spread evenly over the seven
   discrepancy types; both tables are loaded with COPY (two connections, one stream each),
   in the shape the incremental path leaves them before the daily run: each record bound
   to its payment, except ``--unbound-share`` of them (default 5 %; 1 binds nothing, the
   worst case) that the run has to bind itself; then VACUUM ANALYZE;
3. times (a) the SQL floor: a bare ``count(*)`` over a FULL OUTER JOIN of payments and
   provider records on the provider reference, and one on the merchant reference (best
   of two each; the floor is their sum, since the run binds by both), and (b) an analyst's
   pandas script in a child process: both tables COPY'd to CSV and read with
   ``read_csv``, merged on provider reference, then merchant reference, then the
   heuristic among the unmatched, flagging the seven types — load + merge timed together;
4. times the full run — ``trigger_run`` + ``execute_run`` in one ``unit_of_work`` — in a
   child process of its own, whose peak RSS (``VmHWM``) is the run's, not the
   generator's, and the time of each of its SQL statements (SQLAlchemy's cursor events);
   with ``--profile DIR`` that child runs under ``py-spy`` and the bench prints where its
   wall time went; then a re-run of the same period with nothing changed, the same way;
5. prints rows, seconds, ratios (run ÷ floor, re-run ÷ floor, pandas ÷ run), peak RSS,
   the item rows each run wrote against the seeded exceptions, the discrepancies the runs
   reported by type against the seeded ones (and pandas' counts), and issue 17's targets
   with PASS/FAIL;
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
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from environment import (
    REPO_ROOT,
    clean_up,
    connect,
    redis_url,
    start_afresh,
    use_own_services,
)
from figures import verdict
from period_children import child_main
from period_data import TYPES, Seeded, load
from py_spy_profiles import py_spy_record, summarise_by_project_function

DATABASE = "recon_bench_period"
REDIS_DATABASE = 13

TARGET_FLOOR_RATIO = 3.0
TARGET_PANDAS_RATIO = 3.0  # pandas ÷ run: at least three times faster than the analyst
TARGET_RERUN_RATIO = 2.0  # a re-run with nothing changed ÷ floor
ITEM_ROWS_SLACK = 10  # item rows a run may write beyond the seeded exceptions
TARGET_PEAK_RSS_MB = 400.0
TARGET_SCALE_GROWTH = 0.20
# Of the records the incremental path would have matched before the daily run, the share
# that arrives unbound (its events not yet processed): the run binds these itself.
UNBOUND_SHARE = 0.05
FLOOR_JOINS = {
    "provider reference": "r.provider_reference = p.provider_reference",
    "merchant reference": "r.merchant_reference = p.external_id",
}
PROFILE_HZ = 100
BREAKDOWN_SHARE = 0.01  # statements under this share of the run are summed as the rest


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


def child(mode: str, org_id: uuid.UUID, day: date, workdir: Path, profile: Path | None = None):
    """Run ``mode`` (``run`` or ``pandas``) in a fresh interpreter; return its JSON result."""
    out = workdir / f"{mode}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode,
               "--org", str(org_id), "--day", day.isoformat(), "--out", str(out)]  # fmt: skip
    if profile is not None:
        command = py_spy_record(profile, PROFILE_HZ, "--", *command)
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


@dataclass
class Measured:
    payments: int
    seeded: Seeded
    load_seconds: float
    floor: dict
    pandas: dict | None
    run: dict
    rerun: dict
    report: dict
    rerun_report: dict
    opened: Counter
    items: Counter
    items_written: int  # by the first run
    rerun_items_written: int
    rerun_opened: int


def measure(count: int, args: argparse.Namespace, workdir: Path) -> Measured:
    day = datetime.now(UTC).date() - timedelta(days=1)
    start_afresh(DATABASE, REDIS_DATABASE)
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
    if profile is not None and profile.exists():
        print(f"  profile of the run ({profile}):")
        print("\n".join(summarise_by_project_function(profile, PROFILE_HZ)))
    with connect() as connection:
        report = run_report(connection, run["run_id"])
        opened = Counter(dict(connection.execute(
            "SELECT type, count(*) FROM reconciliation_discrepancies GROUP BY type"
        ).fetchall()))  # fmt: skip
        items = Counter(dict(connection.execute(
            "SELECT coalesce(match_method, outcome), count(*) FROM reconciliation_items "
            "GROUP BY 1"
        ).fetchall()))  # fmt: skip
    rerun = child("run", org_id, day, workdir)
    print(f"  re-run, nothing changed                    {rerun['seconds']:7.2f} s  "
          f"(peak RSS {rerun['peak_rss_kb'] / 1024:.0f} MB)")  # fmt: skip
    print("\n".join(time_breakdown(rerun)))
    with connect() as connection:
        rerun_report = run_report(connection, rerun["run_id"])
        written = dict(connection.execute(
            "SELECT run_id::text, count(*) FROM reconciliation_items "
            "WHERE run_id = ANY(%s::uuid[]) GROUP BY 1", ([run["run_id"], rerun["run_id"]],),
        ).fetchall())  # fmt: skip
        rerun_opened = connection.execute(
            "SELECT discrepancies_opened FROM reconciliation_runs WHERE id = %s",
            (rerun["run_id"],),
        ).fetchone()[0]
    return Measured(
        count, seeded, load_seconds, floor, pandas_result, run, rerun, report, rerun_report,
        opened, items, written.get(run["run_id"], 0), written.get(rerun["run_id"], 0),
        rerun_opened,
    )  # fmt: skip


def run_report(connection, run_id: str) -> dict:
    """The stored JSON report of a run."""
    return connection.execute(
        "SELECT report_json FROM reconciliation_runs WHERE id = %s", (run_id,)
    ).fetchone()[0]


def print_outcome(measured: Measured) -> bool:
    """The figures and the targets of one size; True when every target passed."""
    run_seconds = measured.run["seconds"]
    rerun_seconds = measured.rerun["seconds"]
    floor = sum(seconds for seconds, _ in measured.floor.values())
    reference_only = measured.floor["provider reference"][0]
    peak_mb = max(measured.run["peak_rss_kb"], measured.rerun["peak_rss_kb"]) / 1024
    found = measured.report["discrepancies_by_type"]
    seeded = measured.seeded.by_type
    pandas_found = measured.pandas["by_type"] if measured.pandas else {}
    exceptions = sum(seeded.values())  # each seeded case is one verdict that is not clean
    print("\n  discrepancies by type      seeded     run  opened  re-run  pandas")
    same = measured.rerun_report["discrepancies_by_type"] == found
    for kind in TYPES:
        agree = found.get(kind, 0) == seeded.get(kind, 0) and (
            not measured.pandas or pandas_found.get(kind) == seeded.get(kind, 0)
        )
        same &= agree
        print(f"    {kind:<24}{seeded.get(kind, 0):7d} {found.get(kind, 0):7d} "
              f"{measured.opened.get(kind, 0):7d} "
              f"{measured.rerun_report['discrepancies_by_type'].get(kind, 0):7d} "
              f"{pandas_found.get(kind, '-'):>7}{'' if agree else '   <- differs'}")  # fmt: skip
    print(
        f"  items by match method / outcome: {dict(sorted(measured.items.items()))}; "
        f"seeded clean pairs by method: {dict(sorted(measured.seeded.by_method.items()))}"
    )
    print(f"  matched {measured.report['matched_percent']} % of verdicts; matched set "
          f"{measured.report['matched_set']}")  # fmt: skip
    print(
        f"\n  rows                  {measured.payments:>10,} payments, "
        f"{measured.seeded.records:,} records"
    )
    print(f"  run                   {run_seconds:10.2f} s")
    print(f"  re-run, no change     {rerun_seconds:10.2f} s  (opened {measured.rerun_opened})")
    print(
        f"  SQL floor             {floor:10.2f} s  (provider ref {reference_only:.2f} s "
        f"+ merchant ref {floor - reference_only:.2f} s)"
    )
    if measured.pandas:
        print(f"  pandas                {measured.pandas['seconds']:10.2f} s")
    print(
        f"  run / floor           {run_seconds / floor:10.2f} x  "
        f"({run_seconds / reference_only:.1f} x the provider-reference join alone)"
    )
    print(f"  re-run / floor        {rerun_seconds / floor:10.2f} x")
    if measured.pandas:
        print(f"  pandas / run          {measured.pandas['seconds'] / run_seconds:10.2f} x")
    print(f"  peak RSS (run, re-run){peak_mb:10.0f} MB")
    print(f"  item rows written     {measured.items_written:10,}  (re-run "
          f"{measured.rerun_items_written:,}; exceptions seeded {exceptions:,})")  # fmt: skip
    checks = [
        (f"run <= {TARGET_FLOOR_RATIO:g} x floor", run_seconds <= TARGET_FLOOR_RATIO * floor),
        (f"re-run <= {TARGET_RERUN_RATIO:g} x floor",
         rerun_seconds <= TARGET_RERUN_RATIO * floor),
        (f"peak RSS < {TARGET_PEAK_RSS_MB:.0f} MB", peak_mb < TARGET_PEAK_RSS_MB),
        (f"item rows <= exceptions + {ITEM_ROWS_SLACK}",
         max(measured.items_written, measured.rerun_items_written)
         <= exceptions + ITEM_ROWS_SLACK),
        ("re-run opens nothing", measured.rerun_opened == 0),
        ("discrepancies as seeded" + (", pandas agreeing" if measured.pandas else ""), same),
    ]  # fmt: skip
    if measured.pandas:
        pandas_ok = measured.pandas["seconds"] >= TARGET_PANDAS_RATIO * run_seconds
        checks.insert(1, (f"pandas >= {TARGET_PANDAS_RATIO:g} x run", pandas_ok))
    for name, ok in checks:
        print(f"  target {name:<50}{verdict(ok)}")
    return all(ok for _, ok in checks)


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
    use_own_services(DATABASE, redis_url(REDIS_DATABASE), log_level="WARNING")
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
            clean_up(DATABASE, redis_url(REDIS_DATABASE))


if __name__ == "__main__":
    sys.exit(main())
