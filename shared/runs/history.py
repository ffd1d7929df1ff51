"""The figures of an organisation's recent runs, read from their stored reports.

The console's run pages chart them (``shared/reporting/charts.py``); nothing is computed
again: every figure is the one the run's report states (docs/design.md, "Report").
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shared.models import ReconciliationRun

RECENT_RUNS = 30
# The kinds of money at stake a report states, in the order the charts show them.
STAKES = ("amount_mismatch", "missing_at_provider", "missing_internally", "disputed")


@dataclass(frozen=True)
class RunFigures:
    """One completed run's headline figures, as its report states them.

    ``money_at_stake`` is, per currency, the minor units of each of :data:`STAKES`:
    the AmountMismatch differences, the payments no provider record matched
    (``missing_at_provider``), the provider records no payment matched
    (``missing_internally``), and the disputed amounts (open, under review or lost).
    """

    run_id: uuid.UUID
    period_start: date
    period_end: date
    created_at: datetime
    is_verification_run: bool
    matched_percent: Decimal
    items: int
    discrepancies_by_type: dict[str, int]
    money_at_stake: dict[str, dict[str, int]]


def money_at_stake(report: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per currency (sorted), each of :data:`STAKES` in minor units (0 when none), from a
    stored report; never added across currencies."""
    stakes: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STAKES, 0))
    for currency, amount in report["mismatch_amount_by_currency"].items():
        stakes[currency]["amount_mismatch"] += amount
    unmatched = report["unmatched_amount_by_currency"]
    for currency, amount in unmatched["internal"].items():
        stakes[currency]["missing_at_provider"] += amount
    for currency, amount in unmatched["provider"].items():
        stakes[currency]["missing_internally"] += amount
    for currency, statuses in report["disputes"]["by_currency"].items():
        stakes[currency]["disputed"] += sum(status["amount_minor"] for status in statuses.values())
    return {currency: stakes[currency] for currency in sorted(stakes)}


def run_figures(run: ReconciliationRun) -> RunFigures:
    """The figures of a completed run, from its stored report."""
    report = run.report_json
    return RunFigures(
        run_id=run.id,
        period_start=run.period_start,
        period_end=run.period_end,
        created_at=run.created_at,
        is_verification_run=run.is_verification_run,
        # Stored as a JSON number with two decimals: read through its text, exactly.
        matched_percent=Decimal(str(report["matched_percent"])),
        items=report["run"]["counts"]["items"],
        discrepancies_by_type=dict(report["discrepancies_by_type"]),
        money_at_stake=money_at_stake(report),
    )


_R = ReconciliationRun
# Newest first along (org_id, created_at, id), keeping the completed ones.
_RECENT = (
    select(_R)
    .where(_R.org_id == bindparam("org_id"), _R.status == "completed")
    .order_by(_R.created_at.desc(), _R.id.desc())
    .limit(bindparam("limit"))
)


def recent_run_figures(
    *, session: Session, org_id: uuid.UUID, limit: int = RECENT_RUNS
) -> list[RunFigures]:
    """The figures of the organisation's last ``limit`` completed runs, oldest first."""
    runs = session.scalars(_RECENT, {"org_id": org_id, "limit": limit})
    return [run_figures(run) for run in runs][::-1]
