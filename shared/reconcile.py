"""The incremental matching engine: the rules of shared/matching.py applied to the database.

Concurrency. Work on one record or payment takes transaction-level advisory locks on its
match keys — ``ref:`` (provider reference) first, then ``ext:`` (merchant reference /
external id) — so that an event and a payment change that could match each other
serialise, always in that order (no deadlocks). The partial unique index on unresolved
discrepancies guarantees at most one per (org, type, payment, record) whatever happens.

Ledger safety: this module reads payments and never writes them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.errors import ValidationFailed
from shared.matching import (
    Finding,
    MatchSettings,
    PaymentFacts,
    RecordFacts,
    heuristic_fits,
    item_outcome,
    judge_customer_duplicate,
    judge_group,
    judge_unmatched_record,
    primary_record,
    reference_method,
    unique_heuristic_pair,
)
from shared.models import (
    Organization,
    Payment,
    ProviderRecord,
    ReconciliationActionLog,
    ReconciliationDiscrepancy,
    ReconciliationItem,
)
from shared.providers import RecordUpdate
from shared.records import RecordState, derived_status, merge_update, new_state, refunded_total
from shared.settings import get_settings

SYSTEM = "system"
UNRESOLVED = ("open", "acknowledged")


def match_settings(*, session: Session, org_id: uuid.UUID) -> MatchSettings:
    """The organisation's matching settings (auto-fix defaults to RECONCILIATION_AUTO_FIX)."""
    org = session.get(Organization, org_id)
    auto_fix = get_settings().reconciliation_auto_fix if org.auto_fix is None else org.auto_fix
    return MatchSettings(
        grace_period=timedelta(seconds=org.grace_period_seconds),
        amount_tolerance_minor=org.amount_tolerance_minor,
        heuristic_window=timedelta(seconds=org.heuristic_window_seconds),
        duplicate_window=timedelta(seconds=org.duplicate_window_seconds),
        auto_fix=auto_fix,
    )


def lock_match_keys(
    *,
    session: Session,
    org_id: uuid.UUID,
    provider: str,
    reference: str | None,
    external: str | None,
) -> None:
    """Serialise work that could match the same pair: ``ref:`` then ``ext:`` key."""
    keys = []
    if reference:
        keys.append(f"ref:{org_id}:{provider}:{reference}")
    if external:
        keys.append(f"ext:{org_id}:{external}")
    for key in keys:
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        )


def payment_facts(payment: Payment) -> PaymentFacts:
    """The rules' view of a payment row."""
    return PaymentFacts(
        id=payment.id,
        external_id=payment.external_id,
        provider=payment.provider,
        provider_reference=payment.provider_reference,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        status=payment.status,
        amount_refunded_minor=payment.amount_refunded_minor,
        customer_ref=payment.customer_ref,
        occurred_at=payment.occurred_at,
        created_at=payment.created_at,
        updated_at=payment.updated_at,
    )


def record_facts(record: ProviderRecord) -> RecordFacts:
    """The rules' view of a provider record row."""
    return RecordFacts(
        id=record.id,
        provider=record.provider,
        provider_reference=record.provider_reference,
        merchant_reference=record.merchant_reference,
        amount_minor=record.amount_minor,
        currency=record.currency,
        status=record.status,
        amount_refunded_minor=record.amount_refunded_minor,
        customer_ref=record.customer_ref,
        occurred_at=record.occurred_at,
        created_at=record.created_at,
        updated_at=record.updated_at,
        payment_id=record.payment_id,
        match_method=record.match_method,
    )


def _state_of(record: ProviderRecord) -> RecordState:
    return RecordState(
        provider_reference=record.provider_reference,
        currency=record.currency,
        last_event_at=record.last_event_at,
        occurred_at=record.occurred_at,
        amount_minor=record.amount_minor,
        merchant_reference=record.merchant_reference,
        customer_ref=record.customer_ref,
        payment_status=record.payment_status,
        status_at=record.status_at,
        refunds=dict(record.refunds),
        reported_refunded_minor=record.reported_refunded_minor,
        dispute_status=record.dispute_status,
        dispute_amount_minor=record.dispute_amount_minor,
        dispute_at=record.dispute_at,
    )


def _write_state(record: ProviderRecord, state: RecordState, now: datetime) -> None:
    record.currency = state.currency
    record.amount_minor = state.amount_minor
    record.merchant_reference = state.merchant_reference
    record.customer_ref = state.customer_ref
    record.occurred_at = state.occurred_at
    record.last_event_at = state.last_event_at
    record.payment_status = state.payment_status
    record.status_at = state.status_at
    record.refunds = state.refunds
    record.reported_refunded_minor = state.reported_refunded_minor
    record.dispute_status = state.dispute_status
    record.dispute_amount_minor = state.dispute_amount_minor
    record.dispute_at = state.dispute_at
    record.status = derived_status(state)
    record.amount_refunded_minor = refunded_total(state)
    record.updated_at = now


def apply_record_update(
    *, session: Session, org_id: uuid.UUID, provider: str, update: RecordUpdate, now: datetime
) -> ProviderRecord:
    """Fold ``update`` into the provider record it is about (created on first sight).

    Call with the record's ``ref:`` key locked (:func:`lock_match_keys`).
    """
    record = session.scalars(
        select(ProviderRecord)
        .where(
            ProviderRecord.org_id == org_id,
            ProviderRecord.provider == provider,
            ProviderRecord.provider_reference == update.provider_reference,
        )
        .with_for_update()
    ).one_or_none()
    if record is None:
        if update.currency is None:
            raise ValidationFailed(
                f"first event about {update.provider_reference} states no currency"
            )
        record = ProviderRecord(org_id=org_id, provider=provider, created_at=now)
        record.provider_reference = update.provider_reference
        _write_state(record, new_state(update, update.currency), now)
        session.add(record)
        session.flush()
        return record
    _write_state(record, merge_update(_state_of(record), update), now)
    return record


# --- Binding records to payments -----------------------------------------------------


def _payment_by_reference(session: Session, record: ProviderRecord) -> tuple[Payment, str] | None:
    query = select(Payment).where(
        Payment.org_id == record.org_id, Payment.provider == record.provider
    )
    by_reference = session.scalars(
        query.where(Payment.provider_reference == record.provider_reference)
    ).first()
    if by_reference is not None:
        return by_reference, "provider_reference"
    if record.merchant_reference:
        by_external = session.scalars(
            query.where(Payment.external_id == record.merchant_reference)
        ).one_or_none()
        if by_external is not None:
            return by_external, "merchant_reference"
    return None


def _unbound_payments_near(
    session: Session,
    org_id: uuid.UUID,
    provider: str,
    currency: str,
    amount: int,
    moment: datetime,
    window: timedelta,
) -> list[Payment]:
    bound = select(ProviderRecord.id).where(ProviderRecord.payment_id == Payment.id).exists()
    return list(
        session.scalars(
            select(Payment)
            .where(
                Payment.org_id == org_id,
                Payment.provider == provider,
                Payment.currency == currency,
                Payment.amount_minor == amount,
                Payment.occurred_at.between(moment - window, moment + window),
                ~bound,
            )
            .limit(2)
        )
    )


def _unbound_records_near(
    session: Session,
    org_id: uuid.UUID,
    provider: str,
    currency: str,
    amount: int,
    moment: datetime,
    window: timedelta,
) -> list[ProviderRecord]:
    return list(
        session.scalars(
            select(ProviderRecord)
            .where(
                ProviderRecord.org_id == org_id,
                ProviderRecord.provider == provider,
                ProviderRecord.currency == currency,
                ProviderRecord.amount_minor == amount,
                ProviderRecord.occurred_at.between(moment - window, moment + window),
                ProviderRecord.payment_id.is_(None),
            )
            .limit(2)
        )
    )


def _heuristic_payment(session: Session, record: ProviderRecord, settings: MatchSettings):
    if record.amount_minor is None:
        return None
    window = settings.heuristic_window
    payments = _unbound_payments_near(
        session,
        record.org_id,
        record.provider,
        record.currency,
        record.amount_minor,
        record.occurred_at,
        window,
    )
    if len(payments) != 1:
        return None
    records = _unbound_records_near(
        session,
        record.org_id,
        record.provider,
        record.currency,
        record.amount_minor,
        payments[0].occurred_at,
        window,
    )
    facts = [record_facts(r) for r in records]
    candidates = [payment_facts(payments[0])]
    if unique_heuristic_pair(candidates, facts) and facts[0].id == record.id:
        return payments[0]
    return None


def _bind(
    record: ProviderRecord, payment: Payment | None, method: str | None, now: datetime
) -> None:
    record.payment_id = payment.id if payment else None
    record.match_method = method
    record.matched_at = now if payment else None


def bind_record(
    *, session: Session, record: ProviderRecord, settings: MatchSettings, now: datetime
) -> uuid.UUID | None:
    """Match the record to its payment (reference, then heuristic); return the payment it
    was bound to before, when that changed (its group must be judged again)."""
    previous = record.payment_id
    found = _payment_by_reference(session, record)
    if found is not None:
        payment, method = found
    elif record.match_method == "heuristic" and previous is not None:
        payment = session.get(Payment, previous)
        keep = payment is not None and heuristic_fits(
            payment_facts(payment), record_facts(record), settings.heuristic_window
        )
        payment, method = (payment, "heuristic") if keep else (None, None)
    else:
        payment = _heuristic_payment(session, record, settings)
        method = "heuristic" if payment else None
    if (payment.id if payment else None) != previous or record.match_method != method:
        _bind(record, payment, method, now)
    return previous if previous != record.payment_id else None


def bind_payment(
    *, session: Session, payment: Payment, settings: MatchSettings, now: datetime
) -> list[ProviderRecord]:
    """Match unbound records to the payment; return every record matched to it."""
    facts = payment_facts(payment)
    conditions = [ProviderRecord.payment_id == payment.id]
    if payment.provider_reference:
        conditions.append(ProviderRecord.provider_reference == payment.provider_reference)
    conditions.append(ProviderRecord.merchant_reference == payment.external_id)
    candidates = session.scalars(
        select(ProviderRecord)
        .where(
            ProviderRecord.org_id == payment.org_id,
            ProviderRecord.provider == payment.provider,
            or_(*conditions),
        )
        .order_by(ProviderRecord.id)
        .with_for_update()
    ).all()
    for record in candidates:
        method = reference_method(facts, record_facts(record))
        if record.payment_id is None and method is not None:
            _bind(record, payment, method, now)
    group = [record for record in candidates if record.payment_id == payment.id]
    if not group:
        nearby = _unbound_records_near(
            session,
            payment.org_id,
            payment.provider,
            payment.currency,
            payment.amount_minor,
            payment.occurred_at,
            settings.heuristic_window,
        )
        if len(nearby) == 1 and _heuristic_payment(session, nearby[0], settings) is payment:
            _bind(nearby[0], payment, "heuristic", now)
            group = nearby
    return group


# --- Judging and recording findings ---------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What one evaluation found, and which discrepancies it is answerable for."""

    findings: list[Finding]
    payment_id: uuid.UUID | None
    record_ids: list[uuid.UUID]


def _customer_duplicates(
    session: Session, record: ProviderRecord, settings: MatchSettings
) -> list[Finding]:
    if record.customer_ref is None or record.amount_minor is None:
        return []
    siblings = session.scalars(
        select(ProviderRecord).where(
            ProviderRecord.org_id == record.org_id,
            ProviderRecord.customer_ref == record.customer_ref,
            ProviderRecord.currency == record.currency,
            ProviderRecord.amount_minor == record.amount_minor,
            ProviderRecord.occurred_at.between(
                record.occurred_at - settings.duplicate_window, record.occurred_at
            ),
            ProviderRecord.id != record.id,
        )
    ).all()
    return judge_customer_duplicate(
        record_facts(record), [record_facts(s) for s in siblings], settings
    )


def judge_payment(
    *,
    session: Session,
    payment: Payment,
    group: list[ProviderRecord],
    settings: MatchSettings,
    now: datetime,
) -> Verdict:
    """The findings for a payment and its matched records."""
    findings = judge_group(payment_facts(payment), [record_facts(r) for r in group], settings, now)
    for record in group:
        findings += _customer_duplicates(session, record, settings)
    return Verdict(findings, payment.id, [record.id for record in group])


def judge_record(
    *, session: Session, record: ProviderRecord, settings: MatchSettings, now: datetime
) -> Verdict:
    """The findings for a record matched to no payment."""
    findings = judge_unmatched_record(record_facts(record), settings, now)
    findings += _customer_duplicates(session, record, settings)
    return Verdict(findings, None, [record.id])


def _answerable(verdict: Verdict):
    """Unresolved discrepancies this verdict may open, keep or clear."""
    scope = [
        (ReconciliationDiscrepancy.payment_id.is_(None))
        & (ReconciliationDiscrepancy.provider_record_id.in_(verdict.record_ids))
    ]
    if verdict.payment_id is not None:
        scope.append(ReconciliationDiscrepancy.payment_id == verdict.payment_id)
    return or_(*scope)


def record_verdict(
    *,
    session: Session,
    org_id: uuid.UUID,
    verdict: Verdict,
    settings: MatchSettings,
    now: datetime,
    evidence: dict[str, Any],
    run_id: uuid.UUID | None = None,
) -> tuple[int, int]:
    """Open what the verdict found and, with auto-fix, resolve what it no longer finds.

    Returns (opened, auto_resolved). Each change comes with its action-log entry in the
    same transaction; an already-open discrepancy is left as it is.
    """
    existing = session.scalars(
        select(ReconciliationDiscrepancy)
        .where(
            ReconciliationDiscrepancy.org_id == org_id,
            ReconciliationDiscrepancy.status.in_(UNRESOLVED),
            _answerable(verdict),
        )
        .with_for_update()
    ).all()
    found = {finding.key: finding for finding in verdict.findings}
    opened = sum(
        open_discrepancy(
            session=session,
            org_id=org_id,
            finding=finding,
            now=now,
            evidence=evidence,
            run_id=run_id,
        )
        for key, finding in found.items()
        if key not in {(d.type, d.payment_id, d.provider_record_id) for d in existing}
    )
    resolved = 0
    if settings.auto_fix:
        for discrepancy in existing:
            if (
                discrepancy.type,
                discrepancy.payment_id,
                discrepancy.provider_record_id,
            ) not in found:
                auto_resolve(session=session, discrepancy=discrepancy, now=now, evidence=evidence)
                resolved += 1
    return opened, resolved


def open_discrepancy(
    *,
    session: Session,
    org_id: uuid.UUID,
    finding: Finding,
    now: datetime,
    evidence: dict[str, Any],
    run_id: uuid.UUID | None = None,
) -> int:
    """Open a discrepancy for ``finding`` unless an unresolved one exists (1 if opened)."""
    discrepancy_id = session.scalar(
        insert(ReconciliationDiscrepancy)
        .values(
            id=uuid.uuid4(),
            org_id=org_id,
            type=finding.type,
            severity=finding.severity,
            status="open",
            payment_id=finding.payment_id,
            provider_record_id=finding.provider_record_id,
            run_id=run_id,
            amount_minor=finding.amount_minor,
            currency=finding.currency,
            difference_minor=finding.difference_minor,
            opened_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=["org_id", "type", "payment_id", "provider_record_id"],
            index_where=text("status <> 'resolved'"),
        )
        .returning(ReconciliationDiscrepancy.id)
    )
    if discrepancy_id is None:
        return 0
    session.add(
        ReconciliationActionLog(
            org_id=org_id,
            discrepancy_id=discrepancy_id,
            action="opened",
            actor=SYSTEM,
            payload={"finding": finding.evidence, "source": evidence},
        )
    )
    return 1


def auto_resolve(
    *,
    session: Session,
    discrepancy: ReconciliationDiscrepancy,
    now: datetime,
    evidence: dict[str, Any],
) -> None:
    """Resolve as ``system`` a discrepancy whose condition no longer holds, naming why."""
    discrepancy.status = "resolved"
    discrepancy.resolution = "auto_resolved"
    discrepancy.resolution_reason = "the condition no longer holds"
    discrepancy.resolved_at = now
    discrepancy.version += 1
    session.add(
        ReconciliationActionLog(
            org_id=discrepancy.org_id,
            discrepancy_id=discrepancy.id,
            action="auto_resolved",
            actor=SYSTEM,
            payload={"reason": "condition no longer holds", "evidence": evidence},
        )
    )


def add_item(
    *,
    session: Session,
    org_id: uuid.UUID,
    verdict: Verdict,
    group: list[ProviderRecord],
    payment: Payment | None,
    run_id: uuid.UUID | None = None,
) -> None:
    """Record the match result of this evaluation as a reconciliation item."""
    types = {finding.type for finding in verdict.findings}
    if payment is not None and group:
        primary = primary_record([record_facts(r) for r in group])
        difference = next(
            (f.difference_minor for f in verdict.findings if f.type == "AmountMismatch"), None
        )
        values = {
            "payment_id": payment.id,
            "provider_record_id": primary.id,
            "outcome": item_outcome(verdict.findings),
            "match_method": primary.match_method,
            "amount_difference_minor": difference,
        }
    elif payment is not None and "MissingProviderRecord" in types:
        values = {"payment_id": payment.id, "outcome": "missing_provider"}
    elif payment is None and "MissingInternalRecord" in types:
        values = {"provider_record_id": verdict.record_ids[0], "outcome": "missing_internal"}
    else:
        return
    session.add(ReconciliationItem(org_id=org_id, run_id=run_id, **values))


# --- Entry points ---------------------------------------------------------------------


def reconcile_payment_group(
    *,
    session: Session,
    payment: Payment,
    settings: MatchSettings,
    now: datetime,
    evidence: dict[str, Any],
) -> Verdict:
    """Bind, judge and record a payment with its records."""
    group = bind_payment(session=session, payment=payment, settings=settings, now=now)
    session.flush()
    verdict = judge_payment(
        session=session, payment=payment, group=group, settings=settings, now=now
    )
    record_verdict(
        session=session,
        org_id=payment.org_id,
        verdict=verdict,
        settings=settings,
        now=now,
        evidence=evidence,
    )
    add_item(session=session, org_id=payment.org_id, verdict=verdict, group=group, payment=payment)
    return verdict


def reconcile_record(
    *,
    session: Session,
    record: ProviderRecord,
    settings: MatchSettings,
    now: datetime,
    evidence: dict[str, Any],
) -> Verdict:
    """Bind a record to its payment, then judge what it touches."""
    previous = bind_record(session=session, record=record, settings=settings, now=now)
    session.flush()
    if previous is not None:
        old = session.get(Payment, previous)
        reconcile_payment_group(
            session=session, payment=old, settings=settings, now=now, evidence=evidence
        )
    if record.payment_id is not None:
        payment = session.get(Payment, record.payment_id)
        return reconcile_payment_group(
            session=session, payment=payment, settings=settings, now=now, evidence=evidence
        )
    verdict = judge_record(session=session, record=record, settings=settings, now=now)
    record_verdict(
        session=session,
        org_id=record.org_id,
        verdict=verdict,
        settings=settings,
        now=now,
        evidence=evidence,
    )
    add_item(session=session, org_id=record.org_id, verdict=verdict, group=[record], payment=None)
    return verdict


def reconcile_update(
    *,
    session: Session,
    org_id: uuid.UUID,
    provider: str,
    update: RecordUpdate,
    settings: MatchSettings,
    now: datetime,
    evidence: dict[str, Any],
) -> ProviderRecord:
    """Apply one normalised provider update and match what it changed."""
    lock_match_keys(
        session=session,
        org_id=org_id,
        provider=provider,
        reference=update.provider_reference,
        external=None,
    )
    record = apply_record_update(
        session=session, org_id=org_id, provider=provider, update=update, now=now
    )
    lock_match_keys(
        session=session,
        org_id=org_id,
        provider=provider,
        reference=None,
        external=record.merchant_reference,
    )
    reconcile_record(session=session, record=record, settings=settings, now=now, evidence=evidence)
    return record


def reconcile_payment(
    *, session: Session, payment_id: uuid.UUID, now: datetime, evidence: dict[str, Any]
) -> Verdict | None:
    """Match one internal payment after it was created or changed (None if it is gone)."""
    payment = session.get(Payment, payment_id)
    if payment is None:
        return None
    lock_match_keys(
        session=session,
        org_id=payment.org_id,
        provider=payment.provider,
        reference=payment.provider_reference,
        external=payment.external_id,
    )
    session.refresh(payment)
    settings = match_settings(session=session, org_id=payment.org_id)
    return reconcile_payment_group(
        session=session, payment=payment, settings=settings, now=now, evidence=evidence
    )
