"""The matching rules: pure functions over plain values, no Session, no I/O.

The incremental path (shared/matching/judging.py) and the period run call these same
functions, so both reach the same verdict on the same data.

Matching order: provider reference exact; else merchant reference = the payment's
``external_id``; else (heuristic) same provider, currency and amount within a time window,
accepted only when there is exactly one candidate on each side. Ambiguity never matches.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.matching.record_fields import RecordFacts

SEVERITY = {
    "MissingInternalRecord": "high",
    "MissingProviderRecord": "medium",
    "AmountMismatch": "high",
    "CurrencyMismatch": "high",
    "StatusMismatch": "medium",
    "DuplicateChargeSuspected": "high",
    "DisputeOpened": "high",
    "PayoutMismatch": "high",
    "SettlementAmountMismatch": "high",
    "UnsettledPayment": "medium",
    "FeeMismatch": "low",
    "StatementBalanceMismatch": "high",
    "PayoutNotReceived": "high",
    "DepositAmountMismatch": "high",
    "UnexpectedDeposit": "medium",
}
DISPUTE_OPENED = "DisputeOpened"
# The dispute statuses that end it: the provider gave the money back (or never took it),
# or kept it.
DISPUTE_WON = "won"
DISPUTE_LOST = "lost"
# Statuses under which money moved: only these can be missing on the other side.
SETTLED = frozenset({"succeeded", "refunded", "partially_refunded"})
# A further charge in these statuses next to the matched one is a suspected duplicate.
CHARGED = frozenset({"succeeded", "partially_refunded"})
METHOD_RANK = {"provider_reference": 0, "merchant_reference": 1, "heuristic": 2}


@dataclass(frozen=True)
class MatchSettings:
    """An organisation's matching settings."""

    grace_period: timedelta = timedelta(hours=1)
    amount_tolerance_minor: int = 0
    amount_tolerance_percent: Decimal = Decimal(0)
    heuristic_window: timedelta = timedelta(minutes=15)
    duplicate_window: timedelta = timedelta(minutes=10)
    auto_fix: bool = False

    def amount_tolerance(self, amount_minor: int) -> Decimal:
        """The largest difference from ``amount_minor`` that still agrees: the larger of
        the fixed tolerance and the percentage of the amount (exact, never rounded)."""
        percent_of_amount = Decimal(amount_minor) * self.amount_tolerance_percent / 100
        return max(Decimal(self.amount_tolerance_minor), percent_of_amount)


@dataclass(frozen=True)
class PaymentFacts:
    """An internal payment, as the rules see it."""

    id: uuid.UUID
    external_id: str
    provider: str
    provider_reference: str | None
    amount_minor: int
    currency: str
    status: str
    amount_refunded_minor: int
    customer_ref: str | None
    occurred_at: datetime
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Dispute:
    """A dispute (chargeback) as its provider last stated it: the normalised status
    (models.DISPUTE_STATUSES), the provider's own status text, its reason and the date
    evidence is due."""

    status: str
    provider_status: str | None
    reason: str | None
    evidence_due_at: datetime | None


@dataclass(frozen=True)
class Finding:
    """One discrepancy the rules say exists right now, with the evidence for it."""

    type: str
    payment_id: uuid.UUID | None
    provider_record_id: uuid.UUID | None
    amount_minor: int
    currency: str
    difference_minor: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict, compare=False)
    dispute: Dispute | None = None  # DisputeOpened only
    # The cash chain's subjects (docs/design.md, "Cash discrepancies").
    settlement_line_id: uuid.UUID | None = None
    settlement_payout_id: uuid.UUID | None = None
    bank_statement_id: uuid.UUID | None = None
    bank_entry_id: uuid.UUID | None = None

    @property
    def severity(self) -> str:
        """The default severity of the finding's type."""
        return SEVERITY[self.type]

    @property
    def key(self) -> tuple[str, uuid.UUID | None, uuid.UUID | None]:
        """What makes two findings the same discrepancy."""
        return (self.type, self.payment_id, self.provider_record_id)


def _record_finding(
    kind: str,
    record: RecordFacts,
    evidence: dict[str, Any],
    *,
    payment_id: uuid.UUID | None = None,
) -> Finding:
    """A finding about a record, in its currency (amount 0 while the amount is not known)."""
    return Finding(
        kind,
        payment_id,
        record.id,
        record.amount_minor if record.amount_minor is not None else 0,
        record.currency,
        evidence=evidence,
    )


def reference_method(payment: PaymentFacts, record: RecordFacts) -> str | None:
    """How ``record`` matches ``payment`` by reference, or None."""
    if payment.provider != record.provider:
        return None
    if payment.provider_reference and payment.provider_reference == record.provider_reference:
        return "provider_reference"
    if record.merchant_reference and record.merchant_reference == payment.external_id:
        return "merchant_reference"
    return None


def heuristic_fits(payment: PaymentFacts, record: RecordFacts, window: timedelta) -> bool:
    """Same provider, currency and amount, within ``window`` of each other."""
    return (
        payment.provider == record.provider
        and payment.currency == record.currency
        and record.amount_minor == payment.amount_minor
        and abs(payment.occurred_at - record.occurred_at) <= window
    )


def unique_heuristic_pair(
    payment_candidates: list[PaymentFacts], record_candidates: list[RecordFacts]
) -> bool:
    """The heuristic accepts a pair only when each side has exactly one candidate."""
    return len(payment_candidates) == 1 and len(record_candidates) == 1


def _grace_over(created_at: datetime, now: datetime, settings: MatchSettings) -> bool:
    return now - created_at >= settings.grace_period


def quiet_for_grace(
    payment: PaymentFacts, record: RecordFacts, settings: MatchSettings, now: datetime
) -> bool:
    """True once neither side has changed for the grace period."""
    return now - max(payment.updated_at, record.updated_at) >= settings.grace_period


def compare_pair(
    payment: PaymentFacts, record: RecordFacts, settings: MatchSettings, now: datetime
) -> list[Finding]:
    """What disagrees between a payment and its matched record (empty: they agree).

    Currency and charged amount are facts: a difference is certain at once. Statuses and
    refunded amounts move while webhooks and imports are in flight (a refund webhook
    behind the billing side's refund, or the reverse), so a difference there counts only
    once neither side has changed for the grace period, and never while either side is
    ``pending``. A record whose amount is not known yet (a refund seen before its charge)
    is incomplete: only its currency is compared.
    """
    settled = quiet_for_grace(payment, record, settings, now)
    findings = []
    evidence = {"payment_status": payment.status, "provider_status": record.status}
    if payment.currency != record.currency:
        findings.append(
            Finding(
                "CurrencyMismatch",
                payment.id,
                record.id,
                payment.amount_minor,
                payment.currency,
                evidence={
                    "payment_currency": payment.currency,
                    "provider_currency": record.currency,
                },
            )
        )
    elif record.amount_minor is not None:
        difference = record.amount_minor - payment.amount_minor
        refunded_difference = record.amount_refunded_minor - payment.amount_refunded_minor
        tolerance = settings.amount_tolerance(payment.amount_minor)
        if abs(difference) > tolerance or (settled and abs(refunded_difference) > tolerance):
            findings.append(
                Finding(
                    "AmountMismatch",
                    payment.id,
                    record.id,
                    payment.amount_minor,
                    payment.currency,
                    difference_minor=difference if difference else refunded_difference,
                    evidence={
                        "payment_amount_minor": payment.amount_minor,
                        "provider_amount_minor": record.amount_minor,
                        "payment_refunded_minor": payment.amount_refunded_minor,
                        "provider_refunded_minor": record.amount_refunded_minor,
                    },
                )
            )
    if (
        settled
        and record.amount_minor is not None
        and payment.status != record.status
        and "pending" not in (payment.status, record.status)
    ):
        findings.append(
            Finding(
                "StatusMismatch",
                payment.id,
                record.id,
                payment.amount_minor,
                payment.currency,
                evidence=evidence,
            )
        )
    return findings


def primary_record(records: list[RecordFacts]) -> RecordFacts:
    """The record a payment is compared with: strongest match, then earliest, then id."""
    return min(
        records,
        key=lambda r: (METHOD_RANK.get(r.match_method or "heuristic", 3), r.occurred_at, r.id),
    )


def judge_group(
    payment: PaymentFacts, records: list[RecordFacts], settings: MatchSettings, now: datetime
) -> list[Finding]:
    """Findings for a payment and the records matched to it.

    No record: MissingProviderRecord once the grace period is over (settled payments
    only). Otherwise the primary record is compared, every further record that charged
    is a suspected duplicate, and every record's dispute is judged.
    """
    if not records:
        if payment.status in SETTLED and _grace_over(payment.created_at, now, settings):
            return [
                Finding(
                    "MissingProviderRecord",
                    payment.id,
                    None,
                    payment.amount_minor,
                    payment.currency,
                    evidence={"external_id": payment.external_id, "status": payment.status},
                )
            ]
        return []
    primary = primary_record(records)
    findings = compare_pair(payment, primary, settings, now)
    for record in records:
        findings += judge_dispute(record, payment.id)
        if record.id != primary.id and record.status in CHARGED:
            findings.append(
                _record_finding(
                    "DuplicateChargeSuspected",
                    record,
                    {"first_record_id": str(primary.id), "rule": "same_payment"},
                    payment_id=payment.id,
                )
            )
    return findings


def judge_unmatched_record(
    record: RecordFacts, settings: MatchSettings, now: datetime
) -> list[Finding]:
    """MissingInternalRecord for a settled record with no payment after the grace period,
    and its dispute (visible even though recon cannot find its payment)."""
    findings = judge_dispute(record, None)
    if record.status in SETTLED and _grace_over(record.created_at, now, settings):
        findings.append(
            _record_finding(
                "MissingInternalRecord",
                record,
                {
                    "provider_reference": record.provider_reference,
                    "merchant_reference": record.merchant_reference,
                    "status": record.status,
                },
            )
        )
    return findings


def dispute_of(record: RecordFacts) -> Dispute | None:
    """The record's dispute as last stated (None: never disputed)."""
    if record.dispute_status is None:
        return None
    return Dispute(
        record.dispute_status,
        record.dispute_provider_status,
        record.dispute_reason,
        record.dispute_evidence_due_at,
    )


def judge_dispute(record: RecordFacts, payment_id: uuid.UUID | None) -> list[Finding]:
    """DisputeOpened while the record's dispute is not won: the provider took, or may take,
    the disputed amount back (at once, no grace period: the provider says so)."""
    dispute = dispute_of(record)
    if dispute is None or dispute.status == DISPUTE_WON:
        return []
    amount = record.dispute_amount_minor
    return [
        Finding(
            DISPUTE_OPENED,
            payment_id,
            record.id,
            amount if amount is not None else 0,
            record.currency,
            evidence={
                "dispute_status": dispute.status,
                "provider_status": dispute.provider_status,
                "provider_reference": record.provider_reference,
            },
            dispute=dispute,
        )
    ]


def judge_customer_duplicate(
    record: RecordFacts, earlier: list[RecordFacts], settings: MatchSettings
) -> list[Finding]:
    """DuplicateChargeSuspected for a charge that repeats an earlier one of the customer.

    ``earlier`` are the customer's other records; one that charged the same amount and
    currency within the duplicate window before this one (and is not matched to the
    same payment, which :func:`judge_group` covers) makes this one suspect.
    """
    if record.customer_ref is None or record.status not in CHARGED:
        return []
    for other in earlier:
        if (
            other.id != record.id
            and other.customer_ref == record.customer_ref
            and other.currency == record.currency
            and other.amount_minor == record.amount_minor
            and other.status in CHARGED
            and (other.occurred_at, other.id) < (record.occurred_at, record.id)
            and record.occurred_at - other.occurred_at <= settings.duplicate_window
            and (record.payment_id is None or other.payment_id != record.payment_id)
        ):
            return [
                _record_finding(
                    "DuplicateChargeSuspected",
                    record,
                    {"first_record_id": str(other.id), "rule": "same_customer"},
                )
            ]
    return []


def item_outcome(findings: list[Finding]) -> str:
    """The reconciliation item outcome of a matched pair's findings."""
    return "mismatched" if any(f.type in PAIR_TYPES for f in findings) else "matched"


PAIR_TYPES = frozenset({"AmountMismatch", "CurrencyMismatch", "StatusMismatch"})
