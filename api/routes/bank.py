"""Bank statements: upload, the accounts and entries they brought, the accounts'
settings, and the payouts' bank status with manual links."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

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
    LinkIn,
    ListQuery,
    PayoutBankOut,
    PayoutBankPage,
    PayoutListQuery,
    StatementUploadForm,
    StatementUploadOut,
    UnlinkIn,
)
from api.endpoint import endpoint
from api.openapi import Header, documented
from api.requests import if_match_version, parse_json_body, parse_query
from shared.access.api_keys import TRIAGE_ROLES, Caller
from shared.bank.accounts import AccountSettingsChange, change_account_settings, list_accounts
from shared.bank.entries import list_entries
from shared.bank.imports import import_statement_file
from shared.bank.matching import link_payout, queue_payout_matching, unlink_payout
from shared.bank.payout_status import list_payout_statuses, payout_status
from shared.platform.errors import ValidationFailed, validate_input
from shared.platform.settings import get_settings

blueprint = Blueprint("bank", __name__)

SEND_FILE = "send the statement as multipart/form-data, field 'file'"
PAYOUT = "/billing/bank/payouts/<uuid:payout_id>"
IF_MATCH = Header("If-Match", 'The account version the change is based on ("3"): stale → 412.')


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


@blueprint.patch("/billing/bank/accounts/<uuid:bank_account_id>")
@documented(
    body=AccountSettingsChange,
    responses={200: BankAccountOut},
    headers=(IF_MATCH,),
    errors=(400, 412),
)
@endpoint(roles=TRIAGE_ROLES)
def change_bank_account(session: Session, caller: Caller, bank_account_id: uuid.UUID) -> Response:
    """Change an account's name, the providers paying into it, or its country (the
    business-day calendar; a country without one is 422). Answers the account with its
    version as the ETag; payouts are matched again after the change commits."""
    account = change_account_settings(
        session=session,
        org_id=caller.org_id,
        account_id=bank_account_id,
        change=parse_json_body(AccountSettingsChange),
        expected_version=if_match_version(),
    )
    queue_payout_matching(session, caller.org_id)
    response = _json(BankAccountOut.of(account))
    response.headers["ETag"] = f'"{account.version}"'
    return response


@blueprint.get("/billing/bank/payouts")
@documented(query=PayoutListQuery, responses={200: PayoutBankPage}, errors=(400,))
@endpoint(roles=TRIAGE_ROLES)
def bank_payouts(session: Session, caller: Caller) -> Response:
    """Payouts with their bank status (linked entry, or suggestions), newest booked first."""
    query = parse_query(PayoutListQuery)
    page = list_payout_statuses(
        session=session,
        org_id=caller.org_id,
        status=query.bank_status,
        cursor=query.cursor,
        limit=query.limit,
    )
    items = [PayoutBankOut.of(item) for item in page.items]
    return _json(PayoutBankPage(items=items, next_cursor=page.next_cursor))


@blueprint.get(PAYOUT)
@documented(responses={200: PayoutBankOut})
@endpoint(roles=TRIAGE_ROLES)
def bank_payout(session: Session, caller: Caller, payout_id: uuid.UUID) -> Response:
    """One payout with its bank status."""
    status = payout_status(session=session, org_id=caller.org_id, payout_id=payout_id)
    return _json(PayoutBankOut.of(status))


@blueprint.post(f"{PAYOUT}/link")
@documented(body=LinkIn, responses={200: PayoutBankOut}, errors=(409,))
@endpoint(roles=TRIAGE_ROLES)
def link_bank_payout(session: Session, caller: Caller, payout_id: uuid.UUID) -> Response:
    """Link the payout to an entry by hand, with a reason (both unlinked, same currency;
    409 when either is linked). Logged; the bank discrepancies are judged again."""
    body = parse_json_body(LinkIn)
    link_payout(
        session=session, caller=caller, payout_id=payout_id, entry_id=body.entry_id,
        reason=body.reason, now=datetime.now(UTC),
    )  # fmt: skip
    status = payout_status(session=session, org_id=caller.org_id, payout_id=payout_id)
    return _json(PayoutBankOut.of(status))


@blueprint.post(f"{PAYOUT}/unlink")
@documented(body=UnlinkIn, responses={200: PayoutBankOut})
@endpoint(roles=TRIAGE_ROLES)
def unlink_bank_payout(session: Session, caller: Caller, payout_id: uuid.UUID) -> Response:
    """Undo the payout's link, with a reason (404 when it has none). Logged; that pair is
    never linked again automatically; the bank discrepancies are judged again."""
    body = parse_json_body(UnlinkIn)
    unlink_payout(
        session=session, caller=caller, payout_id=payout_id, reason=body.reason,
        now=datetime.now(UTC),
    )  # fmt: skip
    status = payout_status(session=session, org_id=caller.org_id, payout_id=payout_id)
    return _json(PayoutBankOut.of(status))


@blueprint.get("/billing/bank/entries")
@documented(query=EntryListQuery, responses={200: BankEntryPage}, errors=(400,))
@endpoint(roles=TRIAGE_ROLES)
def bank_entries(session: Session, caller: Caller) -> Response:
    """Booked entries, newest booking date first, filtered (cursor pagination);
    ``unmatched=true``: those no payout is linked to."""
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
