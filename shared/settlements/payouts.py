"""Recording payouts as files and webhooks state them: one row per provider payout id and
currency, whose status follows the provider.

A file states a payout as of its booking time; a Stripe ``payout.*`` webhook as of the
event's time. A stated status replaces the stored one when it was stated later, or when
it is further along (``pending → in_transit → paid``, then ``failed`` or ``canceled``,
which a paid payout may still become): so webhooks in any order, and a file read after
them, converge to the provider's latest word. The first file that states a payout is
kept as its ``file_id`` (None while only webhooks have).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.platform.bulk import array_parameters, column_arrays
from shared.settlements.model import ReportPayout

# How far along each status is (every PAYOUT_STATUSES): a lower rank needs a later time.
STATUS_RANK = {"pending": 0, "in_transit": 1, "paid": 2, "failed": 3, "canceled": 3}

PAYOUT_COLUMNS = {
    "payout_id": "text", "currency": "text", "amount_minor": "bigint", "status": "text",
    "arrival_date": "date", "booked_at": "timestamptz", "status_at": "timestamptz",
}  # fmt: skip


def _rank(alias: str) -> str:
    cases = " ".join(f"WHEN '{status}' THEN {rank}" for status, rank in STATUS_RANK.items())
    return f"(CASE {alias}.status {cases} END)"


# Table, columns and ranks are this module's constants, never input.
UPSERT_PAYOUTS = text(f"""
INSERT INTO settlement_payouts AS p (org_id, file_id, provider, {", ".join(PAYOUT_COLUMNS)})
SELECT :org_id, :file_id, :provider, * FROM unnest({array_parameters(PAYOUT_COLUMNS)})
ON CONFLICT (org_id, provider, payout_id, currency) DO UPDATE
SET status = CASE WHEN p.status_at IS NULL OR excluded.status_at > p.status_at
                    OR {_rank("excluded")} > {_rank("p")}
                  THEN excluded.status ELSE p.status END,
    status_at = greatest(p.status_at, excluded.status_at),
    arrival_date = coalesce(excluded.arrival_date, p.arrival_date),
    file_id = coalesce(p.file_id, excluded.file_id)
WHERE p.status_at IS NULL OR excluded.status_at > p.status_at
   OR {_rank("excluded")} > {_rank("p")}
   OR (p.file_id IS NULL AND excluded.file_id IS NOT NULL)
RETURNING xmax = 0 AS inserted
""")  # noqa: S608


def record_payouts(
    *,
    session: Session,
    org_id: uuid.UUID,
    provider: str,
    payouts: Sequence[ReportPayout],
    file_id: uuid.UUID | None = None,
    stated_at: datetime | None = None,
) -> int:
    """Insert the payouts not known yet, and move the status of those known (see above);
    how many were new. Each is stated as of ``stated_at``, else its booking time."""
    # One statement may not update a row twice: a payout a file repeats counts once.
    unique = {(payout.payout_id, payout.currency): payout for payout in reversed(payouts)}
    if not unique:
        return 0
    rows = [
        (payout.payout_id, payout.currency, payout.amount_minor, payout.status,
         payout.arrival_date, payout.booked_at, stated_at or payout.booked_at)
        for payout in reversed(unique.values())
    ]  # fmt: skip
    parameters = column_arrays(rows, PAYOUT_COLUMNS) | {
        "org_id": org_id, "file_id": file_id, "provider": provider,
    }  # fmt: skip
    return sum(session.scalars(UPSERT_PAYOUTS, parameters))
