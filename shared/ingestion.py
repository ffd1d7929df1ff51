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

from sqlalchemy import Connection, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db import single_statement
from shared.dispatch import send_after_commit, send_now
from shared.errors import NotFound
from shared.logs import get_logger
from shared.models import ProviderAccount, ProviderEvent
from shared.pagination import Page, decode_cursor, page_of
from shared.providers import VerifiedEvent
from shared.providers.adyen import parse_adyen_notification
from shared.providers.standard import parse_standard_event
from shared.providers.stripe import SIGNATURE_HEADER, parse_stripe_event
from shared.settings import get_settings
from shared.task_names import PROCESS_EVENT
from shared.webhook_input import InvalidSignature

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


@dataclass(frozen=True)
class WebhookAccount:
    """What verifying and storing a delivery needs to know about its provider account."""

    id: uuid.UUID
    org_id: uuid.UUID
    provider: str
    secrets: list[str]


ACCOUNT_CACHE_SECONDS = 5.0
_account_cache: dict[uuid.UUID, tuple[float, WebhookAccount]] = {}


def forget_cached_accounts() -> None:
    """Empty this process's account cache."""
    _account_cache.clear()


def load_webhook_account(
    *, connection: Connection, provider: str, account_id: uuid.UUID, fresh: bool = False
) -> WebhookAccount:
    """The active account behind a webhook URL, or NotFound (also for a provider mismatch).

    Accounts are cached per process for ACCOUNT_CACHE_SECONDS; ``fresh`` reads the
    database. A deactivated account or a removed secret therefore stops working within
    seconds, while a new secret works at once (see :func:`verify_delivery`).
    """
    cached = _account_cache.get(account_id)
    if not fresh and cached is not None and cached[0] > time.monotonic():
        account = cached[1]
    else:
        row = connection.execute(
            select(
                ProviderAccount.id,
                ProviderAccount.org_id,
                ProviderAccount.provider,
                ProviderAccount.signing_secrets,
            ).where(ProviderAccount.id == account_id, ProviderAccount.active.is_(True))
        ).one_or_none()
        if row is None:
            _account_cache.pop(account_id, None)
            raise NotFound(f"no active {provider} webhook endpoint {account_id}")
        account = WebhookAccount(*row)
        _account_cache[account_id] = (time.monotonic() + ACCOUNT_CACHE_SECONDS, account)
    if account.provider != provider:
        raise NotFound(f"no active {provider} webhook endpoint {account_id}")
    return account


def verify_delivery(
    *,
    connection: Connection,
    provider: str,
    account_id: uuid.UUID,
    body: bytes,
    headers: Mapping[str, str],
    now: float,
) -> tuple[WebhookAccount, list[VerifiedEvent]]:
    """The account and the verified events of a delivery (InvalidSignature if not authentic).

    A signature that fails against cached secrets is checked once more against the
    database, so a secret added during rotation is accepted immediately.
    """
    tolerance = get_settings().webhook_tolerance_seconds
    account = load_webhook_account(connection=connection, provider=provider, account_id=account_id)
    try:
        return account, PARSERS[provider](body, headers, account.secrets, now, tolerance)
    except InvalidSignature:
        fresh = load_webhook_account(
            connection=connection, provider=provider, account_id=account_id, fresh=True
        )
        if fresh.secrets == account.secrets:
            raise
        return fresh, PARSERS[provider](body, headers, fresh.secrets, now, tolerance)


INSERT_EVENTS = (
    insert(ProviderEvent)
    .on_conflict_do_nothing(index_elements=["provider_account_id", "provider_event_id"])
    .returning(ProviderEvent.id)
)


def store_events(
    *, connection: Connection, account: WebhookAccount, events: list[VerifiedEvent]
) -> list[uuid.UUID]:
    """Insert the events once each (one ``INSERT … ON CONFLICT DO NOTHING``); new ids."""
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
    # A fixed statement with parameter rows compiles once per process, and SQLAlchemy
    # sends the rows as one multi-row INSERT ("insertmanyvalues"): atomic for a
    # multi-item Adyen notification too.
    return list(connection.scalars(INSERT_EVENTS, rows))


def ingest_webhook(
    *,
    provider: str,
    account_id: uuid.UUID,
    body: bytes,
    headers: Mapping[str, str],
    now: float | None = None,
) -> IngestResult:
    """Verify a webhook delivery, store its events, then queue their processing.

    This is its own unit of work (:func:`shared.db.single_statement`): the INSERT commits
    by itself, and only then are the new events queued. Raises NotFound for an unknown
    endpoint, InvalidSignature / MalformedPayload (400) or ValidationFailed (422) for
    input that is not authentic or not understood — in every such case nothing is
    stored and nothing is queued.
    """
    with single_statement() as connection:
        account, events = verify_delivery(
            connection=connection,
            provider=provider,
            account_id=account_id,
            body=body,
            headers=headers,
            now=time.time() if now is None else now,
        )
        new_ids = store_events(connection=connection, account=account, events=events)
    send_now(PROCESS_EVENT, [str(event_id) for event_id in new_ids])
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
