"""Webhook events that need attention (failed or pending), and replaying one."""

from __future__ import annotations

import uuid

from flask import Response, redirect, render_template, url_for
from sqlalchemy.orm import Session

from console.forms import EVENT_VIEWS, EventsQuery, parse_query
from console.web import blueprint, page
from shared.access.api_keys import TRIAGE_ROLES, Caller
from shared.ingest.events import list_events, replay_event

PAGE_SIZE = 50


@blueprint.get("/events")
@page(roles=TRIAGE_ROLES)
def events(session: Session, caller: Caller) -> str:
    """The organisation's failed and pending webhook events (or one of the two), newest
    first, each with its replay button."""
    query = parse_query(EventsQuery)
    listed = list_events(
        session=session,
        org_id=caller.org_id,
        states=query.states(),
        cursor=query.cursor,
        limit=PAGE_SIZE,
    )
    return render_template(
        "console/events.html", caller=caller, query=query, page=listed, views=EVENT_VIEWS
    )


@blueprint.post("/events/<uuid:event_id>/replay")
@page(roles=TRIAGE_ROLES)
def replay(session: Session, caller: Caller, event_id: uuid.UUID) -> Response:
    """Process the event again (NotFound in another organisation), then list the events."""
    replay_event(session=session, org_id=caller.org_id, event_id=event_id)
    return redirect(url_for("console.events", replayed=event_id), code=303)
