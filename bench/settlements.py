"""Importing and matching a generated Adyen Settlement details report (issue 18).

In one run, on a fresh database ``recon_bench_settlements`` (Redis database 12):

1. generates ``--lines`` settled rows in the Adyen layout (six currencies, fees in three
   components, one payout per currency) and, alongside, the internal payment each row
   settles (its merchant reference is the payment's external id, same amount);
2. loads the payments (COPY), ANALYZE: settlement reports arrive days after the payments;
3. **COPY floor**: a bare ``COPY … FROM STDIN (FORMAT csv, HEADER)`` of the same CSV into a
   table of the same 25 text columns;
4. **import**: ``import_settlement_file`` of the file in one unit of work, as the API
   and the CLI run it (each line inserted with its links), printing the resident memory
   at each quarter; target: import ≤ 3 × the COPY, peak resident memory < 300 MB (run
   ``--lines 4000000`` too: it must stay flat);
5. **join floor**: a bare join of the period's lines to their payments by merchant
   reference, its pairs written to a temporary table (the leg stores its links too);
6. **settlement leg**: ``reconcile_settlement_period`` over the day, as the period run calls
   it (linking, the four finding types, writing), best of two; target ≤ 3 × the join floor.

The import's time is also split: reading the file alone (the parser, no database).

The database is dropped at the end. Figures: bench/README.md.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from environment import clean_up, connect, redis_url, start_afresh, use_own_services
from figures import verdict
from settlement_parse import HEADER, resident_mb
from settlement_parse import generate as write_report

DATABASE = "recon_bench_settlements"
REDIS_DATABASE = 12
TARGET_IMPORT_RATIO = 3.0
TARGET_PEAK_RSS_MB = 300.0
TARGET_LEG_RATIO = 3.0
# Every row is created on 2026-05-05 and booked that evening (UTC): the period is that day.
DAY_START = datetime(2026, 5, 5, tzinfo=UTC)
DAY_END = datetime(2026, 5, 6, tzinfo=UTC)
PAID_AT = "2026-05-05 09:00:00+00"
PAYMENT_COLUMNS = "org_id, external_id, provider, amount_minor, currency, status, occurred_at"


def generate(csv_path: Path, payments_path: Path, lines: int, org_id: uuid.UUID, seed: int):
    """``lines`` rows (settled rows, then one payout per currency) in the Adyen layout, and
    the COPY text of the payment each settled row settles."""
    with payments_path.open("w") as payments:

        def write_payment(number: int, gross: int, currency: str) -> None:
            payments.write(
                f"{org_id}\tORDER-{number}\tadyen\t{gross}\t{currency}\tsucceeded\t{PAID_AT}\n"
            )

        write_report(csv_path, lines, seed, on_settled=write_payment)


def prepare_organization() -> uuid.UUID:
    """Migrate the bench database and add its organisation (UTC)."""
    import os

    from shared.access.organizations import create_organization
    from shared.platform import migrations
    from shared.platform.db import unit_of_work

    migrations.upgrade(database_url=os.environ["DATABASE_URL"])
    with unit_of_work() as session:
        return create_organization(session=session, name="Bench Settlements", timezone="UTC").id


def copy_floor(csv_path: Path) -> float:
    """Seconds a bare COPY of the CSV into a table of its columns takes."""
    columns = ", ".join(f'"{name}" text' for name in HEADER)
    with connect(autocommit=True) as connection:
        connection.execute(f"CREATE TABLE bare_lines ({columns})")
        began = time.perf_counter()
        with (
            connection.cursor().copy(
                "COPY bare_lines FROM STDIN (FORMAT csv, HEADER true)"
            ) as copy,
            csv_path.open("rb") as file,
        ):
            while chunk := file.read(1 << 20):
                copy.write(chunk)
        took = time.perf_counter() - began
        connection.execute("DROP TABLE bare_lines")
    return took


def import_file(csv_path: Path, org_id: uuid.UUID, lines: int) -> float:
    """Seconds the import of the file takes, printing the resident memory each quarter."""
    from shared.access.settings_log import OPERATOR
    from shared.platform.db import unit_of_work
    from shared.settlements.imports import import_settlement_file

    size, quarter = csv_path.stat().st_size, [1]

    def progress(read: int) -> None:
        if read >= size * quarter[0] / 4:
            print(f"  {quarter[0] * 25:>3} % of the file  resident {resident_mb():6.1f} MB")
            quarter[0] += 1

    began = time.perf_counter()
    with unit_of_work() as session, csv_path.open("rb") as binary:
        imported = import_settlement_file(
            session=session, org_id=org_id, binary=binary, filename=csv_path.name,
            imported_by=OPERATOR, on_progress=progress,
        )  # fmt: skip
        summary = imported.file.summary
    took = time.perf_counter() - began
    print(f"imported {summary['lines']:,} lines and {summary['payouts']} payouts of {lines:,}")
    return took


def load_payments(payments_path: Path) -> None:
    """The payments, by COPY, then ANALYZE."""
    with connect(autocommit=True) as connection:
        with (
            connection.cursor().copy(f"COPY payments ({PAYMENT_COLUMNS}) FROM STDIN") as copy,
            payments_path.open("rb") as file,
        ):
            while chunk := file.read(1 << 20):
                copy.write(chunk)
        connection.execute("ANALYZE payments")


def join_floor(org_id: uuid.UUID) -> tuple[float, int]:
    """Best of two timings of the bare join of the day's lines to their payments, its
    pairs written to a temporary table; and how many pairs it found."""
    sql = (
        "CREATE TEMPORARY TABLE pairs AS SELECT l.id AS line_id, p.id AS payment_id "
        "FROM settlement_lines AS l JOIN payments AS p "
        "ON p.org_id = l.org_id AND p.external_id = l.merchant_reference "
        "WHERE l.org_id = %(org)s AND l.booked_at >= %(start)s AND l.booked_at < %(end)s"
    )
    best, pairs = float("inf"), 0
    with connect(autocommit=True) as connection:
        connection.execute("ANALYZE settlement_lines, settlement_payouts")
    for _ in range(2):
        with connect() as connection:
            began = time.perf_counter()
            connection.execute(sql, {"org": org_id, "start": DAY_START, "end": DAY_END})
            best = min(best, time.perf_counter() - began)
            pairs = connection.execute("SELECT count(*) FROM pairs").fetchone()[0]
            connection.rollback()
    return best, pairs


def parse_only(csv_path: Path) -> float:
    """Seconds reading the file as the import does takes, without the database."""
    from shared.settlements.layouts import read_settlement_report

    began = time.perf_counter()
    with csv_path.open("rb") as binary:
        for _ in read_settlement_report(binary).rows:
            pass
    return time.perf_counter() - began


def settlement_leg(org_id: uuid.UUID) -> tuple[float, object]:
    """Best of two timings of the period run's settlement leg over the day (it is
    idempotent: the second finds the same), and its result."""
    from shared.access.organizations import get_organization
    from shared.matching.engine import match_settings
    from shared.platform.db import unit_of_work
    from shared.settlements.matching import reconcile_settlement_period

    best, result = float("inf"), None
    for _ in range(2):
        with unit_of_work() as session:
            org = get_organization(session=session, org_id=org_id)
            settings = match_settings(session=session, org_id=org_id)
            began = time.perf_counter()
            result = reconcile_settlement_period(
                session=session, org=org, run_id=uuid.uuid4(), start=DAY_START, end=DAY_END,
                settings=settings, now=datetime(2026, 5, 6, 6, tzinfo=UTC),
            )  # fmt: skip
            best = min(best, time.perf_counter() - began)
    return best, result


def main() -> None:
    """Generate, COPY, import, load payments, join, run the leg; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=18)
    arguments = parser.parse_args()
    use_own_services(DATABASE, redis_url(REDIS_DATABASE), log_level="WARNING")
    start_afresh(DATABASE, REDIS_DATABASE)
    try:
        org_id = prepare_organization()
        with tempfile.TemporaryDirectory() as folder:
            csv_path, payments_path = Path(folder) / "sdr.csv", Path(folder) / "payments.tsv"
            began = time.perf_counter()
            generate(csv_path, payments_path, arguments.lines, org_id, arguments.seed)
            size = csv_path.stat().st_size / 1e6
            print(f"generated {arguments.lines:,} lines ({size:.0f} MB) in "
                  f"{time.perf_counter() - began:.1f} s")  # fmt: skip
            load_payments(payments_path)
            copy_seconds = copy_floor(csv_path)
            print(f"COPY floor: {copy_seconds:.2f} s")
            import_seconds = import_file(csv_path, org_id, arguments.lines)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
            parse_seconds = parse_only(csv_path)
        ratio = import_seconds / copy_seconds
        print(f"import: {import_seconds:.2f} s = {ratio:.2f} x the COPY "
              f"(target <= {TARGET_IMPORT_RATIO:.0f}) {verdict(ratio <= TARGET_IMPORT_RATIO)}; "
              f"reading the file alone (no database): {parse_seconds:.2f} s = "
              f"{parse_seconds / copy_seconds:.2f} x the COPY")  # fmt: skip
        print(f"peak resident memory: {peak:.1f} MB (target < {TARGET_PEAK_RSS_MB:.0f}) "
              f"{verdict(peak < TARGET_PEAK_RSS_MB)}")  # fmt: skip
        join_seconds, pairs = join_floor(org_id)
        print(f"join floor: {join_seconds:.2f} s ({pairs:,} line-payment pairs)")
        leg_seconds, result = settlement_leg(org_id)
        leg_ratio = leg_seconds / join_seconds
        print(f"settlement leg: {leg_seconds:.2f} s = {leg_ratio:.2f} x the join "
              f"(target <= {TARGET_LEG_RATIO:.0f}) {verdict(leg_ratio <= TARGET_LEG_RATIO)}; "
              f"{result.lines:,} lines, {result.payouts} payouts, found {result.found}, "
              f"opened {result.opened}")  # fmt: skip
    finally:
        clean_up(DATABASE, redis_url(REDIS_DATABASE))


if __name__ == "__main__":
    main()
