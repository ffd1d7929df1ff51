"""Finance's triage of discrepancies: list (JSON or CSV), detail, and the workflow actions.

Every action answers the updated discrepancy with ``ETag: "<version>"``; sending that
version back in ``If-Match`` makes the action fail with 412 if someone changed it since.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from flask import Blueprint, Response, request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from api.endpoint import endpoint
from api.openapi import Header, documented
from api.requests import if_match_version, parse_json_body, parse_query
from api.responses import json_response
from api.schemas import (
    AgeingSummaryOut,
    AssignIn,
    BulkTriageIn,
    BulkTriageOut,
    DiscrepancyDetailOut,
    DiscrepancyFilterQuery,
    DiscrepancyListQuery,
    DiscrepancyOut,
    DiscrepancyPage,
    NoteIn,
    ResolveIn,
)
from shared.access.api_keys import READ_ROLES, TRIAGE_ROLES, Caller
from shared.discrepancies.ageing import ageing_summary
from shared.discrepancies.bulk import BulkChange, BulkTarget, apply_bulk
from shared.discrepancies.lifecycle import acknowledge, add_note, assign, resolve
from shared.discrepancies.listing import (
    DiscrepancyView,
    csv_chunks,
    get_discrepancy,
    iter_discrepancies,
    list_discrepancies,
)
from shared.platform.db import unit_of_work

blueprint = Blueprint("discrepancies", __name__)

DISCREPANCIES = "/billing/reconciliation/discrepancies"
CSV = "text/csv"
# For the OpenAPI document: the workflow actions' optimistic concurrency and conflicts.
IF_MATCH = Header(
    "If-Match",
    'The version this change is based on ("3" or 3; * for any); stale → 412, malformed → 400.',
)
ACTION_ERRORS = (400, 409, 412)
CSV_SCHEMA = {"type": "string", "description": "One header line, then one line per discrepancy."}


def discrepancy_response(view: DiscrepancyView, status: int = 200) -> Response:
    """The discrepancy as JSON with its version as the ETag."""
    response = json_response(DiscrepancyOut.model_validate(view), status)
    response.headers["ETag"] = f'"{view.version}"'
    return response


@blueprint.get(DISCREPANCIES)
@documented(
    query=DiscrepancyListQuery,
    responses={200: {"application/json": DiscrepancyPage, CSV: CSV_SCHEMA}},
    errors=(400,),  # a cursor this service did not issue
)
@endpoint(roles=TRIAGE_ROLES)
def list_reconciliation_discrepancies(session: Session, caller: Caller) -> Response:
    """The organisation's discrepancies, filtered and sorted, a page at a time.

    With ``Accept: text/csv`` the whole filtered list (``cursor`` and ``limit`` do not
    apply) streams as CSV for spreadsheets, amounts both formatted and in minor units.
    """
    query = parse_query(DiscrepancyListQuery)
    if request.accept_mimetypes.best_match(["application/json", CSV]) == CSV:
        return csv_response(caller, query)
    page = list_discrepancies(
        session=session,
        org_id=caller.org_id,
        filters=query.filters(),
        sort=query.sort,
        cursor=query.cursor,
        limit=query.limit,
    )
    response = json_response(DiscrepancyPage.model_validate(page, from_attributes=True))
    response.vary.add("Accept")
    return response


@blueprint.get(f"{DISCREPANCIES}/summary")
@documented(query=DiscrepancyFilterQuery, responses={200: AgeingSummaryOut})
@endpoint(roles=READ_ROLES)
def summarise_discrepancies(session: Session, caller: Caller) -> Response:
    """How long the open and acknowledged discrepancies have waited (the list's filters).

    Four buckets by age in calendar days of the organisation's time zone (0–1, 2–7,
    8–30, 31 and more), each with its count and, per currency, count and amount.
    """
    query = parse_query(DiscrepancyFilterQuery)
    summary = ageing_summary(
        session=session, org_id=caller.org_id, filters=query.filters(), now=datetime.now(UTC)
    )
    return json_response(AgeingSummaryOut.model_validate(summary))


@blueprint.post(f"{DISCREPANCIES}/bulk")
@documented(body=BulkTriageIn, responses={200: BulkTriageOut})
@endpoint(roles=TRIAGE_ROLES)
def bulk_triage(session: Session, caller: Caller) -> Response:
    """Acknowledge, assign or resolve up to 500 discrepancies with one reason.

    Each changed discrepancy gets its own action-log entry. A discrepancy the action
    cannot apply to (not found, a refused transition, a stale ``version``) is listed in
    ``failed`` and the others are still changed: 200 either way, both lists in request
    order. Input wrong for all (over 500, an id twice, a missing assignee or resolution)
    is 422 and changes nothing.
    """
    body = parse_json_body(BulkTriageIn)
    outcome = apply_bulk(
        session=session,
        caller=caller,
        targets=[BulkTarget(item.id, item.version) for item in body.discrepancies],
        change=BulkChange(
            action=body.action,
            reason=body.reason,
            assignee=body.assignee,
            resolution=body.resolution,
            adjustment_reference=body.adjustment_reference,
        ),
    )
    return json_response(BulkTriageOut.model_validate(outcome))


@blueprint.get(f"{DISCREPANCIES}/<uuid:discrepancy_id>")
@documented(responses={200: DiscrepancyDetailOut})
@endpoint(roles=TRIAGE_ROLES)
def show_discrepancy(session: Session, caller: Caller, discrepancy_id: uuid.UUID) -> Response:
    """One discrepancy with its match results and its action log, oldest first."""
    detail = get_discrepancy(session=session, org_id=caller.org_id, discrepancy_id=discrepancy_id)
    response = json_response(DiscrepancyDetailOut.from_detail(detail))
    response.headers["ETag"] = f'"{detail.discrepancy.version}"'
    return response


def workflow_route(
    method: str, suffix: str, body: type[BaseModel] | None = None, status: int = 200
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Register a workflow action at ``…/discrepancies/<id>/<suffix>``: owners and managers
    only, documented with its body, its answer, If-Match and its conflicts."""
    rule = f"{DISCREPANCIES}/<uuid:discrepancy_id>/{suffix}"
    operation = documented(
        body=body, responses={status: DiscrepancyOut}, headers=(IF_MATCH,), errors=ACTION_ERRORS
    )

    def register(view: Callable[..., Response]) -> Callable[..., Response]:
        return getattr(blueprint, method)(rule)(operation(endpoint(roles=TRIAGE_ROLES)(view)))

    return register


def change_discrepancy(
    action: Callable[..., DiscrepancyView],
    session: Session,
    caller: Caller,
    discrepancy_id: uuid.UUID,
    body: BaseModel | None = None,
    status: int = 200,
) -> Response:
    """Apply one workflow ``action`` with the If-Match version and the body's fields (each
    named like the action's keyword argument); the discrepancy as the answer."""
    fields = body.model_dump() if body is not None else {}
    view = action(
        session=session,
        caller=caller,
        discrepancy_id=discrepancy_id,
        expected_version=if_match_version(),
        **fields,
    )
    return discrepancy_response(view, status)


@workflow_route("patch", "acknowledge")
def acknowledge_discrepancy(
    session: Session, caller: Caller, discrepancy_id: uuid.UUID
) -> Response:
    """``open → acknowledged``; 409 from any other status."""
    return change_discrepancy(acknowledge, session, caller, discrepancy_id)


@workflow_route("patch", "assign", AssignIn)
def assign_discrepancy(session: Session, caller: Caller, discrepancy_id: uuid.UUID) -> Response:
    """Give an unresolved discrepancy to someone (``{"assignee": …}``)."""
    return change_discrepancy(assign, session, caller, discrepancy_id, parse_json_body(AssignIn))


@workflow_route("post", "notes", NoteIn, status=201)
def add_discrepancy_note(session: Session, caller: Caller, discrepancy_id: uuid.UUID) -> Response:
    """Append a note to an unresolved discrepancy's trail; 201 with the discrepancy."""
    body = parse_json_body(NoteIn)
    return change_discrepancy(add_note, session, caller, discrepancy_id, body, status=201)


@workflow_route("patch", "resolve", ResolveIn)
def resolve_discrepancy(session: Session, caller: Caller, discrepancy_id: uuid.UUID) -> Response:
    """Close a discrepancy for good with a resolution code and a reason."""
    return change_discrepancy(resolve, session, caller, discrepancy_id, parse_json_body(ResolveIn))


def csv_response(caller: Caller, query: DiscrepancyListQuery) -> Response:
    """Stream the filtered list as CSV, reading it in keyset batches as it is sent.

    The rows are read in their own read-only unit of work, opened when the body starts
    streaming (the request's unit of work has already committed by then).
    """
    filters = query.filters()

    def chunks() -> Iterator[str]:
        with unit_of_work() as session:
            yield from csv_chunks(
                iter_discrepancies(
                    session=session, org_id=caller.org_id, filters=filters, sort=query.sort
                )
            )

    response = Response(chunks(), mimetype=CSV)
    response.headers["Content-Disposition"] = 'attachment; filename="discrepancies.csv"'
    response.vary.add("Accept")
    return response
