"""Payouts: their list (filtered, each with its lines' sum, the difference and its bank
status), one payout's page, and a person's link or unlink of its bank entry."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Response, redirect, render_template, url_for
from sqlalchemy.orm import Session

from console.cash_forms import LinkForm, PayoutQuery, PayoutsQuery, UnlinkForm
from console.forms import parse_form, parse_query
from console.web import blueprint, page
from shared.access.api_keys import TRIAGE_ROLES, Caller
from shared.access.organizations import get_organization
from shared.bank.matching import link_payout, unlink_payout
from shared.bank.payout_evidence import MAX_LINK_CANDIDATES, expected_arrival, payout_evidence
from shared.bank.payout_status import bank_statuses
from shared.models import PAYOUT_STATUSES
from shared.platform.errors import Conflict, NotFound, ValidationFailed
from shared.settlements.listing import FEE_COLUMNS, MAX_DETAIL_LINES, list_payouts

PAGE_SIZE = 50
# How each bank status reads (shared/bank/payout_status.py, ``arrival``).
ARRIVALS = {
    "linked": "linked",
    "suggested": "suggestion",
    "in_transit": "in transit",
    "not_received": "not received",
    "not_expected": "not expected",
}
DONE = {"linked": "The payout is linked to the entry.", "unlinked": "The link is undone."}


@blueprint.get("/payouts")
@page()
def payouts(session: Session, caller: Caller) -> tuple[str, int]:
    """Payouts, newest booked first, filtered by status, currency and booking days (in
    the organisation's time zone), each with its lines' net, the difference and where it
    stands at the bank."""
    choices = {"statuses": PAYOUT_STATUSES, "arrivals": ARRIVALS}
    try:
        query = parse_query(PayoutsQuery)
        time_zone = get_organization(session=session, org_id=caller.org_id).timezone
        listed = list_payouts(
            session=session,
            org_id=caller.org_id,
            filters=query.filters(time_zone),
            cursor=query.cursor,
            limit=PAGE_SIZE,
        )
    except ValidationFailed as invalid:
        html = render_template(
            "console/payouts.html", caller=caller, query=PayoutsQuery(), error=invalid.detail,
            **choices,
        )  # fmt: skip
        return html, invalid.status
    banks = bank_statuses(session=session, payouts=[view.payout for view in listed.items])
    html = render_template(
        "console/payouts.html", caller=caller, query=query, page=listed,
        rows=list(zip(listed.items, banks, strict=True)), **choices,
    )  # fmt: skip
    return html, 200


def render_payout(
    session: Session,
    caller: Caller,
    payout_id: uuid.UUID,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The payout's page (NotFound in another organisation), with a notice or a refusal."""
    evidence = payout_evidence(session=session, org_id=caller.org_id, payout_id=payout_id)
    html = render_template(
        "console/payout.html",
        caller=caller,
        evidence=evidence,
        payout=evidence.detail.view.payout,
        view=evidence.detail.view,
        arrival=ARRIVALS[evidence.bank.arrival],
        expected=expected_arrival(evidence.detail.view.payout),
        fee_names=FEE_COLUMNS,
        max_lines=MAX_DETAIL_LINES,
        max_candidates=MAX_LINK_CANDIDATES,
        may_act=caller.role in TRIAGE_ROLES,
        notice=notice,
        error=error,
    )
    return html, status


@blueprint.get("/payouts/<uuid:payout_id>")
@page()
def payout(session: Session, caller: Caller, payout_id: uuid.UUID) -> tuple[str, int]:
    """One payout: its figures, fees by component, lines, the payments they settle (with
    their discrepancies), its bank entry or the suggested ones, and the link trail."""
    done = parse_query(PayoutQuery).done
    return render_payout(session, caller, payout_id, notice=DONE[done] if done else None)


def link_action(
    suffix: str, form_model: type, act: Callable[..., Any]
) -> Callable[..., Response | tuple[str, int]]:
    """A POST page that applies a person's ``act`` with the form's fields and a reason
    (logged), then shows the payout again; a refusal (a bad field, the other currency, a
    link already there, no link to undo) is a message on the payout's page, and whatever
    the action began is rolled back."""

    @page(roles=TRIAGE_ROLES)
    def view(session: Session, caller: Caller, payout_id: uuid.UUID) -> Any:
        try:
            form = parse_form(form_model)
            with session.begin_nested():
                act(session=session, caller=caller, payout_id=payout_id,
                    now=datetime.now(UTC), **form.model_dump())  # fmt: skip
        except (ValidationFailed, Conflict, NotFound) as refused:
            return render_payout(
                session, caller, payout_id, error=refused.detail, status=refused.status
            )
        return redirect(url_for("console.payout", payout_id=payout_id, done=f"{suffix}ed"), 303)

    view.__name__ = f"{suffix}_payout"
    rule = f"/payouts/<uuid:payout_id>/{suffix}"
    return blueprint.post(rule, endpoint=view.__name__)(view)


link_action("link", LinkForm, link_payout)
link_action("unlink", UnlinkForm, unlink_payout)
