"""Dry runs: what a period run would do under other settings, with nothing written.

The run is the real one (:func:`shared.runs.lifecycle.reconcile_run`, the same code and
SQL), done in a transaction of its own that is always rolled back: every row it wrote,
every lock it took and every metric or task it queued for the commit goes with it. What
it would have done is read back before the rollback. The settings a change would give
(time zone included) are applied to a detached copy of the organisation, never to its row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.access.organizations import get_organization
from shared.access.settings import SettingsChange, effective_match_settings
from shared.discrepancies.lifecycle import AUTO_RESOLUTION
from shared.models import ReconciliationActionLog, ReconciliationDiscrepancy, ReconciliationRun
from shared.platform.db import SessionFactory
from shared.platform.ids import new_id
from shared.runs.lifecycle import check_period, reconcile_run


@dataclass(frozen=True)
class WouldOpen:
    """A discrepancy the run would open (it does not exist, so it has no id)."""

    type: str
    severity: str
    payment_id: uuid.UUID | None
    provider_record_id: uuid.UUID | None
    amount_minor: int
    currency: str


_OPEN_FIELDS = tuple(WouldOpen.__dataclass_fields__)


@dataclass(frozen=True)
class WouldResolve:
    """An existing discrepancy the run would auto-resolve."""

    id: uuid.UUID
    type: str


@dataclass(frozen=True)
class DryRun:
    """What the run would do: its report, the discrepancies it would open and resolve."""

    report: dict[str, Any]
    would_open: list[WouldOpen]
    would_auto_resolve: list[WouldResolve]


@dataclass(frozen=True)
class Rehearsal:
    """The run to rehearse: the organisation's period, and the settings to change."""

    org_id: uuid.UUID
    period_start: date
    period_end: date
    change: SettingsChange | None = None
    is_verification_run: bool = False


def dry_run(rehearsal: Rehearsal, *, now: datetime | None = None) -> DryRun:
    """Run the period with the change applied, in a transaction that is rolled back."""
    check_period(rehearsal.period_start, rehearsal.period_end)
    session = SessionFactory()
    try:
        return _rehearse(session, rehearsal, now or datetime.now(UTC))
    finally:
        session.rollback()
        session.close()


def _rehearse(session: Session, rehearsal: Rehearsal, now: datetime) -> DryRun:
    org = get_organization(session=session, org_id=rehearsal.org_id)
    session.expunge(org)  # the change below must never reach the row
    # The settings the run reads from the organisation itself, not from MatchSettings.
    for name in ("timezone", "settlement_delay_days"):
        if rehearsal.change is not None and name in rehearsal.change.model_fields_set:
            setattr(org, name, getattr(rehearsal.change, name))
    settings = effective_match_settings(org, rehearsal.change)
    # ``completed`` from the start: the row never takes the period's one active-run slot,
    # so a real run queued meanwhile is neither blocked nor refused.
    run = ReconciliationRun(
        id=new_id(),
        org_id=org.id,
        period_start=rehearsal.period_start,
        period_end=rehearsal.period_end,
        status="completed",
        triggered_by="api",
        is_verification_run=rehearsal.is_verification_run,
        auto_fix_enabled=settings.auto_fix,
        started_at=now,
    )
    session.add(run)
    session.flush()
    reconcile_run(session=session, run=run, org=org, settings=settings, now=now)
    opened = session.scalars(
        select(ReconciliationDiscrepancy)
        .where(ReconciliationDiscrepancy.run_id == run.id)
        .order_by(ReconciliationDiscrepancy.type, ReconciliationDiscrepancy.id)
    )
    resolved = session.execute(
        select(ReconciliationDiscrepancy.id, ReconciliationDiscrepancy.type)
        .join(ReconciliationActionLog)
        .where(
            ReconciliationActionLog.org_id == org.id,
            ReconciliationActionLog.action == AUTO_RESOLUTION,
            ReconciliationActionLog.payload["evidence"]["run_id"].astext == str(run.id),
        )
        .order_by(ReconciliationDiscrepancy.type, ReconciliationDiscrepancy.id)
    )
    # The report as the run would write it; the run itself never exists.
    report = {**run.report_json, "run": {**run.report_json["run"], "id": None, "dry_run": True}}
    return DryRun(
        report=report,
        would_open=[
            WouldOpen(
                d.type, d.severity, d.payment_id, d.provider_record_id, d.amount_minor, d.currency
            )
            for d in opened
        ],
        would_auto_resolve=[WouldResolve(id_, type_) for id_, type_ in resolved],
    )
