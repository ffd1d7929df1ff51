"""Processing a stored provider event: at most once in effect, whatever the deliveries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.errors import ValidationFailed
from shared.logs import get_logger
from shared.models import ProviderAccount, ProviderEvent
from shared.normalise import normalise_event
from shared.providers import Ignored
from shared.reconcile import match_settings, reconcile_update

log = get_logger(__name__)

MAX_ERROR_LENGTH = 2000


def _locked_event(session: Session, event_id: uuid.UUID) -> ProviderEvent | None:
    return session.scalars(
        select(ProviderEvent).where(ProviderEvent.id == event_id).with_for_update()
    ).one_or_none()


def process_provider_event(
    *, session: Session, event_id: uuid.UUID, now: datetime | None = None
) -> str:
    """Normalise the event ``event_id`` into provider records and match them; its new state.

    The event row is locked for the transaction, so concurrent deliveries of the same
    task serialise, and an event already processed is left alone (tasks are redelivered
    by design: acks_late, the pending sweep, replays). An event this service does not
    act on is processed with ``ignored_reason``; one it cannot read ends ``failed`` with
    the reason, visible and replayable.
    """
    now = now or datetime.now(UTC)
    event = _locked_event(session, event_id)
    if event is None:
        log.warning("event.missing", event_id=str(event_id))
        return "missing"
    if event.state == "processed":
        return event.state
    account = session.get(ProviderAccount, event.provider_account_id)
    event.attempts += 1
    try:
        outcome = normalise_event(
            event.provider,
            event.event_type,
            event.payload,
            merchant_reference_key=account.merchant_reference_key,
            manual_capture=account.manual_capture,
        )
        if isinstance(outcome, Ignored):
            event.ignored_reason = outcome.reason
        else:
            settings = match_settings(session=session, org_id=event.org_id)
            evidence = {"event_id": str(event.id), "event_type": event.event_type}
            with session.begin_nested():
                for update in outcome:
                    reconcile_update(
                        session=session,
                        org_id=event.org_id,
                        provider=event.provider,
                        update=update,
                        settings=settings,
                        now=now,
                        evidence=evidence,
                    )
    except ValidationFailed as error:
        event.state = "failed"
        event.last_error = error.detail[:MAX_ERROR_LENGTH]
        log.warning("event.failed", event_id=str(event.id), error=event.last_error)
        return event.state
    event.state = "processed"
    event.last_error = None
    event.processed_at = now
    log.info(
        "event.processed",
        event_id=str(event.id),
        event_type=event.event_type,
        ignored=event.ignored_reason is not None,
    )
    return event.state


def mark_event_failed(*, session: Session, event_id: uuid.UUID, error: BaseException) -> None:
    """Record that processing the event raised unexpectedly (a poison event never loops)."""
    event = _locked_event(session, event_id)
    if event is None or event.state == "processed":
        return
    event.attempts += 1
    event.state = "failed"
    event.last_error = f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH]
