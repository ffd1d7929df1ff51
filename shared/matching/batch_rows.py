"""The rows one matching batch holds in memory, with the indexes the matching looks them up by.

Rows are added as the reading stage reads them (shared/matching/reading.py) and changed
here as events are folded in and records bound; the writing stage writes them once, at
the end (shared/matching/writing.py). Every index stays up to date as rows change, so each
change sees the previous ones, exactly as if each had been matched and written alone.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from shared.discrepancies.lifecycle import DiscrepancyRow
from shared.matching.record_fields import (
    ROW_FLAGS,
    RecordRow,
    RecordState,
    copy_state,
    state_of,
)
from shared.matching.records import derived_status, merge_update, new_state, refunded_total
from shared.matching.rules import PaymentFacts
from shared.matching.statements import RecordKey
from shared.platform.ids import new_id
from shared.providers import RecordUpdate


class BatchRows:
    """Records, payments and unresolved discrepancies read or made by one batch."""

    def __init__(self) -> None:
        self.records: dict[uuid.UUID, RecordRow] = {}
        self.payments: dict[uuid.UUID, PaymentFacts] = {}
        self.payment_org: dict[uuid.UUID, uuid.UUID] = {}
        # Lookups, complete for every key present (None: there is no such row).
        self.record_by_reference: dict[RecordKey, RecordRow | None] = {}
        self.payment_by_reference: dict[RecordKey, PaymentFacts | None] = {}
        self.payment_by_external: dict[RecordKey, PaymentFacts | None] = {}
        # Indexes of the rows in memory, kept up to date as they change.
        self.by_payment: defaultdict[uuid.UUID, set[RecordRow]] = defaultdict(set)
        self.by_merchant: defaultdict[RecordKey, set[RecordRow]] = defaultdict(set)
        self.by_customer: defaultdict[tuple[uuid.UUID, str], set[RecordRow]] = defaultdict(set)
        self.unresolved_by_payment: defaultdict[uuid.UUID, set[DiscrepancyRow]] = defaultdict(set)
        self.unresolved_by_record: defaultdict[uuid.UUID, set[DiscrepancyRow]] = defaultdict(set)

    # --- rows as read --------------------------------------------------------------------

    def add_payment(self, org_id: uuid.UUID, payment: PaymentFacts) -> PaymentFacts:
        """Hold a payment read; the one held already wins."""
        known = self.payments.setdefault(payment.id, payment)
        self.payment_org[payment.id] = org_id
        return known

    def add_record(self, row: Sequence[Any], *, locked: bool) -> RecordRow:
        """Hold a record read (its columns in table order); the batch's version, maybe
        already changed, wins."""
        known = self.records.get(row[0])
        if known is not None:
            known.locked |= locked
            return known
        record = RecordRow(*row, locked=locked)
        self._hold(record)
        return record

    def add_unresolved(self, discrepancy: DiscrepancyRow) -> None:
        """Hold an unresolved discrepancy, read or just opened."""
        if discrepancy.payment_id is not None:
            self.unresolved_by_payment[discrepancy.payment_id].add(discrepancy)
        else:
            self.unresolved_by_record[discrepancy.provider_record_id].add(discrepancy)

    def drop_unresolved(self, discrepancy: DiscrepancyRow) -> None:
        """Forget a discrepancy that is being resolved."""
        if discrepancy.payment_id is not None:
            self.unresolved_by_payment[discrepancy.payment_id].discard(discrepancy)
        else:
            self.unresolved_by_record[discrepancy.provider_record_id].discard(discrepancy)

    def unresolved(
        self, payment_ids: Iterable[uuid.UUID], record_ids: Iterable[uuid.UUID]
    ) -> set[DiscrepancyRow]:
        """The unresolved discrepancies held of these payments, and of these records
        without a payment."""
        return set().union(
            *(self.unresolved_by_payment[payment_id] for payment_id in payment_ids),
            *(self.unresolved_by_record[record_id] for record_id in record_ids),
        )

    def payment_references(self, payments: Iterable[PaymentFacts]) -> set[RecordKey]:
        """The (org, provider, provider reference) keys of these payments that state one."""
        return {
            (self.payment_org[p.id], p.provider, p.provider_reference)
            for p in payments
            if p.provider_reference
        }

    # --- changes -------------------------------------------------------------------------

    def create(
        self, org_id: uuid.UUID, provider: str, update: RecordUpdate, now: datetime
    ) -> RecordRow:
        """A new record of the object ``update`` is about (first seen in it)."""
        state = new_state(update, update.currency)
        unset = dict.fromkeys(RecordRow.__dataclass_fields__)
        record = RecordRow(
            **unset
            | dict.fromkeys(ROW_FLAGS, False)
            | {
                "id": new_id(),
                "org_id": org_id,
                "provider": provider,
                "provider_reference": update.provider_reference,
                "status": "pending",
                "amount_refunded_minor": 0,
                "refunds": {},
                "reported_refunded_minor": 0,
                "created_at": now,
                "updated_at": now,
                "locked": True,
                "new": True,
            }
        )
        self._write_state(record, state, now)
        self._hold(record)
        return record

    def fold(self, record: RecordRow, update: RecordUpdate, now: datetime) -> None:
        """Fold ``update`` into the record's state."""
        self._unindex(record)
        self._write_state(record, merge_update(state_of(record), update), now)
        self._index(record)

    def bind(
        self,
        record: RecordRow,
        payment: PaymentFacts | None,
        method: str | None,
        now: datetime,
    ) -> None:
        """Match the record to ``payment`` by ``method`` (None: to no payment)."""
        self._unindex(record)
        record.payment_id = payment.id if payment else None
        record.match_method = method
        record.matched_at = now if payment else None
        record.rebound = True
        self._index(record)

    # --- indexes -------------------------------------------------------------------------

    def _hold(self, record: RecordRow) -> None:
        self.records[record.id] = record
        self.record_by_reference[(record.org_id, record.provider, record.provider_reference)] = (
            record
        )
        self._index(record)

    @staticmethod
    def _write_state(record: RecordRow, state: RecordState, now: datetime) -> None:
        copy_state(state, record)
        record.status = derived_status(state)
        record.amount_refunded_minor = refunded_total(state)
        record.updated_at = now
        record.folded = True

    def _indexes_of(self, record: RecordRow) -> list[set[RecordRow]]:
        """The index entries the record belongs in, as it is now."""
        entries = []
        if record.payment_id is not None:
            entries.append(self.by_payment[record.payment_id])
        if record.merchant_reference:
            entries.append(
                self.by_merchant[(record.org_id, record.provider, record.merchant_reference)]
            )
        if record.customer_ref:
            entries.append(self.by_customer[(record.org_id, record.customer_ref)])
        return entries

    def _index(self, record: RecordRow) -> None:
        for entry in self._indexes_of(record):
            entry.add(record)

    def _unindex(self, record: RecordRow) -> None:
        for entry in self._indexes_of(record):
            entry.discard(record)
