"""Provider settlement reports: upload, list, download the original, payouts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from api.endpoint import endpoint
from api.openapi import documented
from api.requests import parse_query
from api.settlement_schemas import (
    FileListQuery,
    PayoutDetailOut,
    PayoutListQuery,
    PayoutOut,
    PayoutPage,
    SettlementFileOut,
    SettlementFilePage,
    UploadQuery,
)
from shared.access.api_keys import TRIAGE_ROLES, Caller
from shared.access.settings_log import Actor
from shared.platform.db import unit_of_work
from shared.platform.errors import ValidationFailed
from shared.platform.settings import get_settings
from shared.settlements.imports import import_settlement_file
from shared.settlements.listing import (
    get_file,
    get_payout,
    list_files,
    list_payouts,
    original_chunks,
)

blueprint = Blueprint("settlements", __name__)

FILES = "/billing/settlements/files"
PAYOUTS = "/billing/settlements/payouts"
MULTIPART = "multipart/form-data"
UPLOAD_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary"}},
}
ORIGINAL_SCHEMA = {"type": "string", "format": "binary"}


def _json(model, status: int = 200) -> Response:
    response = jsonify(model.model_dump(mode="json"))
    response.status_code = status
    return response


@blueprint.post(FILES)
@documented(
    query=UploadQuery,
    body_schema=UPLOAD_SCHEMA,
    body_media=MULTIPART,
    responses={200: SettlementFileOut, 201: SettlementFileOut},
    errors=(404,),
)
@endpoint(roles=TRIAGE_ROLES)
def upload_settlement_file(session: Session, caller: Caller) -> Response:
    """Import a settlement report (multipart field ``file``): 201 with its summary.

    The same file again answers 200 with the earlier import. A file of no known layout,
    or with a bad cell, is 422 naming the layouts expected or the row and column, and
    nothing of it is stored. Larger than ``SETTLEMENT_MAX_BYTES``: 413.
    """
    query = parse_query(UploadQuery)
    if request.mimetype != MULTIPART:
        raise UnsupportedMediaType("send the file as multipart/form-data, field 'file'")
    limit = request.max_content_length = get_settings().settlement_max_bytes
    if request.content_length is not None and request.content_length > limit:
        # Refused before werkzeug spools any of it to a temporary file.
        raise RequestEntityTooLarge(f"a settlement file may be at most {limit} bytes")
    upload = request.files.get("file")
    if upload is None:
        raise ValidationFailed("send the file as multipart/form-data, field 'file'")
    with upload.stream as binary:  # a temporary file beyond 500 KB: closed either way
        imported = import_settlement_file(
            session=session,
            org_id=caller.org_id,
            binary=binary,
            filename=upload.filename or "",
            imported_by=Actor.of(caller),
            provider_account_id=query.account_id,
        )
    return _json(SettlementFileOut.model_validate(imported.file), 201 if imported.created else 200)


@blueprint.get(FILES)
@documented(query=FileListQuery, responses={200: SettlementFilePage}, errors=(400,))
@endpoint(roles=TRIAGE_ROLES)
def settlement_files(session: Session, caller: Caller) -> Response:
    """The organisation's imported settlement files, newest first (cursor pagination)."""
    query = parse_query(FileListQuery)
    page = list_files(session=session, org_id=caller.org_id, cursor=query.cursor, limit=query.limit)
    return _json(
        SettlementFilePage(
            items=[SettlementFileOut.model_validate(file) for file in page.items],
            next_cursor=page.next_cursor,
        )
    )


@blueprint.get(f"{FILES}/<uuid:file_id>/original")
@documented(responses={200: {"application/octet-stream": ORIGINAL_SCHEMA}})
@endpoint(roles=TRIAGE_ROLES)
def settlement_file_original(session: Session, caller: Caller, file_id: uuid.UUID) -> Response:
    """The file exactly as it was uploaded, byte for byte.

    Streamed a stored chunk (1 MiB) at a time, read in a unit of work of its own opened
    when the body starts (the request's has committed by then).
    """
    file = get_file(session=session, org_id=caller.org_id, file_id=file_id)

    def chunks() -> Iterator[bytes]:
        with unit_of_work() as reading:
            yield from original_chunks(session=reading, file_id=file_id)

    response = Response(chunks(), mimetype="application/octet-stream")
    response.headers["Content-Length"] = str(file.size_bytes)
    response.headers.set("Content-Disposition", "attachment", filename=file.filename)
    return response


@blueprint.get(PAYOUTS)
@documented(query=PayoutListQuery, responses={200: PayoutPage}, errors=(400,))
@endpoint(roles=TRIAGE_ROLES)
def settlement_payouts(session: Session, caller: Caller) -> Response:
    """Payouts, newest booked first, each with its lines' net and the difference."""
    query = parse_query(PayoutListQuery)
    page = list_payouts(
        session=session,
        org_id=caller.org_id,
        filters=query.filters(),
        cursor=query.cursor,
        limit=query.limit,
    )
    items = [PayoutOut.of(view) for view in page.items]
    return _json(PayoutPage(items=items, next_cursor=page.next_cursor))


@blueprint.get(f"{PAYOUTS}/<uuid:payout_id>")
@documented(responses={200: PayoutDetailOut})
@endpoint(roles=TRIAGE_ROLES)
def settlement_payout(session: Session, caller: Caller, payout_id: uuid.UUID) -> Response:
    """A payout with its fee breakdown and its lines."""
    detail = get_payout(session=session, org_id=caller.org_id, payout_id=payout_id)
    return _json(PayoutDetailOut.of_detail(detail))
