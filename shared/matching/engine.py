"""The incremental matching engine: the rules of shared/matching/rules.py applied to the database.

A :class:`MatchBatch` is one transaction's matching work: one event, one grace-period
check, the up to a hundred pending events a worker task claimed together
(shared/ingest/processing.py), or the imported payments it claimed together
(shared/payments/matching.py). It runs named stages over the batch:

1. **read and lock** (reading.py, locking.py): the match keys' advisory locks, then the
   rows the rules will need in a few set-based statements;
2. **bind** (binding.py): each change folded into its record (batch_rows.py) and the
   record matched to its payment; a lookup that depends on the previous changes (a
   heuristic candidate) is read here, answered from the rows as changed in memory;
3. **judge** (judging.py, pure): the rules over what was read, saying what to open,
   auto-resolve and record as an item;
4. **write** (writing.py): every change in a few multi-row statements, once, at the end.

Changes are matched one after the other, each seeing the previous ones, exactly as if
each had been matched and written alone. The partial unique index on unresolved
discrepancies guarantees at most one per (org, type, payment, record) whatever happens.

Ledger safety: this module reads payments and never writes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.access.organizations import get_organization
from shared.access.settings import effective_match_settings
from shared.discrepancies.disputes import follow_disputes
from shared.discrepancies.lifecycle import DiscrepancyChanges, DiscrepancyRow
from shared.matching.batch_rows import BatchRows
from shared.matching.binding import Binder
from shared.matching.judging import (
    Verdict,
    customer_span,
    discrepancy_changes,
    item_of,
    judge_payment,
    judge_record,
)
from shared.matching.locking import external_key
from shared.matching.reading import BatchReader
from shared.matching.record_fields import RecordFacts, RecordRow, record_facts
from shared.matching.rules import MatchSettings, PaymentFacts
from shared.matching.statements import NO_JIT
from shared.matching.writing import write_changes
from shared.models import Payment, ProviderRecord
from shared.platform.errors import ValidationFailed
from shared.providers import RecordUpdate


def match_settings(*, session: Session, org_id: uuid.UUID) -> MatchSettings:
    """The organisation's matching settings, read now (auto-fix defaults to
    RECONCILIATION_AUTO_FIX)."""
    return effective_match_settings(get_organization(session=session, org_id=org_id))


class MatchBatch:
    """The rows one transaction matches: read in sets, judged in memory, written in sets.

    Nothing is written before :meth:`write`, which the caller runs once, at the end.
    ``settings`` holds every organisation it will meet.
    """

    def __init__(
        self, *, session: Session, now: datetime, settings: Mapping[uuid.UUID, MatchSettings]
    ) -> None:
        session.flush()  # the caller's pending ORM changes must be visible to these reads
        # Lookups by key never gain from JIT compilation, which stale statistics can
        # trigger at 5-150 ms a statement (docs/decisions.md, "Index-shaped lookups").
        session.execute(NO_JIT)
        self.session = session
        self.now = now
        self.settings = settings
        self.rows = BatchRows()
        self.reader = BatchReader(session=session, rows=self.rows, settings=settings)
        self.binder = Binder(reader=self.reader, rows=self.rows, settings=settings, now=now)
        self.discrepancies = DiscrepancyChanges()
        # Each judgement of a disputed record, in order, with its evidence: replayed at the
        # end, so a batch logs what its events matched one at a time would.
        self.disputed: list[tuple[uuid.UUID, RecordFacts, dict[str, Any]]] = []
        self.items: list[tuple[Any, ...]] = []

    # --- reading ------------------------------------------------------------------------

    def prepare_updates(self, changes: Sequence[tuple[uuid.UUID, str, RecordUpdate]]) -> None:
        """Lock the keys of these (org, provider, update) and read what matching them needs."""
        self.reader.read_ahead(changes)

    def prepare_payments(self, payment_ids: Sequence[uuid.UUID]) -> None:
        """Lock the keys of these payments and read what matching them needs."""
        self.reader.read_ahead_payments(payment_ids)

    def load_record(self, record_id: uuid.UUID) -> RecordRow:
        """The record ``record_id``, locked (its keys must be held already)."""
        return self.reader.load_record(record_id)

    def load_payment(self, payment_id: uuid.UUID) -> PaymentFacts | None:
        """The payment ``payment_id`` (None if there is none)."""
        return self.reader.payment(payment_id)

    def check_updates(
        self, org_id: uuid.UUID, provider: str, updates: Sequence[RecordUpdate]
    ) -> None:
        """Raise ValidationFailed, before changing anything, if one of an event's updates
        would create a record without a currency."""
        created: set[str] = set()
        for update in updates:
            reference = update.provider_reference
            if (
                update.currency is None
                and reference not in created
                and self.reader.record(org_id, provider, reference) is None
            ):
                raise ValidationFailed(f"first event about {reference} states no currency")
            created.add(reference)

    # --- matching (bind, read what the judge needs, judge) ------------------------------

    def reconcile_update(
        self, org_id: uuid.UUID, provider: str, update: RecordUpdate, evidence: dict[str, Any]
    ) -> RecordRow:
        """Fold ``update`` into the record it is about (created on first sight) and match
        what it changed. Run :meth:`check_updates` on the event's updates first."""
        record = self.reader.record(org_id, provider, update.provider_reference)
        if record is None:
            record = self.rows.create(org_id, provider, update, self.now)
            self.reader.created(record)
        else:
            self.rows.fold(record, update, self.now)
        if record.merchant_reference:  # held already when prepare_updates saw the update
            self.reader.keys.take(externals=[external_key(org_id, record.merchant_reference)])
        self.reconcile_record(record, evidence)
        return record

    def reconcile_record(self, record: RecordRow, evidence: dict[str, Any]) -> Verdict:
        """Bind a record to its payment, then judge what it touches."""
        previous = self.binder.bind_record(record)
        if previous is not None:
            self.reconcile_payment_group(self.reader.payment(previous), evidence)
        if record.payment_id is not None:
            payment = self.reader.payment(record.payment_id)
            return self.reconcile_payment_group(payment, evidence)
        settings = self.settings[record.org_id]
        customers = self._read_customers([record])
        unresolved = self.reader.unresolved(None, [record.id])
        verdict = judge_record(record, customers, settings, self.now)
        self._record_verdict(record.org_id, verdict, unresolved, evidence)
        self._hold_disputes([record], evidence)
        self._add_item(record.org_id, item_of(verdict, [record], None))
        return verdict

    def reconcile_payment_group(self, payment: PaymentFacts, evidence: dict[str, Any]) -> Verdict:
        """Bind, judge and record a payment with its records."""
        org_id = self.rows.payment_org[payment.id]
        group = self.binder.bind_payment(payment)
        customers = self._read_customers(group)
        unresolved = self.reader.unresolved(payment.id, [record.id for record in group])
        verdict = judge_payment(payment, group, customers, self.settings[org_id], self.now)
        self._record_verdict(org_id, verdict, unresolved, evidence)
        self._hold_disputes(group, evidence)
        self._add_item(org_id, item_of(verdict, group, payment))
        return verdict

    def _read_customers(self, records: list[RecordRow]) -> dict[uuid.UUID, list[RecordRow]]:
        """Each record's customer's records around it, as held right after reading them."""
        customers = {}
        for record in records:
            span = customer_span(record, self.settings[record.org_id])
            if span is not None:
                customers[record.id] = list(
                    self.reader.customer_records(record.org_id, record.customer_ref, *span)
                )
        return customers

    def _record_verdict(
        self,
        org_id: uuid.UUID,
        verdict: Verdict,
        unresolved: set[DiscrepancyRow],
        evidence: dict[str, Any],
    ) -> None:
        """Open what the verdict found and, with auto-fix, resolve what it no longer finds."""
        to_open, to_resolve = discrepancy_changes(
            verdict, unresolved, auto_fix=self.settings[org_id].auto_fix
        )
        for finding in to_open:
            self.rows.add_unresolved(self.discrepancies.open(org_id, finding, evidence))
        for discrepancy in to_resolve:
            self.rows.drop_unresolved(discrepancy)
            self.discrepancies.auto_resolve(discrepancy, evidence)

    def _hold_disputes(self, records: list[RecordRow], evidence: dict[str, Any]) -> None:
        """Keep the judged records' disputes: their discrepancies follow at the end."""
        for record in records:
            if record.dispute_status is not None:
                self.disputed.append((record.org_id, record_facts(record), evidence))

    def _add_item(self, org_id: uuid.UUID, item: tuple[Any, ...] | None) -> None:
        if item is not None:
            self.items.append((org_id, *item))

    # --- writing ------------------------------------------------------------------------

    def write(self) -> None:
        """Write every change, a multi-row statement per kind; once, at the end. Then the
        disputed records' discrepancies follow their disputes, judgement by judgement (rare:
        one statement or two each)."""
        write_changes(
            session=self.session,
            rows=self.rows,
            discrepancies=self.discrepancies,
            items=self.items,
            now=self.now,
        )
        for org_id, facts, evidence in self.disputed:
            follow_disputes(
                session=self.session, org_id=org_id, records=[facts], now=self.now,
                evidence=evidence,
            )  # fmt: skip


# --- Entry points for one record or payment -------------------------------------------


def reconcile_record(
    *,
    session: Session,
    record: ProviderRecord,
    settings: MatchSettings,
    now: datetime,
    evidence: dict[str, Any],
) -> Verdict:
    """Bind a record to its payment, then judge what it touches (its keys held by the caller)."""
    batch = MatchBatch(session=session, now=now, settings={record.org_id: settings})
    verdict = batch.reconcile_record(batch.load_record(record.id), evidence)
    batch.write()
    return verdict


def reconcile_payment_group(
    *,
    session: Session,
    payment: Payment,
    settings: MatchSettings,
    now: datetime,
    evidence: dict[str, Any],
) -> Verdict:
    """Bind, judge and record a payment with its records (its keys held by the caller)."""
    batch = MatchBatch(session=session, now=now, settings={payment.org_id: settings})
    verdict = batch.reconcile_payment_group(batch.load_payment(payment.id), evidence)
    batch.write()
    return verdict


def reconcile_payments(
    *,
    session: Session,
    payment_ids: Sequence[uuid.UUID],
    settings: Mapping[uuid.UUID, MatchSettings],
    now: datetime,
    evidence: dict[str, Any],
) -> dict[uuid.UUID, Verdict]:
    """Match these payments together, each judged in order as if alone (a repeated id
    once); the verdict of each payment that exists.

    Every payment is read once its keys are held (an import may have just changed it);
    ``settings`` holds every organisation of the payments. Each evaluation's evidence is
    ``evidence`` with the payment's id.
    """
    batch = MatchBatch(session=session, now=now, settings=settings)
    ids = list(dict.fromkeys(payment_ids))
    batch.prepare_payments(ids)
    verdicts = {}
    for payment_id in ids:
        payment = batch.load_payment(payment_id)
        if payment is not None:
            verdicts[payment_id] = batch.reconcile_payment_group(
                payment, {**evidence, "payment_id": str(payment_id)}
            )
    batch.write()
    return verdicts


def reconcile_payment(
    *, session: Session, payment_id: uuid.UUID, now: datetime, evidence: dict[str, Any]
) -> Verdict | None:
    """Match one internal payment after it was created or changed (None if it is gone)."""
    org_id = session.scalar(select(Payment.org_id).where(Payment.id == payment_id))
    if org_id is None:
        return None
    return reconcile_payments(
        session=session,
        payment_ids=[payment_id],
        settings={org_id: match_settings(session=session, org_id=org_id)},
        now=now,
        evidence=evidence,
    ).get(payment_id)
