"""What is only certain after the grace period: this sweep judges it when the period ends.

Records without a payment and settled payments without a record (Missing*), and matched
pairs whose statuses or refunded amounts differ (Status/AmountMismatch once both sides
are quiet), are judged again when their grace period ends. The sweep looks back one
day — older ones are the daily period run's business — and skips anything that already
had such a discrepancy, so a resolved one is not reopened every minute.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Session

from shared.matching import SETTLED
from shared.models import Organization, Payment, ProviderRecord, ReconciliationDiscrepancy
from shared.reconcile import (
    lock_match_keys,
    match_settings,
    reconcile_payment_group,
    reconcile_record,
)

LOOKBACK = timedelta(days=1)
BATCH = 200

_grace = text("make_interval(secs => organizations.grace_period_seconds)")


def _never_flagged(kind: str, column):
    return ~(
        select(ReconciliationDiscrepancy.id)
        .where(ReconciliationDiscrepancy.type == kind, column)
        .exists()
    )


def sweep_expired_grace_periods(*, session: Session, now: datetime) -> int:
    """Judge again what became overdue; return how many records and payments were judged."""
    evidence = {"sweep": "grace period ended", "at": now.isoformat()}
    records = session.scalars(
        select(ProviderRecord)
        .join(Organization, Organization.id == ProviderRecord.org_id)
        .where(
            ProviderRecord.payment_id.is_(None),
            ProviderRecord.status.in_(SETTLED),
            ProviderRecord.created_at + _grace <= now,
            ProviderRecord.created_at + _grace > now - LOOKBACK,
            _never_flagged(
                "MissingInternalRecord",
                ReconciliationDiscrepancy.provider_record_id == ProviderRecord.id,
            ),
        )
        .limit(BATCH)
    ).all()
    for record in records:
        lock_match_keys(
            session=session,
            org_id=record.org_id,
            provider=record.provider,
            reference=record.provider_reference,
            external=record.merchant_reference,
        )
        session.refresh(record, with_for_update=True)
        settings = match_settings(session=session, org_id=record.org_id)
        reconcile_record(
            session=session, record=record, settings=settings, now=now, evidence=evidence
        )
    bound = select(ProviderRecord.id).where(ProviderRecord.payment_id == Payment.id).exists()
    payments = session.scalars(
        select(Payment)
        .join(Organization, Organization.id == Payment.org_id)
        .where(
            Payment.status.in_(SETTLED),
            and_(Payment.created_at + _grace <= now, Payment.created_at + _grace > now - LOOKBACK),
            ~bound,
            _never_flagged(
                "MissingProviderRecord", ReconciliationDiscrepancy.payment_id == Payment.id
            ),
        )
        .limit(BATCH)
    ).all()
    quiet_since = func.greatest(Payment.updated_at, ProviderRecord.updated_at) + _grace
    differing = session.scalars(
        select(Payment)
        .join(ProviderRecord, ProviderRecord.payment_id == Payment.id)
        .join(Organization, Organization.id == Payment.org_id)
        .where(
            or_(
                ProviderRecord.status != Payment.status,
                ProviderRecord.amount_refunded_minor != Payment.amount_refunded_minor,
            ),
            quiet_since <= now,
            quiet_since > now - LOOKBACK,
            _never_flagged("StatusMismatch", ReconciliationDiscrepancy.payment_id == Payment.id),
        )
        .distinct()
        .limit(BATCH)
    ).all()
    for payment in [*payments, *differing]:
        lock_match_keys(
            session=session,
            org_id=payment.org_id,
            provider=payment.provider,
            reference=payment.provider_reference,
            external=payment.external_id,
        )
        settings = match_settings(session=session, org_id=payment.org_id)
        reconcile_payment_group(
            session=session, payment=payment, settings=settings, now=now, evidence=evidence
        )
    return len(records) + len(payments) + len(differing)
