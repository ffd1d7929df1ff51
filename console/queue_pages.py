"""The queue (discrepancies to work on, filtered, a page at a time, with their ageing,
exportable as CSV, acted on in bulk) and one discrepancy's page: its evidence, its
history, and the actions on it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Response, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from console.forms import (
    AGES,
    PAGE_SIZES,
    QUEUE_STATUSES,
    AcknowledgeForm,
    AssignForm,
    NoteForm,
    QueueQuery,
    ResolveForm,
    VersionedForm,
    parse_bulk_form,
    parse_form,
    parse_query,
)
from console.web import blueprint, current_session, page, safe_next
from shared.access.api_keys import TRIAGE_ROLES, Caller
from shared.access.console_sessions import session_caller
from shared.access.organizations import get_organization
from shared.access.users import list_users
from shared.discrepancies.ageing import ageing_summary
from shared.discrepancies.bulk import BULK_ACTIONS, apply_bulk
from shared.discrepancies.evidence import discrepancy_evidence
from shared.discrepancies.lifecycle import (
    RESOLUTION_CODES,
    acknowledge,
    add_note,
    assign_to_person,
    resolve,
)
from shared.discrepancies.listing import (
    DiscrepancyFilters,
    csv_chunks,
    iter_discrepancies,
    list_discrepancies,
)
from shared.models import DISCREPANCY_PROVIDERS, DISCREPANCY_TYPES, SEVERITIES
from shared.platform.db import unit_of_work
from shared.platform.errors import InvalidTransition, PreconditionFailed, ValidationFailed

STALE = (
    "Someone changed this discrepancy while you were reading it. This is how it is now: "
    "check it, then try again."
)


def _queue_choices(session: Session, caller: Caller) -> dict[str, Any]:
    """What the queue's filter and bulk forms offer."""
    may_act = caller.role in TRIAGE_ROLES
    return {
        "statuses": QUEUE_STATUSES,
        "types": DISCREPANCY_TYPES,
        "severities": SEVERITIES,
        "providers": DISCREPANCY_PROVIDERS,
        "ages": AGES,
        "sizes": PAGE_SIZES,
        "may_act": may_act,
        "actions": BULK_ACTIONS,
        "resolutions": RESOLUTION_CODES,
        "people": list_users(session=session, org_id=caller.org_id) if may_act else [],
    }


def _queue_filters(
    session: Session, caller: Caller, query: QueueQuery, now: datetime
) -> DiscrepancyFilters:
    return query.filters(now, get_organization(session=session, org_id=caller.org_id).timezone)


@blueprint.get("/")
@page()
def queue(session: Session, caller: Caller) -> str | tuple[str, int]:
    """Discrepancies to work on (open and acknowledged unless filtered), newest first, with
    the ageing summary of the same filter and (owners and managers) the bulk form."""
    choices = _queue_choices(session, caller)
    now = datetime.now(UTC)
    try:
        query = parse_query(QueueQuery)
        filters = _queue_filters(session, caller, query, now)
        result = list_discrepancies(
            session=session,
            org_id=caller.org_id,
            filters=filters,
            sort=query.sort,
            cursor=query.cursor,
            limit=query.size,
        )
    except ValidationFailed as invalid:
        page_ = render_template(
            "console/queue.html", caller=caller, query=QueueQuery(), error=invalid.detail, **choices
        )
        return page_, invalid.status
    ageing = ageing_summary(session=session, org_id=caller.org_id, filters=filters, now=now)
    return render_template(
        "console/queue.html", caller=caller, query=query, page=result, ageing=ageing, **choices
    )


@blueprint.post("/bulk")
@page(roles=TRIAGE_ROLES)
def bulk(session: Session, caller: Caller) -> tuple[str, int]:
    """One action with one reason on the ticked rows; what changed and each row refused.
    Input wrong for every row changes nothing and says why."""
    # The queue as it was filtered, to go back to (a console path only: no open redirect).
    back = safe_next(request.form.get("back"))
    try:
        form = parse_bulk_form()
        outcome = apply_bulk(
            session=session, caller=caller, targets=form.targets(), change=form.change()
        )
    except ValidationFailed as invalid:
        html = render_template("console/bulk.html", caller=caller, error=invalid.detail, back=back)
        return html, invalid.status
    html = render_template(
        "console/bulk.html", caller=caller, action=form.action, outcome=outcome, back=back
    )
    return html, 200


@blueprint.get("/queue.csv")
@page()
def queue_csv(session: Session, caller: Caller) -> Response:
    """The queue's current filter, every page, as CSV (read while it is sent)."""
    query = parse_query(QueueQuery)
    filters = _queue_filters(session, caller, query, datetime.now(UTC))

    def chunks() -> Iterator[str]:
        with unit_of_work() as reading:
            yield from csv_chunks(
                iter_discrepancies(
                    session=reading, org_id=caller.org_id, filters=filters, sort=query.sort
                )
            )

    response = Response(chunks(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="discrepancies.csv"'
    return response


def render_detail(
    session: Session,
    caller: Caller,
    discrepancy_id: uuid.UUID,
    notice: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The discrepancy's page (NotFound in another organisation), with ``notice`` on top."""
    evidence = discrepancy_evidence(
        session=session, org_id=caller.org_id, discrepancy_id=discrepancy_id
    )
    people = list_users(session=session, org_id=caller.org_id)
    html = render_template(
        "console/detail.html",
        caller=caller,
        evidence=evidence,
        view=evidence.detail.discrepancy,
        people=people,
        names={person.email: person.name for person in people},
        may_act=caller.role in TRIAGE_ROLES,
        resolutions=RESOLUTION_CODES,
        notice=notice,
    )
    return html, status


@blueprint.get("/discrepancies/<uuid:discrepancy_id>")
@page()
def detail(session: Session, caller: Caller, discrepancy_id: uuid.UUID) -> tuple[str, int]:
    """One discrepancy: both sides compared, the provider's events, items, the action log
    and (owners and managers) the actions."""
    return render_detail(session, caller, discrepancy_id)


def action_page(
    suffix: str, form_model: type[VersionedForm], action: Callable[..., Any]
) -> Callable[[uuid.UUID], Response | tuple[str, int]]:
    """A POST page that applies ``action`` with the form's fields, then shows the
    discrepancy again; a refusal (stale version, wrong state, bad field) is a message on
    the discrepancy's page, never an error page."""

    def view(discrepancy_id: uuid.UUID) -> Response | tuple[str, int]:
        try:
            with unit_of_work() as session:
                caller = session_caller(
                    session=session, record=current_session(), roles=TRIAGE_ROLES
                )
                form = parse_form(form_model)
                action(
                    session=session,
                    caller=caller,
                    discrepancy_id=discrepancy_id,
                    expected_version=form.version,
                    **form.fields(),
                )
        except (PreconditionFailed, InvalidTransition, ValidationFailed) as refused:
            notice = STALE if isinstance(refused, PreconditionFailed) else refused.detail
            with unit_of_work() as session:
                return render_detail(session, caller, discrepancy_id, notice, refused.status)
        return redirect(url_for("console.detail", discrepancy_id=discrepancy_id), code=303)

    view.__name__ = f"{suffix}_discrepancy"
    view.console_roles = TRIAGE_ROLES  # read by the auth-matrix test
    rule = f"/discrepancies/<uuid:discrepancy_id>/{suffix}"
    return blueprint.post(rule, endpoint=view.__name__)(view)


action_page("acknowledge", AcknowledgeForm, acknowledge)
action_page("assign", AssignForm, assign_to_person)
action_page("notes", NoteForm, add_note)
action_page("resolve", ResolveForm, resolve)
