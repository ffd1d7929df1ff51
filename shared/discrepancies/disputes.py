"""DisputeOpened discrepancies follow their provider's dispute (docs/design.md, "Disputes").

Both paths — the incremental engine at the end of its batch and the period run after each
batch of groups — hand this module the disputed records they judged; the pure
:func:`shared.matching.judging.dispute_changes` says what follows, and this module writes
it: opening (``opened``, with the other findings' statement), updating the dispute's
columns (``dispute_updated``), or resolving a won dispute as ``system``
(``auto_resolved``, naming the event or run and the provider's status), whatever the
organisation's auto-fix setting: the provider decided it, no rule inferred it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.discrepancies.lifecycle import (
    DISPUTE_UPDATED,
    SYSTEM,
    UNRESOLVED,
    auto_resolve,
    dispute_columns,
    record_transition,
)
from shared.discrepancies.opening import open_discrepancies
from shared.matching.judging import StoredDispute, dispute_changes
from shared.matching.record_fields import RecordFacts
from shared.matching.rules import DISPUTE_OPENED, Dispute, Finding
from shared.models import ReconciliationDiscrepancy

_D = ReconciliationDiscrepancy


@dataclass(frozen=True)
class DisputeOutcome:
    """How many DisputeOpened discrepancies one call opened, updated and resolved."""

    opened: int = 0
    updated: int = 0
    resolved: int = 0


def _stored(row: ReconciliationDiscrepancy) -> StoredDispute:
    dispute = Dispute(
        row.dispute_status,
        row.dispute_provider_status,
        row.dispute_reason,
        row.dispute_evidence_due_at,
    )
    unresolved = row.status in UNRESOLVED
    return StoredDispute(
        row.id, unresolved, row.payment_id, row.amount_minor, row.currency, dispute
    )


def _dispute_payload(dispute: Dispute) -> dict[str, Any]:
    return {
        "dispute_status": dispute.status,
        "provider_status": dispute.provider_status,
        "reason": dispute.reason,
        "evidence_due_at": dispute.evidence_due_at.isoformat() if dispute.evidence_due_at else None,
    }


def follow_disputes(
    *,
    session: Session,
    org_id: uuid.UUID,
    records: Iterable[RecordFacts],
    now: datetime,
    evidence: dict[str, Any],
    run_id: uuid.UUID | None = None,
) -> DisputeOutcome:
    """Bring the DisputeOpened discrepancies of these judged records in line with their
    disputes (records never disputed are skipped). The discrepancies are row-locked, so
    a concurrent triage action waits, then sees the change."""
    disputed = {record.id: record for record in records if record.dispute_status is not None}
    if not disputed:
        return DisputeOutcome()
    rows = session.scalars(
        select(_D)
        .where(
            _D.org_id == org_id,
            _D.type == DISPUTE_OPENED,
            _D.provider_record_id.in_(list(disputed)),
        )
        .order_by(_D.opened_at.desc(), _D.id.desc())
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    by_id = {row.id: row for row in rows}
    held: defaultdict[uuid.UUID, list[StoredDispute]] = defaultdict(list)
    for row in rows:
        held[row.provider_record_id].append(_stored(row))
    changes = dispute_changes(disputed.values(), held)
    for stored, finding in changes.to_update:
        update_dispute(
            session=session, discrepancy=by_id[stored.id], finding=finding, now=now,
            evidence=evidence,
        )  # fmt: skip
    for stored, dispute in changes.to_resolve:
        auto_resolve(
            session=session,
            discrepancy=by_id[stored.id],
            now=now,
            evidence=evidence | _dispute_payload(dispute),
        )
    session.flush()
    opened = open_discrepancies(
        session=session,
        org_id=org_id,
        findings=changes.to_open,
        now=now,
        evidence=evidence,
        run_id=run_id,
    )
    return DisputeOutcome(opened, len(changes.to_update), len(changes.to_resolve))


def _stated(
    payment_id: uuid.UUID | None, amount_minor: int, currency: str, dispute: Dispute
) -> dict[str, Any]:
    return {
        "payment_id": str(payment_id) if payment_id else None,
        "amount_minor": amount_minor,
        "currency": currency,
        **_dispute_payload(dispute),
    }


def update_dispute(
    *,
    session: Session,
    discrepancy: ReconciliationDiscrepancy,
    finding: Finding,
    now: datetime,
    evidence: dict[str, Any],
) -> None:
    """Set an unresolved DisputeOpened discrepancy (locked by the caller) to what the
    provider now says in ``finding``, with a ``dispute_updated`` entry by ``system``
    naming what it said before and after."""
    before = _stated(
        discrepancy.payment_id,
        discrepancy.amount_minor,
        discrepancy.currency,
        _stored(discrepancy).dispute,
    )
    after = _stated(finding.payment_id, finding.amount_minor, finding.currency, finding.dispute)
    record_transition(
        session=session,
        discrepancy=discrepancy,
        action=DISPUTE_UPDATED,
        actor=SYSTEM,
        now=now,
        payload={"source": evidence, "before": before, "after": after},
        changes={
            "payment_id": finding.payment_id,
            "amount_minor": finding.amount_minor,
            "currency": finding.currency,
            **dispute_columns(finding.dispute),
        },
    )
