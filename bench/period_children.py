"""The period-run bench's child processes: the full run, and an analyst's pandas script.

Each runs in a fresh interpreter (``period_run.py --child run|pandas``) so that its peak
RSS (``VmHWM``) is its own, not the data generator's.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

from environment import connect

STATEMENT_WORDS = 90  # a statement's first characters name it in the run's breakdown


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


def _load_frames(org_id: uuid.UUID):
    """Both tables of the organisation as pandas frames (COPY to CSV, ``read_csv``)."""
    text = {"external_id": str, "provider": str, "provider_reference": str, "currency": str,
            "status": str, "merchant_reference": str, "customer_ref": str,
            "dispute_status": str}  # fmt: skip
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
            "currency, status, amount_refunded_minor, customer_ref, occurred_at, dispute_status "
            f"FROM provider_records WHERE org_id = '{org_id}'",
            text, ["occurred_at"],
        )  # fmt: skip
    return payments, records


def _pairs(payments, records):
    """Payment and record pairs: by provider reference, then merchant reference, then the
    heuristic (same provider, currency and amount within the window, one on each side)."""
    import pandas as pd

    window = pd.Timedelta(minutes=15)
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
    return pairs.sort_values(["id_p", "method", "occurred_at_r", "id_r"])


def _flag(payments, records, start, end) -> dict[str, int]:
    """The seven discrepancy types found among the day's payments, by type."""
    settled = ["succeeded", "refunded", "partially_refunded"]
    charged = ["succeeded", "partially_refunded"]
    payments = payments[(payments.occurred_at >= start) & (payments.occurred_at < end)]
    pairs = _pairs(payments, records)
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
    day_records = records[(records.occurred_at >= start) & (records.occurred_at < end)]
    disputed = day_records.dispute_status.isin(["open", "under_review", "lost"])
    return {
        "MissingInternalRecord": len(unmatched_r),
        "MissingProviderRecord": len(unmatched_p),
        "AmountMismatch": int(amount.sum()),
        "CurrencyMismatch": int(currency.sum()),
        "StatusMismatch": int(status.sum()),
        "DuplicateChargeSuspected": len(further),
        "DisputeOpened": int(disputed.sum()),
    }


def child_pandas(org_id: uuid.UUID, day: date) -> dict:
    """What an analyst would write: load both tables, merge, flag; timed load + merge."""
    import pandas as pd

    start = pd.Timestamp(day, tz="UTC")
    end = start + pd.Timedelta(days=1)
    began = time.perf_counter()
    payments, records = _load_frames(org_id)
    loaded = time.perf_counter() - began
    by_type = _flag(payments, records, start, end)
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "load_seconds": loaded,
        "peak_rss_kb": _memory_kb("VmHWM"),
        "by_type": by_type,
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
