"""Reconciliation runs: trigger, list, report, and the token-protected daily endpoint."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.orm import Session

from api.endpoint import endpoint
from api.openapi import Header, documented
from api.requests import parse_json_body, parse_query
from api.run_schemas import (
    DailyRuns,
    DryRunOut,
    ReportQuery,
    RunListQuery,
    RunOut,
    RunPage,
    RunTrigger,
    TriggerAnswer,
)
from shared.access.api_keys import TRIAGE_ROLES, Caller
from shared.access.daily_token import TOKEN_HEADER, check_daily_token
from shared.platform.errors import Conflict
from shared.runs.dry_run import Rehearsal, dry_run
from shared.runs.lifecycle import get_run, list_runs, trigger_daily_runs, trigger_run

blueprint = Blueprint("runs", __name__)

REPORT_SCHEMA = {"type": "object", "description": "The run's report (docs/design.md, Report)."}


def _json(model, status: int = 200) -> Response:
    response = jsonify(model.model_dump(mode="json"))
    response.status_code = status
    return response


@blueprint.post("/billing/reconciliation/runs/trigger")
@documented(body=RunTrigger, responses={200: TriggerAnswer, 202: RunOut})
@endpoint(roles=TRIAGE_ROLES)
def trigger(session: Session, caller: Caller) -> Response:
    """Queue a run of a period: 202 with the new run, 200 with the one already active.

    With ``"dry_run": true``: 200 with what the run would do, and nothing written.
    """
    body = parse_json_body(RunTrigger)
    start, end = body.bounds
    if body.dry_run:
        rehearsal = Rehearsal(caller.org_id, start, end, body.settings, body.is_verification_run)
        return _json(DryRunOut.model_validate(dry_run(rehearsal)))
    triggered = trigger_run(
        session=session,
        org_id=caller.org_id,
        period_start=start,
        period_end=end,
        triggered_by="api",
        is_verification_run=body.is_verification_run,
    )
    session.flush()
    return _json(RunOut.of(triggered.run), 202 if triggered.created else 200)


@blueprint.get("/billing/reconciliation/runs")
@documented(query=RunListQuery, responses={200: RunPage}, errors=(400,))
@endpoint(roles=TRIAGE_ROLES)
def runs(session: Session, caller: Caller) -> Response:
    """The organisation's runs, newest first (cursor pagination)."""
    query = parse_query(RunListQuery)
    page = list_runs(session=session, org_id=caller.org_id, cursor=query.cursor, limit=query.limit)
    return _json(
        RunPage(items=[RunOut.of(run) for run in page.items], next_cursor=page.next_cursor)
    )


@blueprint.get("/billing/reconciliation/runs/<uuid:run_id>/report")
@documented(
    query=ReportQuery,
    responses={200: {"application/json": REPORT_SCHEMA, "text/markdown": {"type": "string"}}},
    errors=(409,),
)
@endpoint(roles=TRIAGE_ROLES)
def report(session: Session, caller: Caller, run_id: uuid.UUID) -> Response:
    """The run's report as JSON, or Markdown (``?format=markdown`` / ``Accept: text/markdown``)."""
    query = parse_query(ReportQuery)
    run = get_run(session=session, org_id=caller.org_id, run_id=run_id)
    if run.status != "completed":
        raise Conflict(f"the run is {run.status}: its report exists once it has completed")
    markdown = query.format == "markdown" or (
        query.format is None
        and request.accept_mimetypes.best_match(["application/json", "text/markdown"])
        == "text/markdown"
    )
    if markdown:
        return Response(run.report_markdown, mimetype="text/markdown")
    return jsonify(run.report_json)


@blueprint.post("/billing/reconciliation/runs/daily")
@documented(
    responses={200: DailyRuns, 202: DailyRuns},
    headers=(Header(TOKEN_HEADER, "RECONCILIATION_DAILY_TOKEN", required=True),),
    errors=(401, 429, 503),
)
@endpoint()
def daily(session: Session) -> Response:
    """Start yesterday's run for every active organisation (GitHub workflow, cron).

    ``x-reconciliation-token`` is compared in constant time with
    RECONCILIATION_DAILY_TOKEN: missing or wrong → 401, not configured → 503, too many
    wrong ones from this client → 429 (shared/access/daily_token.py). A second call the same
    day starts nothing new and lists the runs that exist.
    """
    check_daily_token(sent=request.headers.get(TOKEN_HEADER), client=request.remote_addr or "")
    triggered = trigger_daily_runs(
        session=session, now=datetime.now(UTC), triggered_by="daily_endpoint"
    )
    session.flush()
    started = sum(item.created for item in triggered)
    return _json(
        DailyRuns(started=started, runs=[RunOut.of(item.run) for item in triggered]),
        202 if started else 200,
    )
