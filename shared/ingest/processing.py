"""Processing stored provider events: at most once in effect, whatever the deliveries.

Events are processed in batches. The task of event X claims X and up to
``EVENT_BATCH - 1`` other pending events, oldest first (``FOR UPDATE SKIP LOCKED``, so two
batches never share an event), normalises them and matches them together in one
:class:`shared.matching.engine.MatchBatch`, in the task's one transaction. A task message is
therefore a wake-up rather than a unit of work: when a backlog builds up, the first tasks
take it in batches, and the tasks of events already processed find nothing to do. Every
event is still judged alone by the same rules, in claim order.

Failures follow :mod:`shared.platform.failures`. A poison event ends ``failed`` alone: one
that cannot be read is failed without touching the database; should anything else raise
during a batch, the batch is undone to its savepoint and its events are processed again
one by one, each in its own savepoint, and only the one that raises again is failed.
Transient errors (lost connections, deadlocks) are never caught here: the whole
transaction rolls back, the events stay pending and the task retries.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shared.matching.engine import MatchBatch, match_settings
from shared.matching.rules import MatchSettings
from shared.models import ProviderAccount, ProviderEvent
from shared.platform.cache import ORGANIZATION, PROVIDER_ACCOUNT, TimedCache
from shared.platform.db import unit_of_work
from shared.platform.errors import ValidationFailed
from shared.platform.failures import (
    MAX_REASON_LENGTH,
    contain,
    contain_in_savepoint,
    failure_reason,
)
from shared.platform.logs import get_logger
from shared.platform.metrics import record_events
from shared.providers import Ignored, PayoutUpdate, RecordUpdate
from shared.providers.interface import AccountOptions
from shared.providers.registry import provider_named
from shared.settlements.payouts import record_payouts

log = get_logger(__name__)

EVENT_BATCH = 100
# Another transaction holds the event: it is being processed by another batch.
IN_FLIGHT = "in_flight"
SETTINGS_CACHE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """What processing reads of a provider event row."""

    id: uuid.UUID
    org_id: uuid.UUID
    provider_account_id: uuid.UUID
    provider: str
    event_type: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How processing an event ended: ``processed`` (maybe ignored) or ``failed``."""

    state: str
    ignored_reason: str | None = None
    error: str | None = None

    @property
    def counted_as(self) -> str:
        """The outcome's name in the metrics: processed, ignored or failed."""
        return "ignored" if self.ignored_reason is not None else self.state


# X unless processed (a failed one is tried again when its task is delivered again), and
# the oldest other pending events; rows another batch holds are skipped. X's row comes
# back either way, with its state, to tell "processed" from "held by another batch".
_CLAIM = text(
    "WITH own AS MATERIALIZED ("
    "SELECT id FROM provider_events WHERE id = :event_id AND state <> 'processed' "
    "FOR UPDATE SKIP LOCKED"
    "), others AS MATERIALIZED ("
    "SELECT id FROM provider_events WHERE state = 'pending' AND id <> :event_id "
    "ORDER BY received_at LIMIT :others FOR UPDATE SKIP LOCKED"
    "), claimed AS MATERIALIZED (SELECT id FROM own UNION ALL SELECT id FROM others) "
    "SELECT e.id, e.org_id, e.provider_account_id, e.provider, e.event_type, e.payload, e.state, "
    "e.id IN (SELECT id FROM claimed) AS claimed "
    "FROM provider_events e "
    "WHERE e.id = ANY(ARRAY(SELECT id FROM claimed) || CAST(:event_id AS uuid)) "
    "ORDER BY e.received_at, e.id"
)
_LOCK_ONE = text(
    "SELECT e.id, e.org_id, e.provider_account_id, e.provider, e.event_type, e.payload, e.state "
    "FROM provider_events e WHERE e.id = :event_id FOR UPDATE"
)
_STORE_OUTCOMES = text(
    "UPDATE provider_events AS e SET state = v.state, attempts = e.attempts + 1, "
    "last_error = v.last_error, "
    "ignored_reason = coalesce(v.ignored_reason, e.ignored_reason), "
    "processed_at = CASE WHEN v.state = 'processed' THEN CAST(:now AS timestamptz) "
    "ELSE e.processed_at END "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:states AS text[]), CAST(:errors AS text[]), "
    "CAST(:reasons AS text[])) AS v(id, state, last_error, ignored_reason) "
    "WHERE e.id = v.id"
)


def process_pending_events(
    *,
    session: Session,
    event_id: uuid.UUID,
    limit: int = EVENT_BATCH,
    now: datetime | None = None,
) -> str:
    """Process the event ``event_id`` and up to ``limit - 1`` other pending events; its state.

    Returns ``missing`` if there is no such event, its state once processed (or already
    processed), and :data:`IN_FLIGHT` when another transaction holds it: that one's
    outcome is then known only once it ends (:func:`process_provider_event` waits for it).
    """
    rows = session.execute(_CLAIM, {"event_id": event_id, "others": limit - 1}).all()
    claimed = [StoredEvent(*row[:6]) for row in rows if row.claimed]
    outcomes = process_events(session=session, events=claimed, now=now) if claimed else {}
    own = next((row for row in rows if row.id == event_id), None)
    if own is None:
        log.warning("event.missing", event_id=str(event_id))
        return "missing"
    if own.claimed:
        return outcomes[event_id].state
    return own.state if own.state == "processed" else IN_FLIGHT


def process_provider_event(
    *, session: Session, event_id: uuid.UUID, now: datetime | None = None
) -> str:
    """Normalise the event ``event_id`` into provider records and match them; its new state.

    The event row is locked for the transaction (waiting for a batch that holds it), so
    concurrent deliveries serialise, and an event already processed is left alone (tasks
    are redelivered by design: acks_late, the pending sweep, replays). An event this
    service does not act on is processed with ``ignored_reason``; one it cannot read ends
    ``failed`` with the reason, visible and replayable.
    """
    row = session.execute(_LOCK_ONE, {"event_id": event_id}).one_or_none()
    if row is None:
        log.warning("event.missing", event_id=str(event_id))
        return "missing"
    if row.state == "processed":
        return row.state
    event = StoredEvent(*row[:6])
    return process_events(session=session, events=[event], now=now)[event.id].state


def process_events(
    *, session: Session, events: Sequence[StoredEvent], now: datetime | None = None
) -> dict[uuid.UUID, Outcome]:
    """Process events whose rows the caller holds locked, together; each one's outcome.

    Their new states are written in one statement, and counted once the transaction
    commits.
    """
    now = now or datetime.now(UTC)
    outcomes = _outcomes(session, events, now)
    session.execute(
        _STORE_OUTCOMES,
        {
            "now": now,
            "ids": [event.id for event in events],
            "states": [outcomes[event.id].state for event in events],
            "errors": [outcomes[event.id].error for event in events],
            "reasons": [outcomes[event.id].ignored_reason for event in events],
        },
    )
    _expire_events(session, events)
    for event in events:
        _log_outcome(event, outcomes[event.id])
    counts = Counter((outcomes[event.id].counted_as, event.provider) for event in events)
    for (outcome, provider), count in counts.items():
        record_events(outcome, provider, count, session=session)
    return outcomes


def _outcomes(
    session: Session, events: Sequence[StoredEvent], now: datetime
) -> dict[uuid.UUID, Outcome]:
    if len(events) > 1:
        together = contain_in_savepoint(
            session,
            lambda: _match_together(session, events, now),
            record_failure=lambda error: None,  # one poison event must not fail the others
            crashed="events.batch_crashed",
            count=len(events),
        )
        if together is not None:
            return together
    return {event.id: _match_alone(session, event, now) for event in events}


def _match_alone(session: Session, event: StoredEvent, now: datetime) -> Outcome:
    return contain_in_savepoint(
        session,
        lambda: _match_together(session, [event], now)[event.id],
        record_failure=lambda error: Outcome("failed", error=failure_reason(error)),
        crashed="event.crashed",
        event_id=str(event.id),
    )


def _match_together(
    session: Session, events: Sequence[StoredEvent], now: datetime
) -> dict[uuid.UUID, Outcome]:
    outcomes: dict[uuid.UUID, Outcome] = {}
    work: list[tuple[StoredEvent, list[RecordUpdate]]] = []
    for event in events:
        options = _account_options(session, event.provider_account_id)
        try:
            provider = provider_named(event.provider)
            normalised = provider.normalise(event.event_type, event.payload, options)
        except ValidationFailed as error:
            outcomes[event.id] = Outcome("failed", error=error.detail[:MAX_REASON_LENGTH])
            continue
        if isinstance(normalised, Ignored):
            outcomes[event.id] = Outcome("processed", ignored_reason=normalised.reason)
        elif isinstance(normalised, PayoutUpdate):
            record_payouts(
                session=session, org_id=event.org_id, provider=event.provider,
                payouts=[normalised.payout], stated_at=normalised.event_at,
            )  # fmt: skip
            outcomes[event.id] = Outcome("processed")
        else:
            work.append((event, normalised))
    if not work:
        return outcomes
    batch = MatchBatch(
        session=session,
        now=now,
        settings={event.org_id: cached_match_settings(session, event.org_id) for event, _ in work},
    )
    batch.prepare_updates(
        [(event.org_id, event.provider, update) for event, updates in work for update in updates]
    )
    for event, updates in work:
        try:
            batch.check_updates(event.org_id, event.provider, updates)
        except ValidationFailed as error:
            outcomes[event.id] = Outcome("failed", error=error.detail[:MAX_REASON_LENGTH])
            continue
        evidence = {"event_id": str(event.id), "event_type": event.event_type}
        for update in updates:
            batch.reconcile_update(event.org_id, event.provider, update, evidence)
        outcomes[event.id] = Outcome("processed")
    batch.write()
    return outcomes


def _log_outcome(event: StoredEvent, outcome: Outcome) -> None:
    if outcome.state == "failed":
        log.warning("event.failed", event_id=str(event.id), error=outcome.error)
    else:
        log.info(
            "event.processed",
            event_id=str(event.id),
            event_type=event.event_type,
            ignored=outcome.ignored_reason is not None,
        )


def _expire_events(session: Session, events: Sequence[StoredEvent]) -> None:
    """Expire the caller's ORM copies of the event rows rewritten above."""
    for event in events:
        instance = session.identity_map.get(session.identity_key(ProviderEvent, event.id))
        if instance is not None:
            session.expire(instance)


def process_queued_event(event_id: uuid.UUID) -> str:
    """What the task of a stored event does: process it (with other pending ones); its state.

    When another task's batch holds the event, this waits for that batch's outcome (and
    processes the event itself if that batch rolled back). A transient error propagates
    (the task retries); any other failure marks the event ``failed`` with its reason.
    """

    def process() -> str:
        with unit_of_work() as session:
            state = process_pending_events(session=session, event_id=event_id)
        if state == IN_FLIGHT:
            with unit_of_work() as session:
                state = process_provider_event(session=session, event_id=event_id)
        return state

    def record_failure(error: BaseException) -> str:
        with unit_of_work() as session:
            mark_event_failed(session=session, event_id=event_id, error=error)
        return "failed"

    return contain(
        process, record_failure=record_failure, crashed="event.crashed", event_id=str(event_id)
    )


def mark_event_failed(*, session: Session, event_id: uuid.UUID, error: BaseException) -> None:
    """Record that processing the event raised unexpectedly (a poison event never loops)."""
    event = session.scalars(
        select(ProviderEvent).where(ProviderEvent.id == event_id).with_for_update()
    ).one_or_none()
    if event is None or event.state == "processed":
        return
    event.attempts += 1
    event.state = "failed"
    event.last_error = failure_reason(error)
    record_events("failed", event.provider, session=session)


# --- Per-process caches of what every event reads -----------------------------------------


# The account's columns of the same names as the options, in the options' order.
_OPTION_COLUMNS = [getattr(ProviderAccount, option.name) for option in fields(AccountOptions)]
_account_options_cache: TimedCache[uuid.UUID, AccountOptions] = TimedCache(
    SETTINGS_CACHE_SECONDS, topic=PROVIDER_ACCOUNT
)
_match_settings_cache: TimedCache[uuid.UUID, MatchSettings] = TimedCache(
    SETTINGS_CACHE_SECONDS, topic=ORGANIZATION
)


def forget_cached_settings() -> None:
    """Empty this process's caches of account options and matching settings."""
    _account_options_cache.clear()
    _match_settings_cache.clear()


def _account_options(session: Session, account_id: uuid.UUID) -> AccountOptions:
    """The account's options, read at most every SETTINGS_CACHE_SECONDS per process."""

    def read() -> AccountOptions:
        row = session.execute(select(*_OPTION_COLUMNS).where(ProviderAccount.id == account_id))
        return AccountOptions(*row.one())

    return _account_options_cache.get(account_id, read)


def cached_match_settings(session: Session, org_id: uuid.UUID) -> MatchSettings:
    """The organisation's matching settings, read at most every SETTINGS_CACHE_SECONDS."""
    return _match_settings_cache.get(org_id, lambda: match_settings(session=session, org_id=org_id))
