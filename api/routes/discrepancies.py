"""Finance's triage of discrepancies: list (JSON or CSV), detail, and the workflow actions.

Every action answers the updated discrepancy with ``ETag: "<version>"``; sending that
version back in ``If-Match`` makes the action fail with 412 if someone changed it since.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator

from flask import Blueprint, Response, request
from sqlalchemy.orm import Session

from api.endpoint import endpoint
from api.openapi import Header, documented
from api.requests import parse_json_body, parse_query
from api.responses import json_response
from api.schemas import (
    AssignIn,
    DiscrepancyDetailOut,
    DiscrepancyListQuery,
    DiscrepancyOut,
    DiscrepancyPage,
    NoteIn,
    ResolveIn,
)
from shared.access.api_keys import TRIAGE_ROLES, Caller
from shared.platform.db import unit_of_work
from shared.platform.errors import BadRequest
from shared.triage.workflow import (
    DiscrepancyView,
    acknowledge,
    add_note,
    assign,
    get_discrepancy,
    iter_discrepancies,
    list_discrepancies,
    resolve,
)
from shared.values.money import format_minor

blueprint = Blueprint("discrepancies", __name__)

DISCREPANCIES = "/billing/reconciliation/discrepancies"
CSV = "text/csv"
_VERSION = re.compile(r'^(?:[0-9]{1,9}|"[0-9]{1,9}")$')
CSV_COLUMNS = (
    "id",
    "type",
    "severity",
    "status",
    "currency",
    "amount",
    "amount_minor",
    "difference",
    "difference_minor",
    "payment_id",
    "payment_external_id",
    "provider_record_id",
    "provider",
    "provider_reference",
    "assignee",
    "resolution",
    "version",
    "opened_at",
    "acknowledged_at",
    "resolved_at",
)
# A cell starting with one of these is run as a formula by spreadsheet programs; free
# text from outside (external ids, references, assignees) is prefixed with a quote.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_CSV_CHUNK = 64 * 1024
# For the OpenAPI document: the workflow actions' optimistic concurrency and conflicts.
IF_MATCH = Header(
    "If-Match",
    'The version this change is based on ("3" or 3; * for any); stale → 412, malformed → 400.',
)
ACTION_ERRORS = (400, 409, 412)
CSV_SCHEMA = {"type": "string", "description": "One header line, then one line per discrepancy."}


def expected_version() -> int | None:
    """The version in ``If-Match`` (``3`` or ``"3"``; ``*`` means any); 400 if malformed."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    value = header.strip()
    if not _VERSION.match(value):
        raise BadRequest('If-Match must be the discrepancy\'s version, e.g. "3"')
    return int(value.strip('"'))


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


@blueprint.get(f"{DISCREPANCIES}/<uuid:discrepancy_id>")
@documented(responses={200: DiscrepancyDetailOut})
@endpoint(roles=TRIAGE_ROLES)
def show_discrepancy(session: Session, caller: Caller, discrepancy_id: uuid.UUID) -> Response:
    """One discrepancy with its match results and its action log, oldest first."""
    detail = get_discrepancy(session=session, org_id=caller.org_id, discrepancy_id=discrepancy_id)
    response = json_response(DiscrepancyDetailOut.from_detail(detail))
    response.headers["ETag"] = f'"{detail.discrepancy.version}"'
    return response


@blueprint.patch(f"{DISCREPANCIES}/<uuid:discrepancy_id>/acknowledge")
@documented(responses={200: DiscrepancyOut}, headers=(IF_MATCH,), errors=ACTION_ERRORS)
@endpoint(roles=TRIAGE_ROLES)
def acknowledge_discrepancy(
    session: Session, caller: Caller, discrepancy_id: uuid.UUID
) -> Response:
    """``open → acknowledged``; 409 from any other status."""
    view = acknowledge(
        session=session,
        caller=caller,
        discrepancy_id=discrepancy_id,
        expected_version=expected_version(),
    )
    return discrepancy_response(view)


@blueprint.patch(f"{DISCREPANCIES}/<uuid:discrepancy_id>/assign")
@documented(
    body=AssignIn, responses={200: DiscrepancyOut}, headers=(IF_MATCH,), errors=ACTION_ERRORS
)
@endpoint(roles=TRIAGE_ROLES)
def assign_discrepancy(session: Session, caller: Caller, discrepancy_id: uuid.UUID) -> Response:
    """Give an unresolved discrepancy to someone (``{"assignee": …}``)."""
    body = parse_json_body(AssignIn)
    view = assign(
        session=session,
        caller=caller,
        discrepancy_id=discrepancy_id,
        assignee=body.assignee,
        expected_version=expected_version(),
    )
    return discrepancy_response(view)


@blueprint.post(f"{DISCREPANCIES}/<uuid:discrepancy_id>/notes")
@documented(body=NoteIn, responses={201: DiscrepancyOut}, headers=(IF_MATCH,), errors=ACTION_ERRORS)
@endpoint(roles=TRIAGE_ROLES)
def add_discrepancy_note(session: Session, caller: Caller, discrepancy_id: uuid.UUID) -> Response:
    """Append a note to an unresolved discrepancy's trail; 201 with the discrepancy."""
    body = parse_json_body(NoteIn)
    view = add_note(
        session=session,
        caller=caller,
        discrepancy_id=discrepancy_id,
        note=body.note,
        expected_version=expected_version(),
    )
    return discrepancy_response(view, status=201)


@blueprint.patch(f"{DISCREPANCIES}/<uuid:discrepancy_id>/resolve")
@documented(
    body=ResolveIn, responses={200: DiscrepancyOut}, headers=(IF_MATCH,), errors=ACTION_ERRORS
)
@endpoint(roles=TRIAGE_ROLES)
def resolve_discrepancy(session: Session, caller: Caller, discrepancy_id: uuid.UUID) -> Response:
    """Close a discrepancy for good with a resolution code and a reason."""
    body = parse_json_body(ResolveIn)
    view = resolve(
        session=session,
        caller=caller,
        discrepancy_id=discrepancy_id,
        resolution=body.resolution,
        reason=body.reason,
        adjustment_reference=body.adjustment_reference,
        expected_version=expected_version(),
    )
    return discrepancy_response(view)


def csv_response(caller: Caller, query: DiscrepancyListQuery) -> Response:
    """Stream the filtered list as CSV, reading it in keyset batches as it is sent.

    The rows are read in their own read-only unit of work, opened when the body starts
    streaming (the request's unit of work has already committed by then).
    """
    filters = query.filters()

    def chunks() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        with unit_of_work() as session:
            for view in iter_discrepancies(
                session=session, org_id=caller.org_id, filters=filters, sort=query.sort
            ):
                writer.writerow(csv_row(view))
                if buffer.tell() >= _CSV_CHUNK:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    response = Response(chunks(), mimetype=CSV)
    response.headers["Content-Disposition"] = 'attachment; filename="discrepancies.csv"'
    response.vary.add("Accept")
    return response


def csv_row(view: DiscrepancyView) -> list[str | int]:
    """One CSV line: money formatted with the currency's exponent and raw in minor units."""
    payment, record = view.payment, view.provider_record
    difference = view.difference_minor
    return [
        str(view.id),
        view.type,
        view.severity,
        view.status,
        view.currency,
        format_minor(view.amount_minor, view.currency),
        view.amount_minor,
        "" if difference is None else format_minor(difference, view.currency),
        "" if difference is None else difference,
        str(payment.id) if payment else "",
        safe_cell(payment.external_id) if payment else "",
        str(record.id) if record else "",
        record.provider if record else "",
        safe_cell(record.provider_reference) if record else "",
        safe_cell(view.assignee or ""),
        view.resolution or "",
        view.version,
        view.opened_at.isoformat(),
        view.acknowledged_at.isoformat() if view.acknowledged_at else "",
        view.resolved_at.isoformat() if view.resolved_at else "",
    ]


def safe_cell(text: str) -> str:
    """Free text made inert for spreadsheets (no formula injection)."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
