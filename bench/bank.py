"""Bank statement import: a camt.053 of ``--entries`` entries stored, against a bare COPY
of the same values, and peak memory at a quarter and at the full size (issue 19).

Creates the database ``recon_bench_bank`` (dropped first) and uses Redis database 13
(flushed; the import queues its payout matching there). For each size it writes a
balanced camt.053.001.08 statement (``bank_parse.write_statement``), imports it in a
fresh child process through ``shared.bank.imports.import_statement_file`` in one unit of
work, as the API and the CLI do (parse, stage, store the statement, move the entries,
commit), and reports the time and the child's peak RSS, and the time another child takes
only to read the file (``bank_parse``: the XML parsing the import cannot avoid). The
baseline is the same rows —
the values the import wrote, read back as COPY text before timing — written by one
``COPY … FROM STDIN`` into a table of the same columns with no index or constraint.

    .venv/bin/python bench/bank.py                    # 1,000,000 entries (and 250,000)
    .venv/bin/python bench/bank.py --entries 100000   # while developing
    .venv/bin/python bench/bank.py --entries 4000000  # 4M (and 1M): memory at scale
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bank_parse import measure as parse_in_a_child
from bank_parse import write_statement
from environment import clean_up, connect, redis_url, start_afresh, use_own_services

DATABASE = "recon_bench_bank"
REDIS_DATABASE = 13
TARGET_RATIO = 4.0
COPY_BLOCK = 1 << 20
# The columns the import writes per entry, in the order the baseline COPYs them.
COLUMNS = (
    "org_id, account_id, bank_statement_id, booking_date, value_date, amount_minor, currency, "
    "counterparty_name, counterparty_account, remittance_text, bank_reference, end_to_end_id, "
    "transaction_codes, reversal, entry_digest, occurrence"
)
BARE_TABLE = """
CREATE TABLE bench_bare_entries (
    org_id uuid, account_id uuid, bank_statement_id uuid, booking_date date, value_date date,
    amount_minor bigint, currency text, counterparty_name text, counterparty_account text,
    remittance_text text, bank_reference text, end_to_end_id text, transaction_codes jsonb,
    reversal boolean, entry_digest bytea, occurrence integer
)
"""


def new_organization() -> uuid.UUID:
    """An organisation of its own for one import (its account and entries are new)."""
    from shared.access.organizations import create_organization
    from shared.platform.db import dispose_engine, unit_of_work

    with unit_of_work() as session:
        org_id = create_organization(session=session, name=f"Bench Bank {uuid.uuid4().hex[:6]}").id
    dispose_engine()
    return org_id


def import_in_this_process(path: Path, org_id: uuid.UUID) -> dict[str, float]:
    """Import ``path`` for ``org_id`` in one unit of work; this process's figures."""
    from shared.bank.imports import import_statement_file
    from shared.platform.db import unit_of_work

    started = time.perf_counter()
    with unit_of_work() as session, path.open("rb") as binary:
        imported = import_statement_file(
            session=session, org_id=org_id, binary=binary, filename=path.name
        )
        added = sum(statement.entries_added for statement in imported.statements)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"entries": added, "seconds": seconds, "peak_kib": peak_kib}


def import_in_a_child(path: Path, org_id: uuid.UUID) -> dict[str, float]:
    """The figures of a fresh child process importing ``path``."""
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(path), "--org", str(org_id)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def bare_copy_seconds(org_id: uuid.UUID, folder: Path) -> tuple[float, int]:
    """Time one COPY of the organisation's imported rows (read back as COPY text first)
    into a table without indexes; (seconds, rows)."""
    text = folder / "entries.copy"
    with connect(autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS bench_bare_entries")
        connection.execute(BARE_TABLE)
        with connection.cursor() as cursor, text.open("wb") as out:
            query = f"COPY (SELECT {COLUMNS} FROM bank_entries WHERE org_id = %s) TO STDOUT"
            with cursor.copy(query, (org_id,)) as copy:
                for block in copy:
                    out.write(block)
        connection.execute("CHECKPOINT")
        started = time.perf_counter()
        with (
            connection.transaction(),
            connection.cursor() as cursor,
            cursor.copy(f"COPY bench_bare_entries ({COLUMNS}) FROM STDIN") as copy,
            text.open("rb") as source,
        ):
            while block := source.read(COPY_BLOCK):
                copy.write(block)
        seconds = time.perf_counter() - started
        rows = connection.execute("SELECT count(*) FROM bench_bare_entries").fetchone()[0]
        connection.execute("DROP TABLE bench_bare_entries")
    text.unlink()
    return seconds, rows


def measure(size: int, folder: Path) -> dict[str, float]:
    """Write, import and baseline one statement of ``size`` entries."""
    path = folder / f"camt053-{size}.xml"
    write_statement(path, size)
    megabytes = path.stat().st_size / 1e6
    org_id = new_organization()
    with connect(autocommit=True) as connection:
        connection.execute("CHECKPOINT")
    figures = import_in_a_child(path, org_id)
    figures["parse_seconds"] = parse_in_a_child(path)["seconds"]
    path.unlink()
    figures["copy_seconds"], copied = bare_copy_seconds(org_id, folder)
    assert copied == figures["entries"] == size, (copied, figures["entries"], size)
    ratio = figures["seconds"] / figures["copy_seconds"]
    print(
        f"{size:>9,} entries  {megabytes:7.1f} MB  import {figures['seconds']:7.2f} s "
        f"({size / figures['seconds']:>7,.0f}/s)  bare COPY {figures['copy_seconds']:6.2f} s  "
        f"ratio {ratio:5.2f} ({'PASS' if ratio <= TARGET_RATIO else 'FAIL'} ≤ {TARGET_RATIO:g})  "
        f"of which parsing alone {figures['parse_seconds']:6.2f} s  "
        f"peak RSS {figures['peak_kib'] / 1024:6.1f} MiB",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--org", type=uuid.UUID, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(import_in_this_process(arguments.child, arguments.org)))
        return
    use_own_services(DATABASE, redis_url(REDIS_DATABASE), log_level="WARNING")
    start_afresh(DATABASE, REDIS_DATABASE)
    try:
        from shared.platform import migrations

        migrations.upgrade(database_url=os.environ["DATABASE_URL"])
        sizes = (arguments.entries // 4, arguments.entries)
        with tempfile.TemporaryDirectory(prefix="recon-bank-import-") as folder:
            figures = {size: measure(size, Path(folder)) for size in sizes}
        small, large = (figures[size]["peak_kib"] for size in sizes)
        print(f"peak RSS at {sizes[1]:,} / at {sizes[0]:,} entries: {large / small:.2f}")
    finally:
        clean_up(DATABASE, redis_url(REDIS_DATABASE))


if __name__ == "__main__":
    main()
