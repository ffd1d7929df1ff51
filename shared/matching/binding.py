"""Binding: which payment each record is matched to, in the matching order of the rules.

By provider reference, else merchant reference = the payment's external id, else the
heuristic (one candidate on each side). The candidates come from the reading stage, which
reads what the batch does not hold yet; the rules (shared/matching/rules.py) decide.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from shared.matching.batch_rows import BatchRows
from shared.matching.reading import BatchReader
from shared.matching.record_fields import RecordRow, record_facts
from shared.matching.rules import (
    MatchSettings,
    PaymentFacts,
    heuristic_fits,
    reference_method,
    unique_heuristic_pair,
)


class Binder:
    """Binds a batch's records to payments, changing the rows in memory."""

    def __init__(
        self,
        *,
        reader: BatchReader,
        rows: BatchRows,
        settings: Mapping[uuid.UUID, MatchSettings],
        now: datetime,
    ) -> None:
        self.reader = reader
        self.rows = rows
        self.settings = settings
        self.now = now

    def bind_record(self, record: RecordRow) -> uuid.UUID | None:
        """Match the record to its payment (reference, then heuristic); return the payment it
        was bound to before, when that changed (its group must be judged again)."""
        previous = record.payment_id
        found = self._reference_match(record)
        if found is not None:
            payment, method = found
        elif record.match_method == "heuristic" and previous is not None:
            payment = self.reader.payment(previous)
            window = self.settings[record.org_id].heuristic_window
            keep = payment is not None and heuristic_fits(payment, record_facts(record), window)
            payment, method = (payment, "heuristic") if keep else (None, None)
        else:
            payment = self._heuristic_payment(record)
            method = "heuristic" if payment else None
        if (payment.id if payment else None) != previous or record.match_method != method:
            self.rows.bind(record, payment, method, self.now)
        return previous if previous != record.payment_id else None

    def bind_payment(self, payment: PaymentFacts) -> list[RecordRow]:
        """Match unbound records to the payment; return every record matched to it."""
        candidates = self._candidates(payment)
        for record in candidates:
            method = reference_method(payment, record_facts(record))
            if record.payment_id is None and method is not None:
                self.rows.bind(record, payment, method, self.now)
        group = [record for record in candidates if record.payment_id == payment.id]
        if not group:
            org_id = self.rows.payment_org[payment.id]
            nearby = self.reader.unbound_records_near(
                org_id,
                payment.provider,
                payment.currency,
                payment.amount_minor,
                payment.occurred_at,
            )
            if len(nearby) == 1:
                found = self._heuristic_payment(nearby[0])
                if found is not None and found.id == payment.id:
                    self.rows.bind(nearby[0], payment, "heuristic", self.now)
                    group = nearby
        return group

    def _reference_match(self, record: RecordRow) -> tuple[PaymentFacts, str] | None:
        payment = self.reader.payment_with_reference(
            (record.org_id, record.provider, record.provider_reference)
        )
        if payment is not None:
            return payment, "provider_reference"
        if record.merchant_reference:
            payment = self.reader.payment_with_external(
                (record.org_id, record.provider, record.merchant_reference)
            )
            if payment is not None:
                return payment, "merchant_reference"
        return None

    def _heuristic_payment(self, record: RecordRow) -> PaymentFacts | None:
        if record.amount_minor is None:
            return None
        near = (record.org_id, record.provider, record.currency, record.amount_minor)
        payments = self.reader.unbound_payments_near(*near, record.occurred_at)
        if len(payments) != 1:
            return None
        records = [
            record_facts(r)
            for r in self.reader.unbound_records_near(*near, payments[0].occurred_at)
        ]
        if unique_heuristic_pair(payments, records) and records[0].id == record.id:
            return payments[0]
        return None

    def _candidates(self, payment: PaymentFacts) -> list[RecordRow]:
        """Records bound to the payment or matching one of its references, in id order."""
        self.reader.read_candidates(payment)
        rows = self.rows
        org_id = rows.payment_org[payment.id]
        pool = (
            rows.by_payment[payment.id]
            | rows.by_merchant[(org_id, payment.provider, payment.external_id)]
        )
        if payment.provider_reference:
            by_reference = rows.record_by_reference.get(
                (org_id, payment.provider, payment.provider_reference)
            )
            pool = pool | ({by_reference} if by_reference else set())
        return sorted(
            (
                record
                for record in pool
                if record.org_id == org_id
                and record.provider == payment.provider
                and (
                    record.payment_id == payment.id
                    or (
                        payment.provider_reference
                        and record.provider_reference == payment.provider_reference
                    )
                    or record.merchant_reference == payment.external_id
                )
            ),
            key=lambda record: record.id,
        )
