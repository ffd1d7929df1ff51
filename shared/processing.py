"""Processing a stored provider event: at most once in effect, whatever the deliveries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.logs import get_logger
from shared.models import ProviderEvent

log = get_logger(__name__)


def process_provider_event(*, session: Session, event_id: uuid.UUID) -> str:
    """Process the event ``event_id`` once; return its state afterwards.

    The row is locked for the transaction, so concurrent deliveries of the same task
    serialise, and an event already processed is left alone (tasks are redelivered by
    design: acks_late, the pending sweep, replays).
    """
    event = session.scalars(
        select(ProviderEvent).where(ProviderEvent.id == event_id).with_for_update()
    ).one_or_none()
    if event is None:
        log.warning("event.missing", event_id=str(event_id))
        return "missing"
    if event.state == "processed":
        return event.state
    event.attempts += 1
    event.state = "processed"
    event.last_error = None
    event.processed_at = datetime.now(UTC)
    log.info("event.processed", event_id=str(event.id), event_type=event.event_type)
    return event.state
