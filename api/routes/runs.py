"""Reconciliation runs: trigger, list, report, items (the run's exceptions), and the
token-protected daily endpoint."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.orm import Session

from api.endpoint import endpoint
from api.openapi import Header, documented
from api.requests import parse_json_body, parse_query
from api.responses import json_response
from api.run_schemas import (
    DailyRuns,
    DryRunOut,
    ItemPage,
    ReportQuery,
    RunItemsQuery,
    RunListQuery,
    RunOut,
    RunPage,
    RunTrigger,
    TriggerAnswer,
)
from shared.access.api_keys import READ_ROLES, TRIAGE_ROLES, Caller
from shared.access.daily_token import TOKEN_HEADER, check_daily_token
from shared.platform.db import unit_of_work
from shared.platform.errors import Conflict
from shared.runs.dry_run import Rehearsal, dry_run
from shared.runs.evidence import item_csv_chunks, iter_run_items, list_run_items
from shared.runs.lifecycle import get_run, list_runs, trigger_daily_runs, trigger_run

blueprint = Blueprint("runs", __name__)

REPORT_SCHEMA = {"type": "object", "description": "The run's report (docs/design.md, Report)."}
CSV = "text/csv"
ITEMS_CSV_SCHEMA = {"type": "string", "description": "One header line, then one line per item."}


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


@blueprint.get("/billing/reconciliation/runs/<uuid:run_id>/items")
@documented(
    query=RunItemsQuery,
    responses={200: {"application/json": ItemPage, CSV: ITEMS_CSV_SCHEMA}},
    errors=(400,),  # a cursor this listing did not issue
)
@endpoint(roles=READ_ROLES)
def run_items(session: Session, caller: Caller, run_id: uuid.UUID) -> Response:
    """The run's items — its exceptions — in the order it wrote them, a page at a time.

    With ``?format=csv`` or ``Accept: text/csv`` every item streams as CSV (``cursor``
    and ``limit`` do not apply).
    """
    query = parse_query(RunItemsQuery)
    as_csv = query.format == "csv" or (
        query.format is None
        and request.accept_mimetypes.best_match(["application/json", CSV]) == CSV
    )
    if as_csv:
        get_run(session=session, org_id=caller.org_id, run_id=run_id)  # 404 before streaming
        return _items_csv(caller.org_id, run_id)
    page = list_run_items(
        session=session, org_id=caller.org_id, run_id=run_id, cursor=query.cursor,
        limit=query.limit,
    )  # fmt: skip
    response = json_response(ItemPage.model_validate(page, from_attributes=True))
    response.vary.add("Accept")
    return response


def _items_csv(org_id: uuid.UUID, run_id: uuid.UUID) -> Response:
    """Stream the run's items as CSV, read in keyset batches in a unit of work of its own
    (the request's has committed by the time the body streams)."""

    def chunks() -> Iterator[str]:
        with unit_of_work() as session:
            yield from item_csv_chunks(iter_run_items(session=session, org_id=org_id,
                                                      run_id=run_id))  # fmt: skip

    response = Response(chunks(), mimetype=CSV)
    response.headers["Content-Disposition"] = f'attachment; filename="run-{run_id}-items.csv"'
    response.vary.add("Accept")
    return response


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
