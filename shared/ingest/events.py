"""Webhook ingestion: verify, store once, commit, then enqueue — and never lose an event.

The order is the guarantee. An event is a row in PostgreSQL before anything else
happens; the queue only says "look at row X". If the enqueue fails (Redis down, the
process dies between commit and send), the row stays ``pending`` and
:func:`sweep_pending_events` enqueues it again.

Deliveries that arrive together in one process are stored together (group commit,
:mod:`shared.platform.group_commit`): one INSERT, one commit and one LPUSH for all of them, and
each request is answered only once its own rows are committed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from psycopg.types.json import Jsonb
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from shared.models import EVENT_STATES, ProviderAccount, ProviderEvent
from shared.platform.cache import PROVIDER_ACCOUNT, TimedCache
from shared.platform.db import single_statement
from shared.platform.dispatch import send_after_commit, send_messages, task_message
from shared.platform.errors import NotFound
from shared.platform.group_commit import GroupCommit
from shared.platform.logs import current_request_id, get_logger
from shared.platform.pagination import Page, newest_first
from shared.platform.settings import get_settings
from shared.platform.tasks import PROCESS_EVENT
from shared.providers import VerifiedEvent
from shared.providers.interface import WebhookRequest
from shared.providers.registry import provider_named
from shared.providers.webhook_input import InvalidSignature

WEBHOOK_QUEUE = "webhooks"
IGNORED = "ignored"
# What the event list filters on: a stored state, or ``ignored`` (processed, acted on nothing).
EVENT_LIST_STATES = (*EVENT_STATES, IGNORED)

log = get_logger(__name__)


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
_accounts: TimedCache[uuid.UUID, WebhookAccount] = TimedCache(
    ACCOUNT_CACHE_SECONDS, topic=PROVIDER_ACCOUNT
)


def forget_cached_accounts() -> None:
    """Empty this process's account cache."""
    _accounts.clear()


def _read_account(account_id: uuid.UUID) -> WebhookAccount | None:
    with single_statement() as connection:
        row = connection.execute(
            select(
                ProviderAccount.id,
                ProviderAccount.org_id,
                ProviderAccount.provider,
                ProviderAccount.signing_secrets,
            ).where(ProviderAccount.id == account_id, ProviderAccount.active.is_(True))
        ).one_or_none()
    return None if row is None else WebhookAccount(*row)


def load_webhook_account(
    *, provider: str, account_id: uuid.UUID, fresh: bool = False
) -> WebhookAccount:
    """The active account behind a webhook URL, or NotFound (also for a provider mismatch).

    Accounts are cached per process for ACCOUNT_CACHE_SECONDS; ``fresh`` asks for a
    database read made after this call began. A deactivated account or a removed secret
    therefore stops working within seconds, while a new secret works at once (see
    :func:`verify_delivery`). Concurrent requests that miss the cache share one read
    (one connection), rather than each taking a connection at the same moment.
    """
    account = _accounts.get(account_id, lambda: _read_account(account_id), fresh=fresh)
    if account is None or account.provider != provider:
        raise NotFound(f"no active {provider} webhook endpoint {account_id}")
    return account


def verify_delivery(
    *,
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
    account = load_webhook_account(provider=provider, account_id=account_id)
    verify = provider_named(provider).verify
    arrived = WebhookRequest(body, headers, now)
    try:
        return account, verify(arrived, account.secrets, tolerance=tolerance)
    except InvalidSignature:
        fresh = load_webhook_account(provider=provider, account_id=account_id, fresh=True)
        if fresh.secrets == account.secrets:
            raise
        return fresh, verify(arrived, fresh.secrets, tolerance=tolerance)


@dataclass(frozen=True)
class Delivery:
    """The verified events of one request, waiting to be stored with the request's id."""

    account: WebhookAccount
    events: list[VerifiedEvent]
    request_id: str | None


# Rows of one statement: a bound on one batch's work, and on the wait of its callers.
MAX_ROWS_PER_INSERT = 300
# One text whatever the row count: six array parameters. psycopg therefore caches its
# parsing and prepares it once, where a VALUES list per row count was parsed again for
# every batch of more than 8 rows (psycopg caches queries of at most 50 parameters).
INSERT_EVENTS_SQL = (
    "INSERT INTO provider_events (org_id, provider_account_id, provider, provider_event_id, "
    "event_type, payload, signature_verified) "
    "SELECT org_id, account_id, provider, event_id, event_type, payload, true FROM unnest("
    "%b::uuid[], %b::uuid[], %b::text[], %b::text[], %b::text[], %b::jsonb[]) "
    "AS batch (org_id, account_id, provider, event_id, event_type, payload) "
    "ON CONFLICT (provider_account_id, provider_event_id) DO NOTHING "
    "RETURNING id, provider_account_id, provider_event_id"
)


def _as_sent(body: bytes) -> bytes:
    return body


def _payload(event: VerifiedEvent) -> Jsonb:
    """The event's JSONB parameter: its verified body as sent when it is the whole body.

    That body already passed :func:`shared.providers.webhook_input.parse_json_document`, so
    PostgreSQL reads it as the same document; serialising the parsed payload again was
    about a twentieth of a webhook's CPU.
    """
    if event.raw is None:
        return Jsonb(event.payload)
    return Jsonb(event.raw, dumps=_as_sent)


def _insert(deliveries: Sequence[Delivery]) -> list[list[uuid.UUID]]:
    """Insert every event of ``deliveries`` in one autocommit statement; new ids of each.

    The statement is atomic and committed when it returns. An event whose key is already
    stored — or appears earlier in the same statement — is a duplicate: it gets no id.
    """
    columns: tuple[list[object], ...] = ([], [], [], [], [], [])
    org_ids, account_ids, providers, event_ids, event_types, payloads = columns
    for delivery in deliveries:
        account = delivery.account
        for event in delivery.events:
            org_ids.append(account.org_id)
            account_ids.append(account.id)
            providers.append(account.provider)
            event_ids.append(event.provider_event_id)
            event_types.append(event.event_type)
            payloads.append(_payload(event))
    if not event_ids:
        return [[] for _ in deliveries]
    with single_statement() as connection:
        inserted = {
            (account_id, event_id): new_id
            for new_id, account_id, event_id in connection.exec_driver_sql(
                INSERT_EVENTS_SQL, columns
            )
        }
    outcomes = []
    for delivery in deliveries:
        new_ids = []
        for event in delivery.events:
            new_id = inserted.pop((delivery.account.id, event.provider_event_id), None)
            if new_id is not None:
                new_ids.append(new_id)
        outcomes.append(new_ids)
    return outcomes


def _store_and_queue(deliveries: list[Delivery]) -> list[list[uuid.UUID] | Exception]:
    """Store a batch of deliveries, commit, then queue one task per new event (one LPUSH).

    If PostgreSQL refuses the batch for a reason other than being unreachable, each
    delivery is stored on its own, so that a row it refuses fails only its own request.
    """
    try:
        outcomes: list[list[uuid.UUID] | Exception] = list(_insert(deliveries))
    except DBAPIError as error:
        if len(deliveries) == 1 or isinstance(error, OperationalError):
            raise
        outcomes = []
        for delivery in deliveries:
            try:
                outcomes += _insert([delivery])
            except DBAPIError as own_error:
                outcomes.append(own_error)
    messages = [
        task_message(PROCESS_EVENT, [str(event_id)], request_id=delivery.request_id)
        for delivery, new_ids in zip(deliveries, outcomes, strict=True)
        if not isinstance(new_ids, Exception)
        for event_id in new_ids
    ]
    send_messages(PROCESS_EVENT, messages)
    return outcomes


_deliveries: GroupCommit[Delivery, list[uuid.UUID]] = GroupCommit(
    _store_and_queue,
    max_weight=MAX_ROWS_PER_INSERT,
    weight=lambda delivery: len(delivery.events),
)


def store_delivery(delivery: Delivery) -> list[uuid.UUID]:
    """Store the delivery's events once each and queue the new ones; their ids.

    Returns only once the rows are committed (together with any other delivery that
    was waiting in this process); raises the database's error otherwise, with nothing of
    this delivery stored.
    """
    return _deliveries.submit(delivery)


def ingest_webhook(
    *,
    provider: str,
    account_id: uuid.UUID,
    body: bytes,
    headers: Mapping[str, str],
    now: float | None = None,
) -> IngestResult:
    """Verify a webhook delivery, store its events, then queue their processing.

    This is its own unit of work: the events are committed by one autocommit INSERT
    (:func:`store_delivery`), and only then queued. Raises NotFound for an unknown
    endpoint, InvalidSignature / MalformedPayload (400) or ValidationFailed (422) for
    input that is not authentic or not understood — in every such case nothing is
    stored and nothing is queued.
    """
    account, events = verify_delivery(
        provider=provider,
        account_id=account_id,
        body=body,
        headers=headers,
        now=time.time() if now is None else now,
    )
    new_ids = store_delivery(Delivery(account, events, current_request_id()))
    return IngestResult(received=len(events), stored=len(new_ids))


def list_events(
    *,
    session: Session,
    org_id: uuid.UUID,
    states: Sequence[str] = (),
    cursor: str | None,
    limit: int,
) -> Page[ProviderEvent]:
    """The organisation's events, newest first; with ``states`` (any of
    :data:`EVENT_LIST_STATES`; ``ignored``: processed, with the reason it was ignored),
    only the events in one of them: ``("failed", "pending")`` is what needs attention."""
    query = select(ProviderEvent).where(ProviderEvent.org_id == org_id)
    if states:
        query = query.where(or_(*(_in_state(state) for state in states)))
    newest = (ProviderEvent.received_at, ProviderEvent.id)
    return newest_first(query, newest, session=session, cursor=cursor, limit=limit)


def _in_state(state: str) -> ColumnElement[bool]:
    if state == IGNORED:
        return and_(ProviderEvent.state == "processed", ProviderEvent.ignored_reason.is_not(None))
    return ProviderEvent.state == state


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


# min() over the partial index ix_provider_events_pending reads one index entry, however
# large the table (0.07 ms with 1,000,000 events, docs/decisions.md).
OLDEST_PENDING_AGE = select(
    func.coalesce(
        func.extract(
            "epoch",
            func.statement_timestamp()
            - select(func.min(ProviderEvent.received_at))
            .where(ProviderEvent.state == "pending")
            .scalar_subquery(),
        ),
        0,
    )
)


def oldest_pending_event_age(session: Session) -> float:
    """Seconds since the oldest still-``pending`` event was received (0 when none)."""
    return float(session.scalar(OLDEST_PENDING_AGE))
