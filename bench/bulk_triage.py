"""Bulk triage bench: resolving 500 discrepancies in one call against one call each.

What it does, in one run, on its own database ``recon_bench_bulk`` (dropped at the end):

1. migrates it and adds an organisation with a manager's key;
2. for each of ``--rounds`` rounds and each way, opens ``--count`` discrepancies (each on
   its own payment) and resolves them all:

   - **bulk**: one ``apply_bulk`` call in one unit of work (what
     ``POST …/discrepancies/bulk`` does, without HTTP);
   - **one by one, one transaction**: ``resolve`` per discrepancy in one unit of work
     (the same lifecycle calls without the savepoints: the savepoints' cost);
   - **one by one, a transaction each**: ``resolve`` in its own unit of work per
     discrepancy (what one request per row would cost, without HTTP);

3. checks each way resolved every row with one ``resolved`` entry each, and prints each
   way's best round in ms and per row, and the ratios to bulk.

Run from the repository root: ``.venv/bin/python bench/bulk_triage.py [--count 500]``.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from environment import clean_up, database_url_named, redis_url, start_afresh, use_own_services

DATABASE = "recon_bench_bulk"
REDIS_DATABASE = 14
REASON = "bench: settled the next day"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="discrepancies per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per way (best kept)")
    return parser.parse_args()


def main() -> None:
    args = parse_arguments()
    use_own_services(DATABASE, redis_url(REDIS_DATABASE), log_level="WARNING")
    start_afresh(DATABASE, REDIS_DATABASE)
    try:
        run(args)
    finally:
        clean_up(DATABASE, redis_url(REDIS_DATABASE))


def run(args: argparse.Namespace) -> None:
    from sqlalchemy import func, select

    from shared.access.api_keys import Caller, create_api_key
    from shared.access.organizations import create_organization
    from shared.discrepancies.bulk import BulkChange, BulkTarget, apply_bulk
    from shared.discrepancies.lifecycle import resolve
    from shared.models import Payment, ReconciliationActionLog, ReconciliationDiscrepancy
    from shared.platform import migrations
    from shared.platform.db import unit_of_work

    migrations.upgrade(database_url=database_url_named(DATABASE))
    with unit_of_work() as session:
        org = create_organization(session=session, name="Bench")
        key = create_api_key(session=session, org_id=org.id, role="manager", name="bench")
        caller = Caller(
            actor=str(key.api_key.id), actor_name="bench", org_id=org.id, role="manager"
        )

    def open_discrepancies() -> list[uuid.UUID]:
        now = datetime.now(UTC)
        with unit_of_work() as session:
            payments = [
                Payment(org_id=caller.org_id, external_id=f"bench_{uuid.uuid4().hex}",
                        provider="stripe", amount_minor=2500, currency="EUR",
                        status="succeeded", amount_refunded_minor=0, occurred_at=now)
                for _ in range(args.count)
            ]  # fmt: skip
            session.add_all(payments)
            session.flush()
            rows = [
                ReconciliationDiscrepancy(org_id=caller.org_id, type="MissingProviderRecord",
                                          severity="medium", payment_id=payment.id,
                                          amount_minor=2500, currency="EUR", opened_at=now)
                for payment in payments
            ]  # fmt: skip
            session.add_all(rows)
            session.flush()
            return [row.id for row in rows]

    def bulk(ids: list[uuid.UUID]) -> None:
        change = BulkChange(action="resolve", reason=REASON, resolution="timing_difference")
        with unit_of_work() as session:
            outcome = apply_bulk(
                session=session, caller=caller, targets=[BulkTarget(i) for i in ids], change=change
            )
        assert len(outcome.changed) == len(ids), outcome.failed[:3]

    def one_transaction(ids: list[uuid.UUID]) -> None:
        with unit_of_work() as session:
            for discrepancy_id in ids:
                resolve(session=session, caller=caller, discrepancy_id=discrepancy_id,
                        resolution="timing_difference", reason=REASON)  # fmt: skip

    def transaction_each(ids: list[uuid.UUID]) -> None:
        for discrepancy_id in ids:
            with unit_of_work() as session:
                resolve(session=session, caller=caller, discrepancy_id=discrepancy_id,
                        resolution="timing_difference", reason=REASON)  # fmt: skip

    def check(ids: list[uuid.UUID]) -> None:
        with unit_of_work() as session:
            resolved = session.scalar(
                select(func.count()).where(
                    ReconciliationDiscrepancy.id.in_(ids),
                    ReconciliationDiscrepancy.status == "resolved",
                )
            )
            entries = session.scalar(
                select(func.count()).where(
                    ReconciliationActionLog.discrepancy_id.in_(ids),
                    ReconciliationActionLog.action == "resolved",
                )
            )
        assert resolved == entries == len(ids), (resolved, entries)

    ways: dict[str, Callable[[list[uuid.UUID]], None]] = {
        "bulk (one call)": bulk,
        "one by one, one transaction": one_transaction,
        "one by one, a transaction each": transaction_each,
    }
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, way in ways.items():
            ids = open_discrepancies()
            started = time.perf_counter()
            way(ids)
            elapsed = time.perf_counter() - started
            check(ids)
            best[name] = min(best.get(name, elapsed), elapsed)
    print(f"{args.count} discrepancies resolved, best of {args.rounds} rounds:")
    print(f"{'way':<32} {'ms':>9} {'ms/row':>8} {'÷ bulk':>7}")
    for name, seconds in best.items():
        ratio = seconds / best["bulk (one call)"]
        print(
            f"{name:<32} {seconds * 1000:>9.1f} {seconds * 1000 / args.count:>8.2f} {ratio:>7.2f}"
        )


if __name__ == "__main__":
    main()
