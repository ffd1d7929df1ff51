"""The runs: their list with the trigger form, and a run's report with its charts."""

from __future__ import annotations

import uuid

from flask import Response, redirect, render_template, url_for
from sqlalchemy.orm import Session

from console.forms import RunsQuery, TriggerForm, parse_form, parse_query
from console.web import blueprint, page
from shared.access.api_keys import TRIAGE_ROLES, Caller
from shared.platform.errors import ValidationFailed
from shared.reporting.run_report import run_report
from shared.runs.lifecycle import list_runs, trigger_run

PAGE_SIZE = 50


def render_runs(
    session: Session, caller: Caller, error: str | None = None, status: int = 200
) -> tuple[str, int]:
    """The runs page (its cursor from the query string), with ``error`` above the form."""
    query = parse_query(RunsQuery)
    runs = list_runs(session=session, org_id=caller.org_id, cursor=query.cursor, limit=PAGE_SIZE)
    html = render_template("console/runs.html", caller=caller, query=query, page=runs, error=error)
    return html, status


@blueprint.get("/runs")
@page(roles=TRIAGE_ROLES)
def runs(session: Session, caller: Caller) -> tuple[str, int]:
    """The organisation's runs, newest first, and the form that triggers one."""
    return render_runs(session, caller)


@blueprint.post("/runs")
@page(roles=TRIAGE_ROLES)
def trigger(session: Session, caller: Caller) -> Response | tuple[str, int]:
    """Queue a run of the period (or find the one already active for it), then show it."""
    try:
        form = parse_form(TriggerForm)
        triggered = trigger_run(
            session=session,
            org_id=caller.org_id,
            period_start=form.period_start,
            period_end=form.period_end,
            # The console is the API's own application: a run it queues is an API trigger.
            triggered_by="api",
            is_verification_run=form.is_verification_run,
        )
    except ValidationFailed as invalid:
        return render_runs(session, caller, invalid.detail, invalid.status)
    return redirect(url_for("console.run", run_id=triggered.run.id), code=303)


@blueprint.get("/runs/<uuid:run_id>")
@page(roles=TRIAGE_ROLES)
def run(session: Session, caller: Caller, run_id: uuid.UUID) -> str:
    """A run's report: its figures and charts once completed, its state until then."""
    report = run_report(session=session, org_id=caller.org_id, run_id=run_id)
    return render_template("console/run.html", caller=caller, report=report, run=report.run)
