"""The judging stage of a matching batch: the rules over the rows read, and what follows.

Pure: no Session, no I/O. Everything a judgement needs (the payment, its group of
records, the customers' records around them, the unresolved discrepancies it answers for)
is read and locked by the reading stage first; the functions here apply the rules of
shared/matching/rules.py and say what to open, what to auto-resolve and which
reconciliation item to record.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared.discrepancies.lifecycle import DiscrepancyRow
from shared.matching.record_fields import RecordFacts, RecordRow, record_facts
from shared.matching.rules import (
    DISPUTE_OPENED,
    Dispute,
    Finding,
    MatchSettings,
    PaymentFacts,
    dispute_of,
    item_outcome,
    judge_customer_duplicate,
    judge_dispute,
    judge_group,
    judge_unmatched_record,
    primary_record,
)

# A reconciliation item: (payment, record, outcome, match method, amount difference).
Item = tuple[uuid.UUID | None, uuid.UUID | None, str, str | None, int | None]


@dataclass(frozen=True)
class Verdict:
    """What one evaluation found, and which discrepancies it is answerable for."""

    findings: list[Finding]
    payment_id: uuid.UUID | None
    record_ids: list[uuid.UUID]


def customer_span(record: RecordRow, settings: MatchSettings) -> tuple[datetime, datetime] | None:
    """When the customer's earlier charges that this one could repeat happened (None: the
    record cannot be a customer duplicate, nothing to read)."""
    if record.customer_ref is None or record.amount_minor is None:
        return None
    return record.occurred_at - settings.duplicate_window, record.occurred_at


def customer_duplicates(
    record: RecordRow, customer_records: Iterable[RecordRow], settings: MatchSettings
) -> list[Finding]:
    """DuplicateChargeSuspected if the record repeats one of the customer's records."""
    span = customer_span(record, settings)
    if span is None:
        return []
    earliest, latest = span
    siblings = sorted(
        (
            sibling
            for sibling in customer_records
            if sibling is not record
            and sibling.currency == record.currency
            and sibling.amount_minor == record.amount_minor
            and earliest <= sibling.occurred_at <= latest
        ),
        key=lambda sibling: (sibling.occurred_at, sibling.id),
    )
    return judge_customer_duplicate(
        record_facts(record), [record_facts(s) for s in siblings], settings
    )


def judge_payment(
    payment: PaymentFacts,
    group: list[RecordRow],
    customers: Mapping[uuid.UUID, Iterable[RecordRow]],
    settings: MatchSettings,
    now: datetime,
) -> Verdict:
    """The findings of a payment and the records matched to it (``customers``: each
    record's customer's records, by record id)."""
    findings = judge_group(payment, [record_facts(r) for r in group], settings, now)
    for record in group:
        findings += customer_duplicates(record, customers.get(record.id, ()), settings)
    return Verdict(findings, payment.id, [record.id for record in group])


def judge_record(
    record: RecordRow,
    customers: Mapping[uuid.UUID, Iterable[RecordRow]],
    settings: MatchSettings,
    now: datetime,
) -> Verdict:
    """The findings of a record matched to no payment."""
    findings = judge_unmatched_record(record_facts(record), settings, now)
    findings += customer_duplicates(record, customers.get(record.id, ()), settings)
    return Verdict(findings, None, [record.id])


def discrepancy_changes(
    verdict: Verdict, unresolved: Iterable[DiscrepancyRow], *, auto_fix: bool
) -> tuple[list[Finding], list[DiscrepancyRow]]:
    """What to open (a finding no unresolved discrepancy holds yet) and, with auto-fix,
    what to resolve (an unresolved discrepancy the verdict no longer finds, in id order).
    An evaluation never clears what it did not check: ``unresolved`` is its scope.

    DisputeOpened is left out: a dispute's discrepancy follows the provider's dispute
    status (:func:`dispute_changes`), not this open-or-clear rule.
    """
    unresolved = [d for d in unresolved if d.type != DISPUTE_OPENED]
    found = {f.key: f for f in verdict.findings if f.type != DISPUTE_OPENED}
    open_keys = {discrepancy.key for discrepancy in unresolved}
    to_open = [finding for key, finding in found.items() if key not in open_keys]
    to_resolve = []
    if auto_fix:
        to_resolve = [
            discrepancy
            for discrepancy in sorted(unresolved, key=lambda d: d.id)
            if discrepancy.key not in found
        ]
    return to_open, to_resolve


def item_of(verdict: Verdict, group: list[RecordRow], payment: PaymentFacts | None) -> Item | None:
    """The reconciliation item of this evaluation (None: it records none)."""
    types = {finding.type for finding in verdict.findings}
    if payment is not None and group:
        primary = primary_record([record_facts(r) for r in group])
        difference = next(
            (f.difference_minor for f in verdict.findings if f.type == "AmountMismatch"), None
        )
        return (
            payment.id,
            primary.id,
            item_outcome(verdict.findings),
            primary.match_method,
            difference,
        )
    if payment is not None and "MissingProviderRecord" in types:
        return (payment.id, None, "missing_provider", None, None)
    if payment is None and "MissingInternalRecord" in types:
        return (None, verdict.record_ids[0], "missing_internal", None, None)
    return None


# --- disputes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredDispute:
    """A DisputeOpened discrepancy as stored: what it says of its dispute."""

    id: uuid.UUID
    unresolved: bool
    payment_id: uuid.UUID | None
    amount_minor: int
    currency: str
    dispute: Dispute

    def says(self, finding: Finding) -> bool:
        """True when it states the finding's dispute (amount, currency, status, reason, due
        date) on the finding's payment."""
        return (self.payment_id, *_dispute_state(self)) == (
            finding.payment_id,
            *_dispute_state(finding),
        )


def _dispute_state(held: StoredDispute | Finding) -> tuple:
    return (held.amount_minor, held.currency, held.dispute)


@dataclass
class DisputeChanges:
    """What the disputes of some records change: findings to open, discrepancies to
    update to a finding, and discrepancies to resolve because their dispute was won."""

    to_open: list[Finding] = field(default_factory=list)
    to_update: list[tuple[StoredDispute, Finding]] = field(default_factory=list)
    to_resolve: list[tuple[StoredDispute, Dispute]] = field(default_factory=list)


def dispute_changes(
    records: Iterable[RecordFacts], held: Mapping[uuid.UUID, Sequence[StoredDispute]]
) -> DisputeChanges:
    """How each disputed record's DisputeOpened discrepancy follows its dispute.

    ``held``: each record's DisputeOpened discrepancies, newest first. A dispute won
    resolves the unresolved one; any other status opens one, or updates the unresolved
    one to what the provider now says (its payment too, when the record was bound since).
    A resolved one that already says all of it is not opened again: finance closed it and
    nothing has changed since. A dispute first seen won opens nothing.
    """
    changes = DisputeChanges()
    for record in records:
        dispute = dispute_of(record)
        if dispute is None:
            continue
        stored = held.get(record.id, ())
        unresolved = next((d for d in stored if d.unresolved), None)
        found = judge_dispute(record, record.payment_id)
        if not found:
            if unresolved is not None:
                changes.to_resolve.append((unresolved, dispute))
            continue
        finding = found[0]
        if unresolved is not None:
            if not unresolved.says(finding):
                changes.to_update.append((unresolved, finding))
        elif not stored or _dispute_state(stored[0]) != _dispute_state(finding):
            changes.to_open.append(finding)
    return changes
