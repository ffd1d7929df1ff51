"""Webhook ingestion: verify, store once, commit, then enqueue — and never lose an event.

The order is the guarantee. An event is a row in PostgreSQL before anything else
happens; the queue only says "look at row X". If the enqueue fails (Redis down, the
process dies between commit and send), the row stays ``pending`` and
:func:`sweep_pending_events` enqueues it again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.dispatch import send_after_commit
from shared.errors import NotFound
from shared.logs import get_logger
from shared.models import ProviderAccount, ProviderEvent
from shared.pagination import Page, decode_cursor, page_of
from shared.providers import VerifiedEvent
from shared.providers.adyen import parse_adyen_notification
from shared.providers.standard import parse_standard_event
from shared.providers.stripe import SIGNATURE_HEADER, parse_stripe_event
from shared.settings import get_settings

PROCESS_EVENT = "worker.tasks.process_event"
WEBHOOK_QUEUE = "webhooks"

log = get_logger(__name__)

Parser = Callable[[bytes, Mapping[str, str], list[str], float, int], list[VerifiedEvent]]

PARSERS: dict[str, Parser] = {
    "stripe": lambda body, headers, secrets, now, tolerance: parse_stripe_event(
        body, headers.get(SIGNATURE_HEADER), secrets, now=now, tolerance=tolerance
    ),
    "adyen": lambda body, headers, secrets, now, tolerance: parse_adyen_notification(body, secrets),
    "standard": lambda body, headers, secrets, now, tolerance: parse_standard_event(
        body,
        {
            name: headers.get(name)
            for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
        },
        secrets,
        now=now,
        tolerance=tolerance,
    ),
}


@dataclass(frozen=True)
class IngestResult:
    """What a webhook request delivered: events in it, and how many were new."""

    received: int
    stored: int


def webhook_account(*, session: Session, provider: str, account_id: uuid.UUID) -> ProviderAccount:
    """The active account behind a webhook URL, or NotFound (also for a provider mismatch)."""
    account = session.get(ProviderAccount, account_id)
    if account is None or account.provider != provider or not account.active:
        raise NotFound(f"no active {provider} webhook endpoint {account_id}")
    return account


def store_events(
    *, session: Session, account: ProviderAccount, events: list[VerifiedEvent]
) -> list[uuid.UUID]:
    """Insert the events once each (``ON CONFLICT DO NOTHING``); return the new rows' ids."""
    rows = [
        {
            "id": uuid.uuid4(),
            "org_id": account.org_id,
            "provider_account_id": account.id,
            "provider": account.provider,
            "provider_event_id": event.provider_event_id,
            "event_type": event.event_type,
            "payload": event.payload,
            "signature_verified": True,
        }
        for event in events
    ]
    statement = (
        insert(ProviderEvent)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["provider_account_id", "provider_event_id"])
        .returning(ProviderEvent.id)
    )
    return list(session.scalars(statement))


def ingest_webhook(
    *,
    session: Session,
    provider: str,
    account_id: uuid.UUID,
    body: bytes,
    headers: Mapping[str, str],
    now: float | None = None,
) -> IngestResult:
    """Verify a webhook request and store its events; processing is enqueued after commit.

    Raises NotFound for an unknown endpoint, InvalidSignature / MalformedPayload (400) or
    ValidationFailed (422) for input that is not authentic or not understood — in every
    such case nothing is stored and nothing is queued.
    """
    account = webhook_account(session=session, provider=provider, account_id=account_id)
    settings = get_settings()
    events = PARSERS[provider](
        body,
        headers,
        account.signing_secrets,
        time.time() if now is None else now,
        settings.webhook_tolerance_seconds,
    )
    new_ids = store_events(session=session, account=account, events=events)
    send_after_commit(session, PROCESS_EVENT, [str(event_id) for event_id in new_ids])
    log.info(
        "webhook.stored",
        provider=provider,
        account_id=str(account.id),
        received=len(events),
        stored=len(new_ids),
    )
    return IngestResult(received=len(events), stored=len(new_ids))


def list_events(
    *,
    session: Session,
    org_id: uuid.UUID,
    state: str | None,
    cursor: str | None,
    limit: int,
) -> Page[ProviderEvent]:
    """The organisation's events, newest first, optionally of one state."""
    query = select(ProviderEvent).where(ProviderEvent.org_id == org_id)
    if state is not None:
        query = query.where(ProviderEvent.state == state)
    if cursor is not None:
        received_at, event_id = decode_cursor(cursor, (datetime, uuid.UUID))
        query = query.where(
            tuple_(ProviderEvent.received_at, ProviderEvent.id) < tuple_(received_at, event_id)
        )
    query = query.order_by(ProviderEvent.received_at.desc(), ProviderEvent.id.desc())
    rows = list(session.scalars(query.limit(limit + 1)))
    return page_of(rows, limit, lambda event: (event.received_at, event.id))


def replay_event(*, session: Session, org_id: uuid.UUID, event_id: uuid.UUID) -> ProviderEvent:
    """Put an event of the organisation back to ``pending`` and enqueue it after commit."""
    event = session.scalars(
        select(ProviderEvent)
        .where(ProviderEvent.id == event_id, ProviderEvent.org_id == org_id)
        .with_for_update()
    ).one_or_none()
    if event is None:
        raise NotFound(f"webhook event {event_id} does not exist")
    event.state = "pending"
    event.last_error = None
    event.processed_at = None
    send_after_commit(session, PROCESS_EVENT, [str(event.id)])
    log.info("event.replay_requested", event_id=str(event.id), provider=event.provider)
    return event


def sweep_pending_events(
    *, session: Session, older_than_seconds: int, batch: int, backlog: int
) -> int:
    """Enqueue events still ``pending`` after ``older_than_seconds``; return how many.

    ``backlog`` is the webhook queue's current length. While it holds more than a batch,
    the workers are behind and the pending events are most likely in that backlog: the
    sweep waits for it to drain rather than pile duplicates on top (duplicates are
    harmless — processing is idempotent — only wasteful).
    """
    if backlog > batch:
        log.info("events.sweep_deferred", backlog=backlog)
        return 0
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    event_ids = list(
        session.scalars(
            select(ProviderEvent.id)
            .where(ProviderEvent.state == "pending", ProviderEvent.received_at < cutoff)
            .order_by(ProviderEvent.received_at)
            .limit(batch)
        )
    )
    send_after_commit(session, PROCESS_EVENT, [str(event_id) for event_id in event_ids])
    if event_ids:
        log.info("events.swept", count=len(event_ids))
    return len(event_ids)
