"""Discrepancies in a known state, and what the tests read back about them."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from sqlalchemy import select, text

from shared.models import ProviderRecord, ReconciliationActionLog, ReconciliationDiscrepancy
from tests.support import factories

BASE_TIME = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_record(session, org, **fields) -> ProviderRecord:
    values = {
        "org_id": org.id,
        "provider": "stripe",
        "provider_reference": f"pi_{uuid.uuid4().hex[:10]}",
        "amount_minor": 2500,
        "currency": "EUR",
        "status": "succeeded",
        "occurred_at": BASE_TIME,
        "last_event_at": BASE_TIME,
    } | fields
    record = ProviderRecord(**values)
    session.add(record)
    session.flush()
    return record


def make_discrepancy(session, org, *, with_record=False, **fields) -> ReconciliationDiscrepancy:
    """An open AmountMismatch (optionally with a provider record), opened at BASE_TIME."""
    record = make_record(session, org) if with_record else None
    values = {
        "type": "AmountMismatch",
        "severity": "high",
        "status": "open",
        "provider_record_id": record.id if record else None,
        "amount_minor": 2500,
        "currency": "EUR",
        "difference_minor": -100,
        "opened_at": BASE_TIME,
    } | fields
    return factories.make_discrepancy(session, org, **values)


def in_state(session, org, status: str) -> ReconciliationDiscrepancy:
    """A discrepancy that reached ``status`` the normal way (timestamps set)."""
    fields: dict = {"status": status}
    if status in ("acknowledged", "resolved"):
        fields["acknowledged_at"] = BASE_TIME
    if status == "resolved":
        fields |= {"resolved_at": BASE_TIME, "resolution": "other", "resolution_reason": "x"}
    return make_discrepancy(session, org, **fields)


def actions_of(session, discrepancy) -> list[ReconciliationActionLog]:
    return list(
        session.scalars(
            select(ReconciliationActionLog)
            .where(ReconciliationActionLog.discrepancy_id == discrepancy.id)
            .order_by(ReconciliationActionLog.created_at)
        )
    )


def reload(session, discrepancy) -> ReconciliationDiscrepancy:
    session.expire_all()
    return session.get(ReconciliationDiscrepancy, discrepancy.id)


def payments_checksum(session) -> str:
    rows = session.execute(text("SELECT payments::text FROM payments ORDER BY id")).scalars()
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()
