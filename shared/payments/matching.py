"""Matching imported payments in batches, as events are: claimed, matched together, swept.

An import writes one ``pending_payment_matches`` row per created or changed payment in its
own transaction and, once that commits, queues one argument-less wake-up task. A task
claims (deletes) up to :data:`PAYMENT_BATCH` rows, oldest first (``FOR UPDATE SKIP
LOCKED``: two batches never share a row), and matches their payments together in one
:class:`shared.matching.engine.MatchBatch` with the same rules as events, in one
transaction; it goes on, a batch per transaction, until a
claim comes back short. A wake-up is therefore never a unit of work: its message may be
lost (Redis down after the commit) or find nothing, and :func:`sweep_pending_matches`
wakes the workers for rows left waiting.

Nothing is lost. A row is deleted only by the transaction that claims it, which commits
only once its payment is matched (or its failure recorded), so a row written while its
payment was being matched stays for the next batch. Failures follow
:mod:`shared.platform.failures`: a transient error rolls the batch back (its rows stay and
the task retries); anything else undoes the batch to its savepoint and its payments are
matched again one by one, each in its own savepoint; a payment that fails alone has its
rows written back with the reason, is tried again after a growing delay, and after
:data:`MAX_MATCH_ATTEMPTS` is left ``failed_at`` — visible, never looping.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.ingest.processing import cached_match_settings
from shared.matching.engine import reconcile_payments
from shared.platform.db import unit_of_work
from shared.platform.dispatch import send_wake_ups, wake_after_commit
from shared.platform.failures import contain_in_savepoint, failure_reason
from shared.platform.logs import get_logger
from shared.platform.tasks import MATCH_PAYMENTS

log = get_logger(__name__)

PAYMENT_BATCH = 250
MAX_MATCH_ATTEMPTS = 5
# A failed payment waits RETRY_BASE × 2^(attempts - 1) before it is claimed again.
RETRY_BASE = timedelta(minutes=1)
# How long one task goes on claiming batches before it hands over to a fresh wake-up, so a
# long backlog never holds one task near its time limit.
DRAIN_SECONDS = 60.0
EVIDENCE = {"change": "payment import"}

_QUEUE = text(
    "INSERT INTO pending_payment_matches (org_id, payment_id) "
    "SELECT :org_id, unnest(CAST(:payment_ids AS uuid[]))"
)
# Claimed rows are deleted at once: a batch that fails rolls back to its savepoint and
# writes its rows again (_REQUEUE). The rows come from the first entries of the partial
# index ix_pending_payment_matches_claimable, and ``id = ANY(ARRAY(subquery))`` is planned
# as a primary-key lookup of a few ids, whatever the statistics.
_CLAIM = text(
    "DELETE FROM pending_payment_matches WHERE id = ANY(ARRAY("
    "SELECT id FROM pending_payment_matches WHERE failed_at IS NULL AND retry_at <= :now "
    "ORDER BY retry_at, id LIMIT :limit FOR UPDATE SKIP LOCKED)) "
    "RETURNING id, org_id, payment_id, queued_at, retry_at, attempts"
)
_REQUEUE = text(
    "INSERT INTO pending_payment_matches (id, org_id, payment_id, queued_at, attempts, "
    "last_error, retry_at, failed_at) "
    "SELECT id, org_id, payment_id, queued_at, attempts + 1, :error, "
    "CAST(:now AS timestamptz) + :base * power(2, attempts), "
    "CASE WHEN attempts + 1 >= :max_attempts THEN CAST(:now AS timestamptz) END "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:orgs AS uuid[]), CAST(:payments AS uuid[]), "
    "CAST(:queued AS timestamptz[]), CAST(:attempts AS integer[])) "
    "AS r(id, org_id, payment_id, queued_at, attempts)"
)
_WAITING_SINCE = text(
    "SELECT EXISTS (SELECT FROM pending_payment_matches "
    "WHERE failed_at IS NULL AND retry_at <= :cutoff)"
)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A pending match row claimed (and deleted) by a batch."""

    id: uuid.UUID
    org_id: uuid.UUID
    payment_id: uuid.UUID
    queued_at: datetime
    retry_at: datetime
    attempts: int


def queue_matches(*, session: Session, org_id: uuid.UUID, payment_ids: Sequence[uuid.UUID]) -> None:
    """Record that these payments of ``org_id`` must be matched, and wake a worker once the
    session commits (nothing is queued if it rolls back)."""
    if not payment_ids:
        return
    session.execute(_QUEUE, {"org_id": org_id, "payment_ids": list(payment_ids)})
    wake_after_commit(session, MATCH_PAYMENTS)


def match_pending_payments(
    *, session: Session, limit: int = PAYMENT_BATCH, now: datetime | None = None
) -> int:
    """Claim up to ``limit`` pending matches and match their payments together, in claim
    order (oldest first); how many rows were claimed. Matched rows are gone; a payment that
    fails alone has its rows written back with the reason and a later ``retry_at``. The
    caller owns the transaction."""
    now = now or datetime.now(UTC)
    claimed = sorted(
        (Claimed(*row) for row in session.execute(_CLAIM, {"now": now, "limit": limit})),
        key=lambda row: (row.retry_at, row.id),
    )
    if not claimed:
        return 0
    together = contain_in_savepoint(
        session,
        lambda: _match(session, claimed, now),
        record_failure=lambda error: None,  # one poison payment must not fail the others
        crashed="payments.batch_crashed",
        count=len(claimed),
    )
    if together is None:
        for payment_id in dict.fromkeys(row.payment_id for row in claimed):
            rows = [row for row in claimed if row.payment_id == payment_id]
            contain_in_savepoint(
                session,
                lambda rows=rows: _match(session, rows, now),
                record_failure=lambda error, rows=rows: _record_failure(session, rows, error, now),
                crashed="payment.match_crashed",
                payment_id=str(payment_id),
            )
    log.info("payments.matched", claimed=len(claimed), alone=together is None)
    return len(claimed)


def _match(session: Session, rows: Sequence[Claimed], now: datetime) -> bool:
    """Match the rows' payments together."""
    reconcile_payments(
        session=session,
        payment_ids=[row.payment_id for row in rows],
        settings={row.org_id: cached_match_settings(session, row.org_id) for row in rows},
        now=now,
        evidence=EVIDENCE,
    )
    return True


def _record_failure(
    session: Session, rows: Sequence[Claimed], error: BaseException, now: datetime
) -> None:
    session.execute(
        _REQUEUE,
        {
            "ids": [row.id for row in rows],
            "orgs": [row.org_id for row in rows],
            "payments": [row.payment_id for row in rows],
            "queued": [row.queued_at for row in rows],
            "attempts": [row.attempts for row in rows],
            "error": failure_reason(error),
            "now": now,
            "base": RETRY_BASE,
            "max_attempts": MAX_MATCH_ATTEMPTS,
        },
    )
    log.warning("payment.match_failed", payment_id=str(rows[0].payment_id), rows=len(rows))


def drain_pending_matches(
    *, limit: int = PAYMENT_BATCH, budget_seconds: float = DRAIN_SECONDS
) -> int:
    """What a wake-up task does: claim and match batches, one transaction each, until a
    claim comes back short; how many rows were claimed. After ``budget_seconds`` it queues
    a fresh wake-up and stops, so the backlog goes on without one task holding it."""
    started = time.monotonic()
    total = 0
    while True:
        with unit_of_work() as session:
            claimed = match_pending_payments(session=session, limit=limit)
        total += claimed
        if claimed < limit:
            return total
        if time.monotonic() - started > budget_seconds:
            send_wake_ups(MATCH_PAYMENTS, 1)
            return total


def sweep_pending_matches(*, session: Session, older_than_seconds: int, backlog: int) -> int:
    """Wake a worker when a pending match has waited more than ``older_than_seconds`` past
    its ``retry_at`` (a wake-up lost, a failed payment's delay over); how many were queued.

    ``backlog`` is the matching queue's length: wake-ups already waiting will find the
    rows, so none is added.
    """
    if backlog:
        return 0
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    if not session.scalar(_WAITING_SINCE, {"cutoff": cutoff}):
        return 0
    log.info("payments.sweep_wakes")
    return send_wake_ups(MATCH_PAYMENTS, 1)
