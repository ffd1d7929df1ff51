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

from shared.matching.engine import match_settings, reconcile_payment_group, reconcile_record
from shared.matching.locking import external_key, lock_keys, reference_key
from shared.matching.rules import SETTLED
from shared.models import Organization, Payment, ProviderRecord, ReconciliationDiscrepancy

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
    # Every key up front, in the one global order: taking them subject by subject would
    # interleave ref: and ext: keys and could deadlock with a worker batch.
    _lock_subjects(session=session, records=records, payments=[*payments, *differing])
    for record in records:
        session.refresh(record, with_for_update=True)
        settings = match_settings(session=session, org_id=record.org_id)
        reconcile_record(
            session=session, record=record, settings=settings, now=now, evidence=evidence
        )
    for payment in [*payments, *differing]:
        settings = match_settings(session=session, org_id=payment.org_id)
        reconcile_payment_group(
            session=session, payment=payment, settings=settings, now=now, evidence=evidence
        )
    return len(records) + len(payments) + len(differing)


def _lock_subjects(
    *, session: Session, records: list[ProviderRecord], payments: list[Payment]
) -> None:
    """Take the match keys of all these records and payments in one statement."""
    subjects = [
        *((r.org_id, r.provider, r.provider_reference, r.merchant_reference) for r in records),
        *((p.org_id, p.provider, p.provider_reference, p.external_id) for p in payments),
    ]
    lock_keys(
        session=session,
        references=[
            reference_key(org, provider, reference)
            for org, provider, reference, _ in subjects
            if reference
        ],
        externals=[external_key(org, external) for org, _, _, external in subjects if external],
    )
