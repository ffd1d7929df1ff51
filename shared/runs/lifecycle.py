"""Reconciliation runs: triggering (one active run per organisation and period), executing,
and the daily schedule in each organisation's own time zone."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.access.organizations import auto_fix_enabled, get_organization
from shared.matching.engine import match_settings
from shared.matching.rules import MatchSettings
from shared.models import Organization, ReconciliationRun
from shared.platform.db import unit_of_work
from shared.platform.dispatch import send_after_commit
from shared.platform.errors import NotFound, ValidationFailed
from shared.platform.failures import contain, failure_reason
from shared.platform.ids import new_id
from shared.platform.logs import get_logger
from shared.platform.mail import MailNotSent, send_report
from shared.platform.metrics import observe_run_duration
from shared.platform.pagination import Page, newest_first
from shared.platform.settings import get_settings
from shared.platform.tasks import RUN_PERIOD
from shared.runs.fingerprint import MatchedSet, current_matched_set
from shared.runs.period import PeriodResult, reconcile_period
from shared.runs.reports import build_report, finish_report, render_markdown
from shared.settlements.matching import reconcile_settlement_period
from shared.values.timestamps import check_plausible_day

MAX_PERIOD_DAYS = 366
ACTIVE = ("queued", "running")

log = get_logger(__name__)


@dataclass(frozen=True)
class Triggered:
    """A run and whether this trigger created it (False: the active or finished run)."""

    run: ReconciliationRun
    created: bool


def period_bounds(org: Organization, start: date, end: date) -> tuple[datetime, datetime]:
    """The UTC instants [start 00:00, end+1 00:00) of the period in the organisation's zone."""
    zone = ZoneInfo(org.timezone)
    first = datetime.combine(start, time.min, zone).astimezone(UTC)
    after = datetime.combine(end + timedelta(days=1), time.min, zone).astimezone(UTC)
    return first, after


def check_period(start: date, end: date) -> None:
    """Raise ValidationFailed unless [start, end] is a plausible period of at most a year."""
    if start > end:
        raise ValidationFailed("period_start must not be after period_end")
    if (end - start).days + 1 > MAX_PERIOD_DAYS:
        raise ValidationFailed(f"a period spans at most {MAX_PERIOD_DAYS} days")
    check_plausible_day(start, field="period_start")
    check_plausible_day(end, field="period_end")


def trigger_run(
    *,
    session: Session,
    org_id: uuid.UUID,
    period_start: date,
    period_end: date,
    triggered_by: str,
    is_verification_run: bool = False,
) -> Triggered:
    """Queue a run of the period, or answer the one already queued or running for it."""
    check_period(period_start, period_end)
    org = get_organization(session=session, org_id=org_id)
    run_id = session.scalar(
        insert(ReconciliationRun)
        .values(
            id=new_id(),
            org_id=org_id,
            period_start=period_start,
            period_end=period_end,
            status="queued",
            triggered_by=triggered_by,
            is_verification_run=is_verification_run,
            auto_fix_enabled=auto_fix_enabled(org),
        )
        .on_conflict_do_nothing(
            index_elements=["org_id", "period_start", "period_end"],
            index_where=text("status IN ('queued', 'running')"),
        )
        .returning(ReconciliationRun.id)
    )
    if run_id is None:
        active = session.scalars(
            select(ReconciliationRun).where(
                ReconciliationRun.org_id == org_id,
                ReconciliationRun.period_start == period_start,
                ReconciliationRun.period_end == period_end,
                ReconciliationRun.status.in_(ACTIVE),
            )
        ).one()
        return Triggered(active, created=False)
    send_after_commit(session, RUN_PERIOD, [str(run_id)])
    log.info("run.queued", run_id=str(run_id), org_id=str(org_id), triggered_by=triggered_by)
    return Triggered(session.get(ReconciliationRun, run_id), created=True)


def yesterday_in(org: Organization, now: datetime) -> date:
    """The organisation's yesterday at ``now``, in its own time zone."""
    return now.astimezone(ZoneInfo(org.timezone)).date() - timedelta(days=1)


def trigger_daily_runs(
    *, session: Session, now: datetime, triggered_by: str, only_due: bool = False
) -> list[Triggered]:
    """Yesterday's run for every active organisation; a day already run starts nothing.

    Paused organisations (and everything while RECONCILIATION_PAUSED) are skipped and
    logged. An organisation whose yesterday already has a run that did not fail keeps it.
    ``only_due`` limits it to organisations whose local ``daily_hour`` is now (beat).
    """
    if get_settings().reconciliation_paused:
        log.info("runs.daily_skipped", reason="RECONCILIATION_PAUSED")
        return []
    results = []
    for org in session.scalars(select(Organization).order_by(Organization.created_at)):
        if only_due and now.astimezone(ZoneInfo(org.timezone)).hour != org.daily_hour:
            continue
        if org.paused:
            log.info("runs.daily_skipped", org_id=str(org.id), reason="organisation paused")
            continue
        day = yesterday_in(org, now)
        existing = session.scalars(
            select(ReconciliationRun)
            .where(
                ReconciliationRun.org_id == org.id,
                ReconciliationRun.period_start == day,
                ReconciliationRun.period_end == day,
                ReconciliationRun.status != "failed",
            )
            .order_by(ReconciliationRun.created_at.desc())
        ).first()
        if existing is not None:
            results.append(Triggered(existing, created=False))
            continue
        results.append(
            trigger_run(
                session=session,
                org_id=org.id,
                period_start=day,
                period_end=day,
                triggered_by=triggered_by,
            )
        )
    return results


def execute_run(*, session: Session, run_id: uuid.UUID, now: datetime | None = None) -> str:
    """Run a queued run to completion (idempotent: a finished run is left alone)."""
    run = session.get(ReconciliationRun, run_id, with_for_update=True)
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    if run.status not in ACTIVE:
        return run.status
    began = monotonic()
    now = now or datetime.now(UTC)
    org = get_organization(session=session, org_id=run.org_id)
    run.status = "running"
    run.started_at = now
    settings = match_settings(session=session, org_id=run.org_id)
    result = reconcile_run(session=session, run=run, org=org, settings=settings, now=now)
    run.status = "completed"
    log.info("run.completed", run_id=str(run.id), opened=result.opened, items=result.items)
    observe_run_duration(monotonic() - began, run.status, session=session)
    return run.status


def reconcile_run(
    *,
    session: Session,
    run: ReconciliationRun,
    org: Organization,
    settings: MatchSettings,
    now: datetime,
) -> PeriodResult:
    """Reconcile the run's period under ``settings`` and write its figures and report onto
    ``run`` (a real run's, or a dry run's that is rolled back)."""
    start, end = period_bounds(org, run.period_start, run.period_end)
    result = reconcile_period(
        session=session,
        run_id=run.id,
        org_id=run.org_id,
        start=start,
        end=end,
        settings=settings,
        now=now,
        verify_open=run.is_verification_run and run.auto_fix_enabled,
    )
    settlement = reconcile_settlement_period(
        session=session, org=org, run_id=run.id, start=start, end=end, settings=settings,
        now=now,
    )  # fmt: skip
    run.payments_checked = result.payments_checked
    run.provider_records_checked = result.provider_records_checked
    run.matched = result.matched
    run.discrepancies_opened = result.opened + settlement.opened
    run.discrepancies_auto_resolved = result.auto_resolved + settlement.auto_resolved
    run.matched_pairs = result.matched_set.pairs
    run.matched_digest = result.matched_set.digest
    report = build_report(
        session=session, run=run, org_name=org.name, start=start, end=end,
        found=result.found, matched=result.matched, items=result.items,
        items_written=result.items_written, settlement=settlement, timezone=org.timezone,
    )  # fmt: skip
    run.finished_at = datetime.now(UTC)
    run.report_json = finish_report(report, run)
    run.report_markdown = render_markdown(run.report_json)
    return result


def execute_queued_run(run_id: uuid.UUID) -> str:
    """What the task of a queued run does: execute it, then mail its report; its status.

    A transient error propagates (the task retries); any other failure marks the run
    ``failed`` with its reason, rather than leaving it ``running``.
    """
    began = monotonic()

    def execute() -> str:
        with unit_of_work() as session:
            return execute_run(session=session, run_id=run_id)

    def record_failure(error: BaseException) -> str:
        with unit_of_work() as session:
            fail_run(session=session, run_id=run_id, error=error)
        observe_run_duration(monotonic() - began, "failed")
        return "failed"

    status = contain(
        execute, record_failure=record_failure, crashed="run.crashed", run_id=str(run_id)
    )
    if status == "completed":
        with unit_of_work() as session:
            mail_run_report(session=session, run_id=run_id)
    return status


def fail_run(*, session: Session, run_id: uuid.UUID, error: BaseException) -> None:
    """Mark a run failed with its error (after its own transaction rolled back)."""
    run = session.get(ReconciliationRun, run_id, with_for_update=True)
    if run is None or run.status not in ACTIVE:
        return
    run.status = "failed"
    run.finished_at = datetime.now(UTC)
    run.error = failure_reason(error)


def get_run(*, session: Session, org_id: uuid.UUID, run_id: uuid.UUID) -> ReconciliationRun:
    """The organisation's run, or NotFound."""
    run = session.get(ReconciliationRun, run_id)
    if run is None or run.org_id != org_id:
        raise NotFound(f"run {run_id} does not exist")
    return run


def list_runs(
    *, session: Session, org_id: uuid.UUID, cursor: str | None, limit: int
) -> Page[ReconciliationRun]:
    """The organisation's runs, newest first."""
    query = select(ReconciliationRun).where(ReconciliationRun.org_id == org_id)
    newest = (ReconciliationRun.created_at, ReconciliationRun.id)
    return newest_first(query, newest, session=session, cursor=cursor, limit=limit)


@dataclass(frozen=True)
class Verification:
    """A run's matched set as it recorded it, and as the bindings hold it now."""

    run: ReconciliationRun
    recorded: MatchedSet
    current: MatchedSet

    @property
    def holds(self) -> bool:
        """Whether the bindings still hold the run's matched set."""
        return self.recorded == self.current


def verify_matched_set(*, session: Session, run_id: uuid.UUID) -> Verification:
    """Recompute the fingerprint of a completed run's matched set from the current bindings
    of its period; NotFound for an unknown run, ValidationFailed for one with none."""
    run = session.get(ReconciliationRun, run_id)
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    if run.status != "completed" or run.matched_digest is None:
        raise ValidationFailed(f"run {run_id} recorded no matched set (status {run.status})")
    org = get_organization(session=session, org_id=run.org_id)
    start, end = period_bounds(org, run.period_start, run.period_end)
    current = current_matched_set(session=session, org_id=run.org_id, start=start, end=end)
    return Verification(run, MatchedSet(run.matched_pairs, run.matched_digest), current)


def mail_run_report(*, session: Session, run_id: uuid.UUID) -> bool:
    """Mail a completed run's Markdown report when ADMIN_EMAIL and SMTP_* are set.

    A mail that cannot be sent is logged and reported as False: the run itself stays
    completed, and its report stays available through the API.
    """
    run = session.get(ReconciliationRun, run_id)
    if run is None or run.status != "completed" or not get_settings().mail_enabled:
        return False
    org = get_organization(session=session, org_id=run.org_id)
    found = sum(run.report_json["discrepancies_by_type"].values())
    subject = (
        f"Reconciliation {org.name} {run.period_start}"
        + (f" to {run.period_end}" if run.period_end != run.period_start else "")
        + f": {found} discrepancies, {run.report_json['matched_percent']:.2f} % matched"
    )
    try:
        return send_report(subject=subject, markdown=run.report_markdown)
    except MailNotSent:
        log.warning("run.report_not_mailed", run_id=str(run.id))
        return False
