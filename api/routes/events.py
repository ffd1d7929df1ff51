"""Operators' view of webhook events: list by state, replay one."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify
from sqlalchemy.orm import Session

from api.endpoint import endpoint
from api.openapi import documented
from api.requests import parse_query
from api.schemas import EventListQuery, WebhookEventOut, WebhookEventPage
from shared.access.api_keys import TRIAGE_ROLES, Caller
from shared.ingest.events import list_events, replay_event

blueprint = Blueprint("events", __name__)


@blueprint.get("/billing/webhooks/events")
@documented(query=EventListQuery, responses={200: WebhookEventPage}, errors=(400,))
@endpoint(roles=TRIAGE_ROLES)
def list_webhook_events(session: Session, caller: Caller) -> Response:
    """The organisation's webhook events, newest first (cursor pagination).

    ``state`` filters, and may repeat: ``?state=failed&state=pending`` lists in one call
    the events that need attention (each can then be replayed).
    """
    query = parse_query(EventListQuery)
    page = list_events(
        session=session,
        org_id=caller.org_id,
        states=query.state or (),
        cursor=query.cursor,
        limit=query.limit,
    )
    body = WebhookEventPage(
        items=[WebhookEventOut.model_validate(event) for event in page.items],
        next_cursor=page.next_cursor,
    )
    return jsonify(body.model_dump(mode="json"))


@blueprint.post("/billing/webhooks/events/<uuid:event_id>/replay")
@documented(responses={202: WebhookEventOut})
@endpoint(roles=TRIAGE_ROLES)
def replay_webhook_event(session: Session, caller: Caller, event_id: uuid.UUID) -> Response:
    """Process an event again (a failed one after a fix, or a processed one to re-check)."""
    event = replay_event(session=session, org_id=caller.org_id, event_id=event_id)
    session.flush()
    response = jsonify(WebhookEventOut.model_validate(event).model_dump(mode="json"))
    response.status_code = 202
    return response
