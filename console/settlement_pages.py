"""Imported settlement files: their list with summaries, the original of each, and the
upload form (the API's import: the same summary, the same refusals)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from flask import Response, render_template
from sqlalchemy.orm import Session

from console.cash_forms import FilesQuery, SettlementUploadForm
from console.forms import parse_form, parse_query, uploaded_file
from console.web import accepts_upload, blueprint, page
from shared.access.api_keys import TRIAGE_ROLES, Caller
from shared.access.settings_log import Actor
from shared.models import SettlementFile
from shared.platform.db import unit_of_work
from shared.platform.errors import ValidationFailed
from shared.platform.settings import get_settings
from shared.providers.accounts import list_provider_accounts
from shared.settlements.imports import import_settlement_file
from shared.settlements.listing import get_file, list_files, original_chunks

PAGE_SIZE = 50
CHOOSE_A_FILE = "choose a settlement file to upload"


def render_settlements(
    session: Session,
    caller: Caller,
    *,
    imported: SettlementFile | None = None,
    created: bool = False,
    error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The settlements page (its cursor from the query string), with the file just
    imported or the refusal above the list."""
    query = parse_query(FilesQuery)
    files = list_files(session=session, org_id=caller.org_id, cursor=query.cursor, limit=PAGE_SIZE)
    may_upload = caller.role in TRIAGE_ROLES
    accounts = list_provider_accounts(session=session, org_id=caller.org_id) if may_upload else []
    html = render_template(
        "console/settlements.html",
        caller=caller,
        query=query,
        page=files,
        may_upload=may_upload,
        accounts=accounts,
        imported=imported,
        created=created,
        error=error,
    )
    return html, status


@blueprint.get("/settlements")
@page()
def settlements(session: Session, caller: Caller) -> tuple[str, int]:
    """The organisation's imported settlement files, newest first, with their summaries;
    owners and managers also get the upload form."""
    return render_settlements(session, caller)


@blueprint.post("/settlements")
@page(roles=TRIAGE_ROLES)
@accepts_upload(lambda: get_settings().settlement_max_bytes)
def upload_settlements(session: Session, caller: Caller) -> tuple[str, int]:
    """Import the uploaded file (201 with its summary; the same bytes again: 200 with the
    earlier import). A refusal (no file, unknown layout, a bad cell named by row and
    column) is a message on the page, and nothing of the file is stored."""
    try:
        form = parse_form(SettlementUploadForm)
        upload = uploaded_file(CHOOSE_A_FILE)
        # A refusal anywhere in the file rolls back everything the import wrote.
        with session.begin_nested(), upload.stream as binary:
            outcome = import_settlement_file(
                session=session,
                org_id=caller.org_id,
                binary=binary,
                filename=upload.filename,
                imported_by=Actor.of(caller),
                provider_account_id=form.account_id,
            )
    except ValidationFailed as refused:  # its detail names the row and column
        return render_settlements(session, caller, error=refused.detail, status=refused.status)
    return render_settlements(
        session,
        caller,
        imported=outcome.file,
        created=outcome.created,
        status=201 if outcome.created else 200,
    )


@blueprint.get("/settlements/<uuid:file_id>/original")
@page()
def settlement_original(session: Session, caller: Caller, file_id: uuid.UUID) -> Response:
    """The file exactly as it was uploaded (another organisation's: the 404 page)."""
    file = get_file(session=session, org_id=caller.org_id, file_id=file_id)

    def chunks() -> Iterator[bytes]:
        with unit_of_work() as reading:
            yield from original_chunks(session=reading, file_id=file_id)

    response = Response(chunks(), mimetype="application/octet-stream")
    response.headers["Content-Length"] = str(file.size_bytes)
    response.headers.set("Content-Disposition", "attachment", filename=file.filename)
    return response
