"""Migration 0020 (the discrepancies' provider) on a populated table, with writers running.

What it does, in one run:

1. creates a fresh database ``recon_bench_provider_migration``, migrates it, and loads N
   discrepancies (default 1,000,000) with their payments, records, items, runs and log as
   ``bench/console.py`` does (``triage_data.load``: COPY, then VACUUM ANALYZE);
2. takes the schema down to 0019, 0020's parent (the column, its check and function go; the list
   indexes are rebuilt without it), then VACUUM ANALYZE;
3. upgrades to 0020 while a writer updates random discrepancies, one short transaction
   every 20 ms (an assignee set and cleared, as triage does), and prints the migration's
   time, the writer's slowest write and how many took over 1 s: a long lock would show
   there;
4. prints the providers the backfill wrote and the list indexes' sizes, then drops the
   database.

Run from the repository root: ``.venv/bin/python bench/provider_migration.py [--discrepancies N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from datetime import UTC, datetime

from environment import clean_up, connect, redis_url, start_afresh, use_own_services
from figures import percentile_ms
from triage_data import load, prepare_organizations

DATABASE = "recon_bench_provider_migration"
REDIS_DATABASE = 11
WRITE_EVERY_SECONDS = 0.02
SLOW_WRITE_SECONDS = 1.0
TOUCH = (
    "UPDATE reconciliation_discrepancies SET assignee = coalesce(assignee, 'bench'), "
    "version = version WHERE id = %s"
)


class Writer(threading.Thread):
    """Updates random discrepancies, one autocommitted statement at a time, and keeps each
    statement's time, until stopped."""

    def __init__(self, ids: list) -> None:
        super().__init__(daemon=True)
        self.ids = ids
        self.times: list[float] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with connect(autocommit=True) as connection:
            index = 0
            while not self.stopping.is_set():
                began = time.perf_counter()
                connection.execute(TOUCH, (self.ids[index % len(self.ids)],))
                self.times.append(time.perf_counter() - began)
                index += 1
                time.sleep(WRITE_EVERY_SECONDS)


def migrate(revision: str, *, down: bool = False) -> float:
    """Seconds to take the bench database to ``revision``."""
    from shared.platform import migrations

    began = time.perf_counter()
    move = migrations.downgrade if down else migrations.upgrade
    move(revision, database_url=os.environ["DATABASE_URL"])
    return time.perf_counter() - began


def run(args: argparse.Namespace) -> None:
    orgs = prepare_organizations(args.orgs)
    began = time.perf_counter()
    rows = load(orgs, args.discrepancies, args.seed, datetime.now(UTC))
    print(f"loaded {rows['reconciliation_discrepancies']:,} discrepancies in "
          f"{time.perf_counter() - began:.0f} s (COPY + VACUUM ANALYZE)")  # fmt: skip
    print(f"downgrade to 0019: {migrate('0019', down=True):.1f} s")
    with connect(autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE reconciliation_discrepancies")
        ids = [row[0] for row in connection.execute(
            "SELECT id FROM reconciliation_discrepancies ORDER BY random() LIMIT 10000"
        )]  # fmt: skip
    writer = Writer(ids)
    writer.start()
    time.sleep(2)  # the writer's pace before the migration, for comparison
    before = len(writer.times)
    seconds = migrate("0020")
    time.sleep(1)
    writer.stopping.set()
    writer.join()
    during = writer.times[before:]
    slow = sum(1 for took in during if took > SLOW_WRITE_SECONDS)
    print(
        f"upgrade to 0020: {seconds:.1f} s for {rows['reconciliation_discrepancies']:,} rows; "
        f"the writer meanwhile: {len(during):,} writes, p50 {percentile_ms(during, 0.5):.1f} ms, "
        f"p99 {percentile_ms(during, 0.99):.1f} ms, slowest {max(during) * 1000:.0f} ms, "
        f"over {SLOW_WRITE_SECONDS:.0f} s: {slow}"
    )
    with connect() as connection:
        providers = connection.execute(
            "SELECT coalesce(provider, 'none'), count(*) FROM reconciliation_discrepancies "
            "GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
        sizes = connection.execute(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
            "WHERE indrelid = 'reconciliation_discrepancies'::regclass "
            "AND indexrelid::regclass::text LIKE '%list_by%' ORDER BY 1"
        ).fetchall()
    print("providers: " + ", ".join(f"{name} {count:,}" for name, count in providers))
    print("list indexes: " + ", ".join(f"{name} {size / 2**20:.0f} MB" for name, size in sizes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--discrepancies", type=int, default=1_000_000)
    parser.add_argument("--orgs", type=int, default=10, help="organisations")
    parser.add_argument("--seed", type=int, default=20, help="seed of the generated data")
    args = parser.parse_args(argv)
    if args.discrepancies < args.orgs or args.orgs < 1:
        parser.error("--orgs must be positive and --discrepancies at least --orgs")
    use_own_services(DATABASE, redis_url(REDIS_DATABASE))
    try:
        start_afresh(DATABASE, REDIS_DATABASE)
        run(args)
        return 0
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        clean_up(DATABASE, redis_url(REDIS_DATABASE))


if __name__ == "__main__":
    sys.exit(main())
