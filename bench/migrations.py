"""Migrations on a populated database: how long each takes and what it locks (issue 17).

In one run, on a fresh database ``recon_bench_migrations`` (Redis database 9, unused):

1. migrates to the newest revision and loads the period bench's data set
   (``--payments`` payments and about as many provider records, bench/period_data.py)
   and the triage bench's (``--discrepancies`` discrepancies with their action log,
   bench/triage_data.py), then VACUUM ANALYZE;
2. downgrades one revision at a time to ``--base`` and upgrades again one at a time,
   timing each step. While a step runs, another connection samples ``pg_locks`` every
   10 ms for the migration's backend (its ``application_name``) and keeps, per table or
   index and lock mode, how long the lock was seen held (table locks only: the brief
   ExclusiveLock a backend takes to extend a table's file is not one, and sampled now
   and then through a batched backfill it read as held for the whole backfill);
3. prints, per step: its seconds, the rows of the tables it locked, and each lock with
   how long it was held, marking the modes that block writers (SHARE and stronger) and
   readers (ACCESS EXCLUSIVE).

A lock shorter than the sampling interval may be missed or shown as 0.00 s: what the
figures answer is which steps hold a blocking lock for long. The database is dropped at
the end, also on Ctrl-C or an error. Run from the repository root:
``.venv/bin/python bench/migrations.py [--payments N] [--discrepancies N] [--base REV]``.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from environment import (
    clean_up,
    connect,
    database_url_named,
    redis_url,
    start_afresh,
    use_own_services,
)

DATABASE = "recon_bench_migrations"
REDIS_DATABASE = 9
APPLICATION_NAME = "recon_bench_migration"
SAMPLE_SECONDS = 0.01
# Lock modes that conflict with the ROW EXCLUSIVE lock every INSERT/UPDATE/DELETE takes.
BLOCKS_WRITES = {"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}
BLOCKS_READS = {"AccessExclusiveLock"}
HELD_LOCKS = """
SELECT c.relname, l.mode FROM pg_locks AS l
JOIN pg_class AS c ON c.oid = l.relation
JOIN pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE a.application_name = %s AND l.granted AND n.nspname = 'public'
  AND l.locktype = 'relation'
"""


@dataclass
class LockSampler:
    """Samples the migration backend's relation locks on its own connection."""

    seen: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with connect(autocommit=True) as connection:
            while not self._stop.is_set():
                now = time.perf_counter()
                for relation, mode in connection.execute(HELD_LOCKS, (APPLICATION_NAME,)):
                    first_last = self.seen.setdefault((relation, mode), [now, now])
                    first_last[1] = now
                time.sleep(SAMPLE_SECONDS)

    def stop(self) -> None:
        self._stop.set()

    def held(self) -> list[tuple[str, str, float]]:
        """(relation, mode, seconds seen held), the longest first."""
        spans = [(rel, mode, last - first) for (rel, mode), (first, last) in self.seen.items()]
        return sorted(spans, key=lambda span: -span[2])


def step(direction: str, revision: str, url: str) -> tuple[float, LockSampler]:
    """Run one migration step with the sampler watching; its seconds and the sampler."""
    from shared.platform import migrations

    sampler = LockSampler()
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    began = time.perf_counter()
    try:
        getattr(migrations, direction)(revision, database_url=url)
    finally:
        seconds = time.perf_counter() - began
        sampler.stop()
        thread.join()
    return seconds, sampler


def revisions_above(base: str) -> list[tuple[str, str]]:
    """(revision, its parent) from ``base``'s child up to the head, oldest first."""
    from alembic.script import ScriptDirectory

    from shared.platform.migrations import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config())
    chain = []
    for script in scripts.walk_revisions(base=base, head="heads"):
        if script.revision != base:
            chain.append((script.revision, script.down_revision))
    return list(reversed(chain))


def table_rows() -> dict[str, int]:
    """Estimated rows of each table (statistics are fresh: the load ends with ANALYZE)."""
    with connect() as connection:
        rows = connection.execute(
            "SELECT c.relname, c.reltuples::bigint FROM pg_class AS c "
            "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r'"
        )
        return dict(rows.fetchall())


def describe(direction: str, revision: str, seconds: float, sampler: LockSampler, rows) -> None:
    """One step's line and its locks on tables with rows (the others are empty or tiny)."""
    print(f"  {direction:<9} {revision:<6} {seconds:7.2f} s")
    for relation, mode, held in sampler.held():
        if relation not in rows or rows[relation] < 1_000:
            continue
        blocks = (
            "reads+writes" if mode in BLOCKS_READS else "writes" if mode in BLOCKS_WRITES else ""
        )
        print(
            f"      {relation:<32} {rows[relation]:>10,} rows  {mode:<25} {held:6.2f} s  {blocks}"
        )


def load(payments: int, discrepancies: int, seed: int) -> None:
    """Migrate and load both benches' data sets."""
    import period_data
    import triage_data
    from period_run import prepare_organization

    org_id = prepare_organization()
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    began = time.perf_counter()
    period_data.load(org_id, day, payments, seed, 0.05)
    orgs = triage_data.prepare_organizations(3)
    triage_data.load(orgs, discrepancies, seed, datetime.now(UTC))
    print(f"  loaded in {time.perf_counter() - began:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--discrepancies", type=int, default=1_000_000)
    parser.add_argument("--base", default="0011", help="downgrade to this revision and back")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    redis = redis_url(REDIS_DATABASE)
    use_own_services(DATABASE, redis)
    start_afresh(DATABASE, REDIS_DATABASE)
    url = f"{database_url_named(DATABASE)}?application_name={APPLICATION_NAME}"
    try:
        print(f"loading {args.payments:,} payments and {args.discrepancies:,} discrepancies")
        load(args.payments, args.discrepancies, args.seed)
        rows = table_rows()
        print("  " + ", ".join(f"{name} {count:,}" for name, count in sorted(rows.items())
                               if count >= 1_000))  # fmt: skip
        chain = revisions_above(args.base)
        print(f"downgrading to {args.base}, then upgrading, one revision at a time")
        for revision, parent in reversed(chain):
            seconds, sampler = step("downgrade", parent, url)
            describe("downgrade", revision, seconds, sampler, rows)
        for revision, _ in chain:
            seconds, sampler = step("upgrade", revision, url)
            describe("upgrade", revision, seconds, sampler, rows)
    finally:
        clean_up(DATABASE, redis)


if __name__ == "__main__":
    main()
