"""The bank: accounts (masked), statements with their balance check, entries filtered,
and the statement upload form (the API's import: the same statements, the same refusals)."""

from __future__ import annotations

from flask import render_template
from sqlalchemy.orm import Session

from console.cash_forms import BankQuery, StatementUploadForm
from console.forms import parse_form, parse_query, uploaded_file
from console.web import accepts_upload, blueprint, page
from shared.access.api_keys import TRIAGE_ROLES, Caller
from shared.bank.accounts import list_accounts
from shared.bank.entries import linked_payouts, list_entries, list_statements
from shared.bank.imports import StatementImport, import_statement_file
from shared.platform.errors import ValidationFailed
from shared.platform.pagination import MAX_LIMIT
from shared.platform.settings import get_settings

PAGE_SIZE = 50
STATEMENTS_PAGE_SIZE = 20
CHOOSE_A_FILE = "choose a statement file to upload"


def render_bank(
    session: Session,
    caller: Caller,
    *,
    imported: StatementImport | None = None,
    error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The bank page (filters and cursors from the query string), with the statements
    just imported or the refusal on top; filters it cannot take are a message, and the
    lists then show unfiltered."""
    org_id = caller.org_id
    accounts = list_accounts(session=session, org_id=org_id, cursor=None, limit=MAX_LIMIT).items
    try:
        query = parse_query(BankQuery)
        chosen = next((account for account in accounts if account.id == query.account_id), None)
        filters = query.filters(chosen.currency if chosen else None)
    except ValidationFailed as invalid:
        query, error, status = BankQuery(), invalid.detail, invalid.status
        filters = query.filters(None)
    entries = list_entries(
        session=session, org_id=org_id, filters=filters, cursor=query.cursor, limit=PAGE_SIZE
    )
    statements = list_statements(
        session=session, org_id=org_id, account_id=query.account_id,
        cursor=query.statement_cursor, limit=STATEMENTS_PAGE_SIZE,
    )  # fmt: skip
    linked = linked_payouts(session=session, entry_ids=[entry.id for entry in entries.items])
    html = render_template(
        "console/bank.html",
        caller=caller,
        query=query,
        accounts=accounts,
        names={account.id: account.name for account in accounts},
        statements=statements,
        entries=entries,
        linked=linked,
        may_upload=caller.role in TRIAGE_ROLES,
        imported=imported,
        error=error,
    )
    return html, status


@blueprint.get("/bank")
@page()
def bank(session: Session, caller: Caller) -> tuple[str, int]:
    """The organisation's bank accounts, statements and entries; owners and managers also
    get the upload form."""
    return render_bank(session, caller)


@blueprint.post("/bank")
@page(roles=TRIAGE_ROLES)
@accepts_upload(lambda: get_settings().bank_statement_max_bytes)
def upload_statement(session: Session, caller: Caller) -> tuple[str, int]:
    """Import the uploaded statement file (201 with its statements; a file already
    imported: 200 with them). An unreadable file is a message naming the place, and
    nothing of it is stored."""
    try:
        form = parse_form(StatementUploadForm)
        upload = uploaded_file(CHOOSE_A_FILE)
        # A refusal anywhere, even in the file's last statement, rolls back the import.
        with session.begin_nested(), upload.stream as binary:
            imported = import_statement_file(
                session=session,
                org_id=caller.org_id,
                binary=binary,
                filename=upload.filename,
                account_id=form.account_id,
                csv_mapping=form.csv_mapping,
            )
    except ValidationFailed as refused:
        return render_bank(session, caller, error=refused.detail, status=refused.status)
    return render_bank(session, caller, imported=imported, status=201 if imported.created else 200)
