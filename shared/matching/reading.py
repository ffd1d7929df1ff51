"""The reading stage of a matching batch: match keys locked, then rows read in sets.

:meth:`BatchReader.read_ahead` takes the keys of a batch of events and reads, in a few
set-based statements, every row matching them will need. A lookup that depends on what
the batch changed before it (a heuristic candidate, a payment found through one, the
customer's records around a new time) is read when the matching asks for it, before the
rules judge; every lookup answers from the rows as changed in memory (BatchRows).
Rows are read ``FOR UPDATE`` (in id order) only under their match keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from shared.discrepancies.lifecycle import DiscrepancyRow
from shared.matching.batch_rows import BatchRows
from shared.matching.locking import HeldKeys, external_key, reference_key
from shared.matching.record_fields import RecordRow
from shared.matching.rules import MatchSettings, PaymentFacts
from shared.matching.statements import (
    EXTERNALS,
    LOAD_CUSTOMERS,
    LOAD_PAYMENTS,
    LOCK_DISCREPANCIES,
    LOCK_RECORDS,
    PAYMENTS_NEAR,
    RECORDS_NEAR,
    REFERENCES,
    STORED_KEYS,
    RecordKey,
)
from shared.platform.bulk import column_arrays
from shared.providers import RecordUpdate


class BatchReader:
    """Reads rows into a batch's BatchRows, once each, under the keys it takes."""

    def __init__(
        self, *, session: Session, rows: BatchRows, settings: Mapping[uuid.UUID, MatchSettings]
    ) -> None:
        self.session = session
        self.rows = rows
        self.settings = settings
        self.keys = HeldKeys(session)
        # What has been read: payments whose bind candidates, customers (over a span of
        # time) whose records, payments and records whose unresolved discrepancies.
        self._grouped: set[uuid.UUID] = set()
        self._customer_spans: dict[tuple[uuid.UUID, str], tuple[datetime, datetime]] = {}
        self._scoped_payments: set[uuid.UUID] = set()
        self._scoped_records: set[uuid.UUID] = set()

    def read_ahead(self, changes: Sequence[tuple[uuid.UUID, str, RecordUpdate]]) -> None:
        """Lock the keys of these (org, provider, update) and read what matching them needs.

        Every ``ref:`` key first (sorted), then the records' stored merchant references are
        read and every ``ext:`` key is taken (sorted), then, in one statement each: the
        payments these references find, the records (locked), the customers' records
        around these times and the unresolved discrepancies (locked).
        """
        rows = self.rows
        references = {
            (org, provider, update.provider_reference) for org, provider, update in changes
        }
        self.keys.take(references=[reference_key(*key) for key in references])
        stored = self.session.execute(
            STORED_KEYS, column_arrays(list(references), REFERENCES)
        ).all()
        externals = {
            (org, provider, update.merchant_reference)
            for org, provider, update in changes
            if update.merchant_reference
        } | {(org, provider, merchant) for org, provider, merchant, _ in stored if merchant}
        self.keys.take(externals=[external_key(org, external) for org, _, external in externals])
        self._load_payments(references, externals, {row.payment_id for row in stored} - {None})
        self._load_records(
            references | rows.payment_references(rows.payments.values()),
            {(rows.payment_org[p.id], p.provider, p.external_id) for p in rows.payments.values()},
            payment_ids=set(rows.payments),
        )
        moments = [record.occurred_at for record in rows.records.values()] + [
            update.occurred_at or update.event_at for _, _, update in changes
        ]
        customers = {
            (record.org_id, record.customer_ref)
            for record in rows.records.values()
            if record.customer_ref
        } | {(org, update.customer_ref) for org, _, update in changes if update.customer_ref}
        if customers:
            window = max(self.settings[org].duplicate_window for org, _ in customers)
            self._load_customers(dict.fromkeys(customers, (min(moments) - window, max(moments))))
        self._load_discrepancies(
            set(rows.payments), {record.id for record in rows.records.values() if record.locked}
        )

    def read_ahead_payments(self, payment_ids: Sequence[uuid.UUID]) -> None:
        """Lock the match keys of these payments and read what matching them needs.

        Their ``ref:`` and ``ext:`` keys are taken in one statement (the global order),
        then, in one statement each: the payments again (an import may have changed them
        before the keys were held), the records their binds look at (locked), the
        customers' records around those records' times and the unresolved discrepancies
        (locked). A key a re-read payment gained is taken after the others.
        """
        ids = list(payment_ids)
        keyed = self.session.execute(
            LOAD_PAYMENTS,
            column_arrays([], REFERENCES) | column_arrays([], EXTERNALS) | {"ids": ids},
        ).all()
        self._take_payment_keys(
            (row.org_id, row.provider, row.provider_reference, row.external_id) for row in keyed
        )
        self._load_payments(set(), set(), set(ids))
        rows = self.rows
        payments = [rows.payments[payment_id] for payment_id in ids if payment_id in rows.payments]
        self._take_payment_keys(
            [
                (rows.payment_org[p.id], p.provider, p.provider_reference, p.external_id)
                for p in payments
            ]
        )
        self._load_records(
            rows.payment_references(payments),
            {(rows.payment_org[p.id], p.provider, p.external_id) for p in payments},
            payment_ids=[p.id for p in payments],
        )
        # Each customer's records over the spans its records will be judged against (a
        # batch of a day's payments would otherwise read every customer's whole day).
        spans: dict[tuple[uuid.UUID, str], tuple[datetime, datetime]] = {}
        for record in list(rows.records.values()):
            if record.customer_ref:
                key = (record.org_id, record.customer_ref)
                window = self.settings[record.org_id].duplicate_window
                earliest, latest = spans.get(key, (record.occurred_at, record.occurred_at))
                spans[key] = (
                    min(earliest, record.occurred_at - window),
                    max(latest, record.occurred_at),
                )
        if spans:
            self._load_customers(spans)
        self._load_discrepancies(
            {p.id for p in payments},
            {record.id for record in rows.records.values() if record.locked},
        )

    def _take_payment_keys(self, keys: Iterable[tuple[uuid.UUID, str, str | None, str]]) -> None:
        """Take the match keys of payments given as (org, provider, provider reference,
        external id)."""
        keys = list(keys)
        self.keys.take(
            references=[
                reference_key(org, provider, reference)
                for org, provider, reference, _ in keys
                if reference
            ],
            externals=[external_key(org, external) for org, _, _, external in keys],
        )

    def load_record(self, record_id: uuid.UUID) -> RecordRow:
        """The record ``record_id``, locked (its keys must be held already)."""
        self._load_records((), (), ids={record_id})
        return self.rows.records[record_id]

    def created(self, record: RecordRow) -> None:
        """Note a record the batch created: it has no discrepancy to read."""
        self._scoped_records.add(record.id)

    # --- lookups (reading what was not read yet) -------------------------------------------

    def record(self, org_id: uuid.UUID, provider: str, reference: str) -> RecordRow | None:
        """The record of this provider reference, locked under its ``ref:`` key."""
        key = (org_id, provider, reference)
        if key not in self.rows.record_by_reference:
            self.keys.take(references=[reference_key(*key)])
            self._load_records([key], ())
        return self.rows.record_by_reference[key]

    def payment(self, payment_id: uuid.UUID) -> PaymentFacts | None:
        """The payment ``payment_id`` (None if there is none)."""
        if payment_id not in self.rows.payments:
            self._load_payments(set(), set(), {payment_id})
        return self.rows.payments.get(payment_id)

    def payment_with_reference(self, key: RecordKey) -> PaymentFacts | None:
        """The payment stating this provider reference (the lowest id of several)."""
        if key not in self.rows.payment_by_reference:
            self._load_payments({key}, set(), set())
        return self.rows.payment_by_reference[key]

    def payment_with_external(self, key: RecordKey) -> PaymentFacts | None:
        """The payment of this external id."""
        if key not in self.rows.payment_by_external:
            self._load_payments(set(), {key}, set())
        return self.rows.payment_by_external[key]

    def read_candidates(self, payment: PaymentFacts) -> None:
        """Read (locked) the records a payment's bind looks at, unless read already: its
        references' and those bound to it."""
        if payment.id not in self._grouped:
            org_id = self.rows.payment_org[payment.id]
            self._load_records(
                self.rows.payment_references([payment]),
                [(org_id, payment.provider, payment.external_id)],
                payment_ids=[payment.id],
            )

    def customer_records(
        self, org_id: uuid.UUID, customer: str, earliest: datetime, latest: datetime
    ) -> set[RecordRow]:
        """The customer's records held, complete over ``earliest``..``latest``."""
        key = (org_id, customer)
        span = self._customer_spans.get(key)
        if span is None or earliest < span[0] or latest > span[1]:
            if span is not None:
                earliest, latest = min(earliest, span[0]), max(latest, span[1])
            self._load_customers({key: (earliest, latest)})
        return self.rows.by_customer[key]

    def unresolved(
        self, payment_id: uuid.UUID | None, record_ids: Iterable[uuid.UUID]
    ) -> set[DiscrepancyRow]:
        """The unresolved discrepancies (locked) an evaluation of this payment and these
        records is answerable for: the payment's and the records', whether this call reads
        them or an earlier read of the batch (read_ahead) already did."""
        payments = {payment_id} - {None}
        self._load_discrepancies(payments, set(record_ids))
        return self.rows.unresolved(payments, record_ids)

    def unbound_payments_near(
        self, org_id: uuid.UUID, provider: str, currency: str, amount: int, moment: datetime
    ) -> list[PaymentFacts]:
        """Heuristic candidates: the payments of this amount within the window around
        ``moment`` that no record is bound to (in the database or in the batch)."""
        window = self.settings[org_id].heuristic_window
        rows = self.session.execute(
            PAYMENTS_NEAR,
            _near(org_id, provider, currency, amount, moment - window, moment + window),
        ).all()
        unbound = []
        for row in rows:
            payment = self.rows.add_payment(org_id, PaymentFacts(*row[1:-1]))
            bound_elsewhere = any(record_id not in self.rows.records for record_id in row.bound)
            if not bound_elsewhere and not self.rows.by_payment[payment.id]:
                unbound.append(payment)
        return unbound

    def unbound_records_near(
        self, org_id: uuid.UUID, provider: str, currency: str, amount: int, moment: datetime
    ) -> list[RecordRow]:
        """Heuristic candidates: the unbound records of this amount within the window
        around ``moment``, in id order."""
        window = self.settings[org_id].heuristic_window
        earliest, latest = moment - window, moment + window
        rows = self.session.execute(
            RECORDS_NEAR, _near(org_id, provider, currency, amount, earliest, latest)
        ).all()
        for row in rows:
            self.rows.add_record(row, locked=False)
        return sorted(
            (
                record
                for record in self.rows.records.values()
                if record.org_id == org_id
                and record.provider == provider
                and record.currency == currency
                and record.amount_minor == amount
                and earliest <= record.occurred_at <= latest
                and record.payment_id is None
            ),
            key=lambda record: record.id,
        )

    # --- statements ------------------------------------------------------------------------

    def _load_payments(
        self, references: set[RecordKey], externals: set[RecordKey], ids: set[uuid.UUID]
    ) -> None:
        rows = self.rows
        found = self.session.execute(
            LOAD_PAYMENTS,
            column_arrays(list(references), REFERENCES)
            | column_arrays(list(externals), EXTERNALS)
            | {"ids": list(ids)},
        ).all()
        for key in references:
            rows.payment_by_reference.setdefault(key, None)
        for key in externals:
            rows.payment_by_external.setdefault(key, None)
        for row in found:
            payment = rows.add_payment(row.org_id, PaymentFacts(*row[1:]))
            by_reference = (row.org_id, payment.provider, payment.provider_reference)
            # Several payments may state one provider reference: any is "the" match; the
            # lowest id makes the choice repeatable.
            if by_reference in references:
                known = rows.payment_by_reference[by_reference]
                if known is None or payment.id < known.id:
                    rows.payment_by_reference[by_reference] = payment
            by_external = (row.org_id, payment.provider, payment.external_id)
            if by_external in externals:
                rows.payment_by_external[by_external] = payment

    def _load_records(
        self,
        references: Iterable[RecordKey],
        externals: Iterable[RecordKey],
        *,
        payment_ids: Iterable[uuid.UUID] = (),
        ids: Iterable[uuid.UUID] = (),
    ) -> None:
        references, payment_ids = set(references), set(payment_ids)
        found = self.session.execute(
            LOCK_RECORDS,
            column_arrays(list(references), REFERENCES)
            | column_arrays(list(externals), EXTERNALS)
            | {"payment_ids": list(payment_ids), "ids": list(ids)},
        ).all()
        for row in found:
            self.rows.add_record(row, locked=True)
        for key in references:
            self.rows.record_by_reference.setdefault(key, None)
        self._grouped |= payment_ids

    def _load_customers(
        self, spans: Mapping[tuple[uuid.UUID, str], tuple[datetime, datetime]]
    ) -> None:
        """Read each (org, customer)'s records within its (earliest, latest) span."""
        keys = list(spans)
        found = self.session.execute(
            LOAD_CUSTOMERS,
            {
                "orgs": [org for org, _ in keys],
                "customers": [customer for _, customer in keys],
                "earliest": [spans[key][0] for key in keys],
                "latest": [spans[key][1] for key in keys],
            },
        ).all()
        for row in found:
            self.rows.add_record(row, locked=False)
        for key, (earliest, latest) in spans.items():
            span = self._customer_spans.get(key, (earliest, latest))
            self._customer_spans[key] = (min(span[0], earliest), max(span[1], latest))

    def _load_discrepancies(self, payment_ids: set[uuid.UUID], record_ids: set[uuid.UUID]) -> None:
        payment_ids = payment_ids - self._scoped_payments
        record_ids = record_ids - self._scoped_records
        if not payment_ids and not record_ids:
            return
        found = self.session.execute(
            LOCK_DISCREPANCIES,
            {"payment_ids": list(payment_ids), "record_ids": list(record_ids)},
        ).all()
        for row in found:
            self.rows.add_unresolved(DiscrepancyRow(*row))
        self._scoped_payments |= payment_ids
        self._scoped_records |= record_ids


def _near(
    org_id: uuid.UUID,
    provider: str,
    currency: str,
    amount: int,
    earliest: datetime,
    latest: datetime,
) -> dict[str, object]:
    return {
        "org_id": org_id,
        "provider": provider,
        "currency": currency,
        "amount": amount,
        "earliest": earliest,
        "latest": latest,
    }
