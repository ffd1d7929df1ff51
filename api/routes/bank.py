"""Bank statements: upload, and the accounts and entries they brought."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel
from sqlalchemy.orm import Session
from werkzeug.exceptions import UnsupportedMediaType

from api.bank_schemas import (
    MULTIPART,
    UPLOAD_SCHEMA,
    BankAccountOut,
    BankAccountPage,
    BankEntryOut,
    BankEntryPage,
    EntryListQuery,
    ListQuery,
    StatementUploadForm,
    StatementUploadOut,
)
from api.endpoint import endpoint
from api.openapi import documented
from api.requests import parse_query
from shared.access.api_keys import TRIAGE_ROLES, Caller
from shared.bank.accounts import list_accounts
from shared.bank.entries import list_entries
from shared.bank.imports import import_statement_file
from shared.platform.errors import ValidationFailed, validate_input
from shared.platform.settings import get_settings

blueprint = Blueprint("bank", __name__)

SEND_FILE = "send the statement as multipart/form-data, field 'file'"


def _json(model: BaseModel, status: int = 200) -> Response:
    response = jsonify(model.model_dump(mode="json"))
    response.status_code = status
    return response


@blueprint.post("/billing/bank/statements")
@documented(
    body_schema=UPLOAD_SCHEMA,
    body_media=MULTIPART,
    responses={200: StatementUploadOut, 201: StatementUploadOut},
    errors=(404,),
)
@endpoint(roles=TRIAGE_ROLES)
def upload_statement(session: Session, caller: Caller) -> Response:
    """Import a bank statement file (camt.053, MT940, BAI2 or CSV): 201 with its statements.

    Form fields beside ``file``: ``account_id`` (the statements must be that account's),
    ``csv_mapping`` (JSON; a CSV needs it, or one saved on ``account_id``'s account). The
    same file again, or a file whose every statement is stored, answers 200 with them.
    An unreadable file is 422 naming the place, and nothing of it is stored; larger than
    ``BANK_STATEMENT_MAX_BYTES``: 413.
    """
    if request.mimetype != MULTIPART:
        raise UnsupportedMediaType(SEND_FILE)
    request.max_content_length = get_settings().bank_statement_max_bytes
    form = validate_input(StatementUploadForm, request.form.to_dict(), "form fields are invalid")
    upload = request.files.get("file")
    if upload is None:
        raise ValidationFailed(SEND_FILE)
    with upload.stream as binary:  # a temporary file beyond 500 KB: closed either way
        imported = import_statement_file(
            session=session,
            org_id=caller.org_id,
            binary=binary,
            filename=upload.filename or "",
            account_id=form.account_id,
            csv_mapping=form.csv_mapping,
        )
    return _json(StatementUploadOut.of(imported), 201 if imported.created else 200)


@blueprint.get("/billing/bank/accounts")
@documented(query=ListQuery, responses={200: BankAccountPage}, errors=(400,))
@endpoint(roles=TRIAGE_ROLES)
def bank_accounts(session: Session, caller: Caller) -> Response:
    """The organisation's bank accounts, newest first (cursor pagination)."""
    query = parse_query(ListQuery)
    page = list_accounts(
        session=session, org_id=caller.org_id, cursor=query.cursor, limit=query.limit
    )
    items = [BankAccountOut.of(account) for account in page.items]
    return _json(BankAccountPage(items=items, next_cursor=page.next_cursor))


@blueprint.get("/billing/bank/entries")
@documented(query=EntryListQuery, responses={200: BankEntryPage}, errors=(400,))
@endpoint(roles=TRIAGE_ROLES)
def bank_entries(session: Session, caller: Caller) -> Response:
    """Booked entries, newest booking date first, filtered (cursor pagination).

    Payouts are not matched to entries yet: every entry is unmatched.
    """
    query = parse_query(EntryListQuery)
    page = list_entries(
        session=session,
        org_id=caller.org_id,
        filters=query.filters(),
        cursor=query.cursor,
        limit=query.limit,
    )
    items = [BankEntryOut.model_validate(entry) for entry in page.items]
    return _json(BankEntryPage(items=items, next_cursor=page.next_cursor))
