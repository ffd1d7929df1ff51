"""The incremental matching engine: the rules of shared/matching/rules.py applied to the database.

A :class:`MatchBatch` is one transaction's matching work: one event, one changed payment,
one grace-period check, or the up to a hundred pending events a worker task claimed
together (shared/ingest/processing.py). It takes the match keys' locks, reads the rows the rules
will need in a few set-based statements, applies the rules to them in memory one change
after the other — each change sees the previous ones, exactly as if each had been matched
and written alone — and writes what changed in a few multi-row statements. A lookup the
batch did not read up front (a heuristic candidate, a payment found through one) is read
when it is needed; every lookup is re-checked against the rows as changed in memory.

Concurrency. Work on a record or payment takes transaction-level advisory locks on its
match keys: ``ref:<org>:<provider>:<provider_reference>`` keys before
``ext:<org>:<external id / merchant reference>`` keys, each kind in sorted order, so every
transaction takes the keys it shares with another in the same order (no deadlock cycle).
An event and a payment change that could match each other share a key and serialise. Rows
are locked (``FOR UPDATE``, in id order) only once the keys are held. The partial unique
index on unresolved discrepancies guarantees at most one per (org, type, payment, record)
whatever happens.

Ledger safety: this module reads payments and never writes them.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shared.access.organizations import auto_fix_enabled
from shared.discrepancies.lifecycle import DiscrepancyChanges, DiscrepancyRow
from shared.matching.records import (
    RecordState,
    derived_status,
    merge_update,
    new_state,
    refunded_total,
)
from shared.matching.rules import (
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
)
from shared.platform.bulk import array_parameters, column_arrays, expire_rewritten
from shared.platform.errors import ValidationFailed
from shared.platform.ids import new_id
from shared.providers import RecordUpdate


def match_settings(*, session: Session, org_id: uuid.UUID) -> MatchSettings:
    """The organisation's matching settings (auto-fix defaults to RECONCILIATION_AUTO_FIX)."""
    org = session.get(Organization, org_id)
    return MatchSettings(
        grace_period=timedelta(seconds=org.grace_period_seconds),
        amount_tolerance_minor=org.amount_tolerance_minor,
        heuristic_window=timedelta(seconds=org.heuristic_window_seconds),
        duplicate_window=timedelta(seconds=org.duplicate_window_seconds),
        auto_fix=auto_fix_enabled(org),
    )


# --- Match keys -----------------------------------------------------------------------

_LOCK_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(hashtextextended(key, 0))) "
    "FROM unnest(CAST(:keys AS text[])) AS key"
)


def reference_key(org_id: uuid.UUID, provider: str, reference: str) -> str:
    """The lock key of everything that matches by this provider reference."""
    return f"ref:{org_id}:{provider}:{reference}"


def external_key(org_id: uuid.UUID, external: str) -> str:
    """The lock key of everything that matches by this external id / merchant reference."""
    return f"ext:{org_id}:{external}"


def lock_keys(*, session: Session, references: Iterable[str], externals: Iterable[str]) -> None:
    """Take these keys' advisory locks in the order every transaction uses, in one statement:
    the ``ref:`` keys sorted, then the ``ext:`` keys sorted (``unnest`` keeps array order)."""
    keys = [*sorted(set(references)), *sorted(set(externals))]
    if keys:
        session.execute(_LOCK_KEYS, {"keys": keys})


def lock_match_keys(
    *,
    session: Session,
    org_id: uuid.UUID,
    provider: str,
    reference: str | None,
    external: str | None,
) -> None:
    """Serialise work that could match the same pair: its ``ref:`` then ``ext:`` key."""
    lock_keys(
        session=session,
        references=[reference_key(org_id, provider, reference)] if reference else [],
        externals=[external_key(org_id, external)] if external else [],
    )


# --- Rows as the rules see them -------------------------------------------------------


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


def record_facts(record: ProviderRecord | RecordRow) -> RecordFacts:
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


# Column -> PostgreSQL type, in the order RecordRow declares them.
RECORD_COLUMNS = {
    "id": "uuid",
    "org_id": "uuid",
    "provider": "text",
    "provider_reference": "text",
    "merchant_reference": "text",
    "amount_minor": "bigint",
    "currency": "text",
    "status": "text",
    "amount_refunded_minor": "bigint",
    "customer_ref": "text",
    "dispute_status": "text",
    "dispute_amount_minor": "bigint",
    "occurred_at": "timestamptz",
    "last_event_at": "timestamptz",
    "payment_status": "text",
    "status_at": "timestamptz",
    "refunds": "jsonb",
    "reported_refunded_minor": "bigint",
    "dispute_at": "timestamptz",
    "payment_id": "uuid",
    "match_method": "text",
    "matched_at": "timestamptz",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
}
BINDING_COLUMNS = ("payment_id", "match_method", "matched_at")
# What folding an event changes (with the binding): every column but the identity.
STATE_COLUMNS = tuple(
    name
    for name in RECORD_COLUMNS
    if name not in ("id", "org_id", "provider", "provider_reference", "created_at")
)
PAYMENT_COLUMNS = ("org_id", *(column.name for column in fields(PaymentFacts)))


@dataclass(eq=False, slots=True)
class RecordRow:
    """A provider record as a batch holds it: read once, changed in memory, written once."""

    id: uuid.UUID
    org_id: uuid.UUID
    provider: str
    provider_reference: str
    merchant_reference: str | None
    amount_minor: int | None
    currency: str
    status: str
    amount_refunded_minor: int
    customer_ref: str | None
    dispute_status: str | None
    dispute_amount_minor: int | None
    occurred_at: datetime
    last_event_at: datetime
    payment_status: str | None
    status_at: datetime | None
    refunds: dict[str, int]
    reported_refunded_minor: int
    dispute_at: datetime | None
    payment_id: uuid.UUID | None
    match_method: str | None
    matched_at: datetime | None
    created_at: datetime
    updated_at: datetime
    locked: bool = False  # read FOR UPDATE under its ref: key: its state may be written
    new: bool = False  # not in the database yet
    folded: bool = False  # an event changed its state (and maybe its binding)
    rebound: bool = False  # its binding changed


def _state_of(record: RecordRow) -> RecordState:
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


def _write_state(record: RecordRow, state: RecordState, now: datetime) -> None:
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
    record.folded = True


@dataclass(frozen=True)
class Verdict:
    """What one evaluation found, and which discrepancies it is answerable for."""

    findings: list[Finding]
    payment_id: uuid.UUID | None
    record_ids: list[uuid.UUID]


# --- Statements -----------------------------------------------------------------------
# Keys travel as parallel arrays, so each statement's text is the same whatever the batch
# size: SQLAlchemy compiles it once and psycopg prepares it on the server.


_REFERENCES = {"ref_org": "uuid", "ref_provider": "text", "ref": "text"}
_EXTERNALS = {"ext_org": "uuid", "ext_provider": "text", "ext": "text"}
_RECORD_SELECT = ", ".join(f"r.{name}" for name in RECORD_COLUMNS)
_PAYMENT_SELECT = ", ".join(f"p.{name}" for name in PAYMENT_COLUMNS)

_STORED_KEYS = text(
    "SELECT r.org_id, r.provider, r.merchant_reference, r.payment_id FROM provider_records r "  # noqa: S608
    f"JOIN unnest({array_parameters(_REFERENCES)}) AS k(org_id, provider, reference) "
    "ON r.org_id = k.org_id AND r.provider = k.provider AND r.provider_reference = k.reference"
)
_LOAD_PAYMENTS = text(
    f"SELECT {_PAYMENT_SELECT} FROM payments p WHERE p.id IN ("  # noqa: S608
    "SELECT p.id FROM payments p "
    f"JOIN unnest({array_parameters(_REFERENCES)}) AS k(org_id, provider, reference) "
    "ON p.org_id = k.org_id AND p.provider = k.provider AND p.provider_reference = k.reference "
    "UNION ALL SELECT p.id FROM payments p "
    f"JOIN unnest({array_parameters(_EXTERNALS)}) AS k(org_id, provider, external_id) "
    "ON p.org_id = k.org_id AND p.external_id = k.external_id AND p.provider = k.provider "
    "UNION ALL SELECT unnest(CAST(:ids AS uuid[])))"
)
# The records of these provider references, those a payment's bind looks at (its
# references and the records bound to it), and these ids; locked in id order.
_LOCK_RECORDS = text(
    f"SELECT {_RECORD_SELECT} FROM provider_records r WHERE r.id IN ("  # noqa: S608
    "SELECT r.id FROM provider_records r "
    f"JOIN unnest({array_parameters(_REFERENCES)}) AS k(org_id, provider, reference) "
    "ON r.org_id = k.org_id AND r.provider = k.provider AND r.provider_reference = k.reference "
    "UNION ALL SELECT r.id FROM provider_records r "
    f"JOIN unnest({array_parameters(_EXTERNALS)}) AS k(org_id, provider, merchant_reference) "
    "ON r.org_id = k.org_id AND r.merchant_reference = k.merchant_reference "
    "AND r.provider = k.provider AND r.merchant_reference IS NOT NULL "
    "UNION ALL SELECT r.id FROM provider_records r "
    "WHERE r.payment_id = ANY(CAST(:payment_ids AS uuid[])) "
    "UNION ALL SELECT unnest(CAST(:ids AS uuid[]))) "
    "ORDER BY r.id FOR UPDATE"
)
_LOAD_CUSTOMERS = text(
    f"SELECT {_RECORD_SELECT} FROM provider_records r "  # noqa: S608
    "JOIN unnest(CAST(:orgs AS uuid[]), CAST(:customers AS text[])) AS k(org_id, customer_ref) "
    "ON r.org_id = k.org_id AND r.customer_ref = k.customer_ref "
    "WHERE r.occurred_at BETWEEN :earliest AND :latest"
)
_LOCK_DISCREPANCIES = text(
    "SELECT id, org_id, type, payment_id, provider_record_id FROM reconciliation_discrepancies "
    "WHERE status IN ('open', 'acknowledged') AND (payment_id = ANY(CAST(:payment_ids AS uuid[])) "
    "OR (payment_id IS NULL AND provider_record_id = ANY(CAST(:record_ids AS uuid[])))) "
    "ORDER BY id FOR UPDATE"
)
# Heuristic candidates. A payment is unbound when no record is bound to it: the ids bound
# in the database come along, the batch knows which of them it rebound.
_PAYMENTS_NEAR = text(
    f"SELECT {_PAYMENT_SELECT}, "  # noqa: S608
    "ARRAY(SELECT r.id FROM provider_records r WHERE r.payment_id = p.id) AS bound "
    "FROM payments p WHERE p.org_id = :org_id AND p.provider = :provider "
    "AND p.currency = :currency AND p.amount_minor = :amount "
    "AND p.occurred_at BETWEEN :earliest AND :latest"
)
_RECORDS_NEAR = text(
    f"SELECT {_RECORD_SELECT} FROM provider_records r WHERE r.org_id = :org_id "  # noqa: S608
    "AND r.provider = :provider AND r.currency = :currency AND r.amount_minor = :amount "
    "AND r.occurred_at BETWEEN :earliest AND :latest AND r.payment_id IS NULL"
)
_INSERT_RECORDS = text(
    f"INSERT INTO provider_records ({', '.join(RECORD_COLUMNS)}) "  # noqa: S608
    f"SELECT * FROM unnest({array_parameters(RECORD_COLUMNS)})"
)


def _update_records(columns: Sequence[str]) -> Any:
    """``UPDATE provider_records`` of these columns from one array per column."""
    assignments = ", ".join(f"{name} = v.{name}" for name in columns)
    arrays = array_parameters({"id": "uuid"} | {name: RECORD_COLUMNS[name] for name in columns})
    return text(
        f"UPDATE provider_records AS r SET {assignments} "  # noqa: S608
        f"FROM unnest({arrays}) AS v(id, {', '.join(columns)}) WHERE r.id = v.id"
    )


_UPDATE_RECORDS = _update_records(STATE_COLUMNS)
_UPDATE_BINDINGS = _update_records(BINDING_COLUMNS)
_ITEM_COLUMNS = {
    "org_id": "uuid",
    "payment_id": "uuid",
    "provider_record_id": "uuid",
    "outcome": "text",
    "match_method": "text",
    "amount_difference_minor": "bigint",
}
_INSERT_ITEMS = text(
    f"INSERT INTO reconciliation_items ({', '.join(_ITEM_COLUMNS)}) "  # noqa: S608
    f"SELECT * FROM unnest({array_parameters(_ITEM_COLUMNS)})"
)

RecordKey = tuple[uuid.UUID, str, str]  # (org, provider, provider reference or external id)


def _key_arrays(keys: Iterable[RecordKey], names: Mapping[str, str]) -> dict[str, list]:
    keys = list(keys)
    return {name: [key[index] for key in keys] for index, name in enumerate(names)}


# --- The batch ------------------------------------------------------------------------


class MatchBatch:
    """The rows one transaction matches: read in sets, judged in memory, written in sets.

    Changes are applied one after the other with the rules of shared/matching/rules.py, each
    seeing the effect of the previous ones; nothing is written before :meth:`write`, which
    the caller runs once, at the end. ``settings`` holds every organisation it will meet.
    """

    def __init__(
        self, *, session: Session, now: datetime, settings: Mapping[uuid.UUID, MatchSettings]
    ) -> None:
        session.flush()  # the caller's pending ORM changes must be visible to these reads
        self.session = session
        self.now = now
        self.settings = settings
        self.records: dict[uuid.UUID, RecordRow] = {}
        self.payments: dict[uuid.UUID, PaymentFacts] = {}
        self._payment_org: dict[uuid.UUID, uuid.UUID] = {}
        self._locked_keys: set[str] = set()
        # Lookups, complete for every key present (None: there is no such row).
        self._record_by_reference: dict[RecordKey, RecordRow | None] = {}
        self._payment_by_reference: dict[RecordKey, PaymentFacts | None] = {}
        self._payment_by_external: dict[RecordKey, PaymentFacts | None] = {}
        # Indexes of the rows in memory, kept up to date as they change.
        self._by_payment: defaultdict[uuid.UUID, set[RecordRow]] = defaultdict(set)
        self._by_merchant: defaultdict[RecordKey, set[RecordRow]] = defaultdict(set)
        self._by_customer: defaultdict[tuple[uuid.UUID, str], set[RecordRow]] = defaultdict(set)
        # What has been read: payments whose bind candidates, customers (over a span of
        # time) whose records, payments and records whose unresolved discrepancies.
        self._grouped: set[uuid.UUID] = set()
        self._customer_spans: dict[tuple[uuid.UUID, str], tuple[datetime, datetime]] = {}
        self._scoped_payments: set[uuid.UUID] = set()
        self._scoped_records: set[uuid.UUID] = set()
        self._unresolved_by_payment: defaultdict[uuid.UUID, set[DiscrepancyRow]] = defaultdict(set)
        self._unresolved_by_record: defaultdict[uuid.UUID, set[DiscrepancyRow]] = defaultdict(set)
        # What to write.
        self.discrepancies = DiscrepancyChanges()
        self._items: list[tuple[Any, ...]] = []

    # --- reading ----------------------------------------------------------------------

    def prepare_updates(self, changes: Sequence[tuple[uuid.UUID, str, RecordUpdate]]) -> None:
        """Lock the keys of these (org, provider, update) and read what matching them needs.

        Every ``ref:`` key first (sorted), then the records' stored merchant references are
        read and every ``ext:`` key is taken (sorted), then, in one statement each: the
        payments these references find, the records (locked), the customers' records
        around these times and the unresolved discrepancies (locked).
        """
        references = {
            (org, provider, update.provider_reference) for org, provider, update in changes
        }
        self._lock(references=[reference_key(*key) for key in references])
        stored = self.session.execute(_STORED_KEYS, _key_arrays(references, _REFERENCES)).all()
        externals = {
            (org, provider, update.merchant_reference)
            for org, provider, update in changes
            if update.merchant_reference
        } | {(org, provider, merchant) for org, provider, merchant, _ in stored if merchant}
        self._lock(externals=[external_key(org, external) for org, _, external in externals])
        self._load_payments(references, externals, {row.payment_id for row in stored} - {None})
        self._load_records(
            references | self._payment_references(self.payments.values()),
            {(self._payment_org[p.id], p.provider, p.external_id) for p in self.payments.values()},
            payment_ids=set(self.payments),
        )
        moments = [record.occurred_at for record in self.records.values()] + [
            update.occurred_at or update.event_at for _, _, update in changes
        ]
        customers = {
            (record.org_id, record.customer_ref)
            for record in self.records.values()
            if record.customer_ref
        } | {(org, update.customer_ref) for org, _, update in changes if update.customer_ref}
        if customers:
            window = max(self.settings[org].duplicate_window for org, _ in customers)
            self._load_customers(customers, min(moments) - window, max(moments))
        self._load_discrepancies(
            set(self.payments), {record.id for record in self.records.values() if record.locked}
        )

    def load_record(self, record_id: uuid.UUID) -> RecordRow:
        """The record ``record_id``, locked (its keys must be held already)."""
        self._load_records((), (), ids={record_id})
        return self.records[record_id]

    def load_payment(self, payment_id: uuid.UUID) -> PaymentFacts | None:
        """The payment ``payment_id`` (None if there is none)."""
        return self._payment(payment_id)

    def _lock(self, *, references: Iterable[str] = (), externals: Iterable[str] = ()) -> None:
        references = set(references) - self._locked_keys
        externals = set(externals) - self._locked_keys
        lock_keys(session=self.session, references=references, externals=externals)
        self._locked_keys |= references | externals

    def _add_payment(self, org_id: uuid.UUID, payment: PaymentFacts) -> PaymentFacts:
        known = self.payments.setdefault(payment.id, payment)
        self._payment_org[payment.id] = org_id
        return known

    def _load_payments(
        self, references: set[RecordKey], externals: set[RecordKey], ids: set[uuid.UUID]
    ) -> None:
        rows = self.session.execute(
            _LOAD_PAYMENTS,
            _key_arrays(references, _REFERENCES)
            | _key_arrays(externals, _EXTERNALS)
            | {"ids": list(ids)},
        ).all()
        for key in references:
            self._payment_by_reference.setdefault(key, None)
        for key in externals:
            self._payment_by_external.setdefault(key, None)
        for row in rows:
            payment = self._add_payment(row.org_id, PaymentFacts(*row[1:]))
            by_reference = (row.org_id, payment.provider, payment.provider_reference)
            # Several payments may state one provider reference: any is "the" match; the
            # lowest id makes the choice repeatable.
            if by_reference in references:
                known = self._payment_by_reference[by_reference]
                if known is None or payment.id < known.id:
                    self._payment_by_reference[by_reference] = payment
            if (row.org_id, payment.provider, payment.external_id) in externals:
                self._payment_by_external[(row.org_id, payment.provider, payment.external_id)] = (
                    payment
                )

    def _payment_references(self, payments: Iterable[PaymentFacts]) -> set[RecordKey]:
        return {
            (self._payment_org[p.id], p.provider, p.provider_reference)
            for p in payments
            if p.provider_reference
        }

    def _add_record(self, row: Sequence[Any], *, locked: bool) -> RecordRow:
        known = self.records.get(row[0])
        if known is not None:  # the batch's version, maybe already changed, wins
            known.locked |= locked
            return known
        record = RecordRow(*row, locked=locked)
        self.records[record.id] = record
        self._record_by_reference[(record.org_id, record.provider, record.provider_reference)] = (
            record
        )
        self._index(record)
        return record

    def _index(self, record: RecordRow) -> None:
        if record.payment_id is not None:
            self._by_payment[record.payment_id].add(record)
        if record.merchant_reference:
            self._by_merchant[(record.org_id, record.provider, record.merchant_reference)].add(
                record
            )
        if record.customer_ref:
            self._by_customer[(record.org_id, record.customer_ref)].add(record)

    def _unindex(self, record: RecordRow) -> None:
        if record.payment_id is not None:
            self._by_payment[record.payment_id].discard(record)
        if record.merchant_reference:
            self._by_merchant[(record.org_id, record.provider, record.merchant_reference)].discard(
                record
            )
        if record.customer_ref:
            self._by_customer[(record.org_id, record.customer_ref)].discard(record)

    def _load_records(
        self,
        references: Iterable[RecordKey],
        externals: Iterable[RecordKey],
        *,
        payment_ids: Iterable[uuid.UUID] = (),
        ids: Iterable[uuid.UUID] = (),
    ) -> None:
        references, payment_ids = set(references), set(payment_ids)
        rows = self.session.execute(
            _LOCK_RECORDS,
            _key_arrays(references, _REFERENCES)
            | _key_arrays(externals, _EXTERNALS)
            | {"payment_ids": list(payment_ids), "ids": list(ids)},
        ).all()
        for row in rows:
            self._add_record(row, locked=True)
        for key in references:
            self._record_by_reference.setdefault(key, None)
        self._grouped |= payment_ids

    def _load_customers(
        self, customers: set[tuple[uuid.UUID, str]], earliest: datetime, latest: datetime
    ) -> None:
        orgs, names = zip(*customers, strict=True)
        rows = self.session.execute(
            _LOAD_CUSTOMERS,
            {"orgs": list(orgs), "customers": list(names), "earliest": earliest, "latest": latest},
        ).all()
        for row in rows:
            self._add_record(row, locked=False)
        for key in customers:
            span = self._customer_spans.get(key, (earliest, latest))
            self._customer_spans[key] = (min(span[0], earliest), max(span[1], latest))

    def _load_discrepancies(self, payment_ids: set[uuid.UUID], record_ids: set[uuid.UUID]) -> None:
        payment_ids -= self._scoped_payments
        record_ids -= self._scoped_records
        if not payment_ids and not record_ids:
            return
        rows = self.session.execute(
            _LOCK_DISCREPANCIES,
            {"payment_ids": list(payment_ids), "record_ids": list(record_ids)},
        ).all()
        for row in rows:
            self._index_unresolved(DiscrepancyRow(*row))
        self._scoped_payments |= payment_ids
        self._scoped_records |= record_ids

    def _index_unresolved(self, discrepancy: DiscrepancyRow) -> None:
        if discrepancy.payment_id is not None:
            self._unresolved_by_payment[discrepancy.payment_id].add(discrepancy)
        else:
            self._unresolved_by_record[discrepancy.provider_record_id].add(discrepancy)

    # --- lookups (reading what was not read yet) ---------------------------------------

    def _record(self, org_id: uuid.UUID, provider: str, reference: str) -> RecordRow | None:
        key = (org_id, provider, reference)
        if key not in self._record_by_reference:
            self._lock(references=[reference_key(*key)])
            self._load_records([key], ())
        return self._record_by_reference[key]

    def _payment(self, payment_id: uuid.UUID) -> PaymentFacts | None:
        if payment_id not in self.payments:
            self._load_payments(set(), set(), {payment_id})
        return self.payments.get(payment_id)

    def _payment_with_reference(self, key: RecordKey) -> PaymentFacts | None:
        if key not in self._payment_by_reference:
            self._load_payments({key}, set(), set())
        return self._payment_by_reference[key]

    def _payment_with_external(self, key: RecordKey) -> PaymentFacts | None:
        if key not in self._payment_by_external:
            self._load_payments(set(), {key}, set())
        return self._payment_by_external[key]

    def _customer_records(
        self, org_id: uuid.UUID, customer: str, earliest: datetime, latest: datetime
    ) -> set[RecordRow]:
        key = (org_id, customer)
        span = self._customer_spans.get(key)
        if span is None or earliest < span[0] or latest > span[1]:
            if span is not None:
                earliest, latest = min(earliest, span[0]), max(latest, span[1])
            self._load_customers({key}, earliest, latest)
        return self._by_customer[key]

    def _unbound_payments_near(
        self, org_id: uuid.UUID, provider: str, currency: str, amount: int, moment: datetime
    ) -> list[PaymentFacts]:
        window = self.settings[org_id].heuristic_window
        rows = self.session.execute(
            _PAYMENTS_NEAR,
            {
                "org_id": org_id,
                "provider": provider,
                "currency": currency,
                "amount": amount,
                "earliest": moment - window,
                "latest": moment + window,
            },
        ).all()
        unbound = []
        for row in rows:
            payment = self._add_payment(org_id, PaymentFacts(*row[1:-1]))
            bound_elsewhere = any(record_id not in self.records for record_id in row.bound)
            if not bound_elsewhere and not self._by_payment[payment.id]:
                unbound.append(payment)
        return unbound

    def _unbound_records_near(
        self, org_id: uuid.UUID, provider: str, currency: str, amount: int, moment: datetime
    ) -> list[RecordRow]:
        window = self.settings[org_id].heuristic_window
        earliest, latest = moment - window, moment + window
        rows = self.session.execute(
            _RECORDS_NEAR,
            {
                "org_id": org_id,
                "provider": provider,
                "currency": currency,
                "amount": amount,
                "earliest": earliest,
                "latest": latest,
            },
        ).all()
        for row in rows:
            self._add_record(row, locked=False)
        return sorted(
            (
                record
                for record in self.records.values()
                if record.org_id == org_id
                and record.provider == provider
                and record.currency == currency
                and record.amount_minor == amount
                and earliest <= record.occurred_at <= latest
                and record.payment_id is None
            ),
            key=lambda record: record.id,
        )

    # --- changes ------------------------------------------------------------------------

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
                and self._record(org_id, provider, reference) is None
            ):
                raise ValidationFailed(f"first event about {reference} states no currency")
            created.add(reference)

    def _create(self, org_id: uuid.UUID, provider: str, update: RecordUpdate) -> RecordRow:
        state = new_state(update, update.currency)
        record = RecordRow(
            id=new_id(),
            org_id=org_id,
            provider=provider,
            provider_reference=update.provider_reference,
            merchant_reference=None,
            amount_minor=None,
            currency=state.currency,
            status="pending",
            amount_refunded_minor=0,
            customer_ref=None,
            dispute_status=None,
            dispute_amount_minor=None,
            occurred_at=state.occurred_at,
            last_event_at=state.last_event_at,
            payment_status=None,
            status_at=None,
            refunds={},
            reported_refunded_minor=0,
            dispute_at=None,
            payment_id=None,
            match_method=None,
            matched_at=None,
            created_at=self.now,
            updated_at=self.now,
            locked=True,
            new=True,
        )
        _write_state(record, state, self.now)
        self.records[record.id] = record
        self._record_by_reference[(org_id, provider, record.provider_reference)] = record
        self._index(record)
        self._scoped_records.add(record.id)  # a new record has no discrepancy yet
        return record

    def _fold(self, record: RecordRow, update: RecordUpdate) -> None:
        self._unindex(record)
        _write_state(record, merge_update(_state_of(record), update), self.now)
        self._index(record)

    def _bind(self, record: RecordRow, payment: PaymentFacts | None, method: str | None) -> None:
        self._unindex(record)
        record.payment_id = payment.id if payment else None
        record.match_method = method
        record.matched_at = self.now if payment else None
        record.rebound = True
        self._index(record)

    # --- matching (the sequence of the rules) ----------------------------------------------

    def reconcile_update(
        self, org_id: uuid.UUID, provider: str, update: RecordUpdate, evidence: dict[str, Any]
    ) -> RecordRow:
        """Fold ``update`` into the record it is about (created on first sight) and match
        what it changed. Run :meth:`check_updates` on the event's updates first."""
        record = self._record(org_id, provider, update.provider_reference)
        if record is None:
            record = self._create(org_id, provider, update)
        else:
            self._fold(record, update)
        if record.merchant_reference:  # held already when prepare_updates saw the update
            self._lock(externals=[external_key(org_id, record.merchant_reference)])
        self.reconcile_record(record, evidence)
        return record

    def reconcile_record(self, record: RecordRow, evidence: dict[str, Any]) -> Verdict:
        """Bind a record to its payment, then judge what it touches."""
        previous = self._bind_record(record)
        if previous is not None:
            self.reconcile_payment_group(self._payment(previous), evidence)
        if record.payment_id is not None:
            return self.reconcile_payment_group(self._payment(record.payment_id), evidence)
        verdict = self._judge_record(record)
        self._record_verdict(record.org_id, verdict, evidence)
        self._add_item(record.org_id, verdict, [record], None)
        return verdict

    def reconcile_payment_group(self, payment: PaymentFacts, evidence: dict[str, Any]) -> Verdict:
        """Bind, judge and record a payment with its records."""
        org_id = self._payment_org[payment.id]
        group = self._bind_payment(payment)
        verdict = self._judge_payment(payment, group)
        self._record_verdict(org_id, verdict, evidence)
        self._add_item(org_id, verdict, group, payment)
        return verdict

    def _reference_match(self, record: RecordRow) -> tuple[PaymentFacts, str] | None:
        payment = self._payment_with_reference(
            (record.org_id, record.provider, record.provider_reference)
        )
        if payment is not None:
            return payment, "provider_reference"
        if record.merchant_reference:
            payment = self._payment_with_external(
                (record.org_id, record.provider, record.merchant_reference)
            )
            if payment is not None:
                return payment, "merchant_reference"
        return None

    def _heuristic_payment(self, record: RecordRow) -> PaymentFacts | None:
        if record.amount_minor is None:
            return None
        near = (record.org_id, record.provider, record.currency, record.amount_minor)
        payments = self._unbound_payments_near(*near, record.occurred_at)
        if len(payments) != 1:
            return None
        records = [
            record_facts(r) for r in self._unbound_records_near(*near, payments[0].occurred_at)
        ]
        if unique_heuristic_pair(payments, records) and records[0].id == record.id:
            return payments[0]
        return None

    def _bind_record(self, record: RecordRow) -> uuid.UUID | None:
        """Match the record to its payment (reference, then heuristic); return the payment it
        was bound to before, when that changed (its group must be judged again)."""
        previous = record.payment_id
        found = self._reference_match(record)
        if found is not None:
            payment, method = found
        elif record.match_method == "heuristic" and previous is not None:
            payment = self._payment(previous)
            window = self.settings[record.org_id].heuristic_window
            keep = payment is not None and heuristic_fits(payment, record_facts(record), window)
            payment, method = (payment, "heuristic") if keep else (None, None)
        else:
            payment = self._heuristic_payment(record)
            method = "heuristic" if payment else None
        if (payment.id if payment else None) != previous or record.match_method != method:
            self._bind(record, payment, method)
        return previous if previous != record.payment_id else None

    def _candidates(self, payment: PaymentFacts) -> list[RecordRow]:
        """Records bound to the payment or matching one of its references, in id order."""
        if payment.id not in self._grouped:
            org_id = self._payment_org[payment.id]
            self._load_records(
                self._payment_references([payment]),
                [(org_id, payment.provider, payment.external_id)],
                payment_ids=[payment.id],
            )
        org_id = self._payment_org[payment.id]
        pool = (
            self._by_payment[payment.id]
            | self._by_merchant[(org_id, payment.provider, payment.external_id)]
        )
        if payment.provider_reference:
            by_reference = self._record_by_reference.get(
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

    def _bind_payment(self, payment: PaymentFacts) -> list[RecordRow]:
        """Match unbound records to the payment; return every record matched to it."""
        candidates = self._candidates(payment)
        for record in candidates:
            method = reference_method(payment, record_facts(record))
            if record.payment_id is None and method is not None:
                self._bind(record, payment, method)
        group = [record for record in candidates if record.payment_id == payment.id]
        if not group:
            org_id = self._payment_org[payment.id]
            nearby = self._unbound_records_near(
                org_id,
                payment.provider,
                payment.currency,
                payment.amount_minor,
                payment.occurred_at,
            )
            if len(nearby) == 1:
                found = self._heuristic_payment(nearby[0])
                if found is not None and found.id == payment.id:
                    self._bind(nearby[0], payment, "heuristic")
                    group = nearby
        return group

    def _customer_duplicates(self, record: RecordRow) -> list[Finding]:
        if record.customer_ref is None or record.amount_minor is None:
            return []
        settings = self.settings[record.org_id]
        earliest = record.occurred_at - settings.duplicate_window
        siblings = sorted(
            (
                sibling
                for sibling in self._customer_records(
                    record.org_id, record.customer_ref, earliest, record.occurred_at
                )
                if sibling is not record
                and sibling.currency == record.currency
                and sibling.amount_minor == record.amount_minor
                and earliest <= sibling.occurred_at <= record.occurred_at
            ),
            key=lambda sibling: (sibling.occurred_at, sibling.id),
        )
        return judge_customer_duplicate(
            record_facts(record), [record_facts(s) for s in siblings], settings
        )

    def _judge_payment(self, payment: PaymentFacts, group: list[RecordRow]) -> Verdict:
        settings = self.settings[self._payment_org[payment.id]]
        findings = judge_group(payment, [record_facts(r) for r in group], settings, self.now)
        for record in group:
            findings += self._customer_duplicates(record)
        return Verdict(findings, payment.id, [record.id for record in group])

    def _judge_record(self, record: RecordRow) -> Verdict:
        settings = self.settings[record.org_id]
        findings = judge_unmatched_record(record_facts(record), settings, self.now)
        findings += self._customer_duplicates(record)
        return Verdict(findings, None, [record.id])

    def _record_verdict(
        self, org_id: uuid.UUID, verdict: Verdict, evidence: dict[str, Any]
    ) -> None:
        """Open what the verdict found and, with auto-fix, resolve what it no longer finds:
        among the unresolved discrepancies of its payment, and those without a payment of
        its records (an evaluation never clears what it did not check)."""
        scope = {verdict.payment_id} - {None}
        self._load_discrepancies(scope, set(verdict.record_ids))
        existing = set().union(
            *(self._unresolved_by_payment[payment_id] for payment_id in scope),
            *(self._unresolved_by_record[record_id] for record_id in verdict.record_ids),
        )
        found = {finding.key: finding for finding in verdict.findings}
        open_keys = {discrepancy.key for discrepancy in existing}
        for key, finding in found.items():
            if key not in open_keys:
                self._open(org_id, finding, evidence)
        if self.settings[org_id].auto_fix:
            for discrepancy in sorted(existing, key=lambda d: d.id):
                if discrepancy.key not in found:
                    self._resolve(discrepancy, evidence)

    def _open(self, org_id: uuid.UUID, finding: Finding, evidence: dict[str, Any]) -> None:
        self._index_unresolved(self.discrepancies.open(org_id, finding, evidence))

    def _resolve(self, discrepancy: DiscrepancyRow, evidence: dict[str, Any]) -> None:
        if discrepancy.payment_id is not None:
            self._unresolved_by_payment[discrepancy.payment_id].discard(discrepancy)
        else:
            self._unresolved_by_record[discrepancy.provider_record_id].discard(discrepancy)
        self.discrepancies.auto_resolve(discrepancy, evidence)

    def _add_item(
        self,
        org_id: uuid.UUID,
        verdict: Verdict,
        group: list[RecordRow],
        payment: PaymentFacts | None,
    ) -> None:
        """Record the match result of this evaluation as a reconciliation item."""
        types = {finding.type for finding in verdict.findings}
        if payment is not None and group:
            primary = primary_record([record_facts(r) for r in group])
            difference = next(
                (f.difference_minor for f in verdict.findings if f.type == "AmountMismatch"), None
            )
            item = (
                payment.id,
                primary.id,
                item_outcome(verdict.findings),
                primary.match_method,
                difference,
            )
        elif payment is not None and "MissingProviderRecord" in types:
            item = (payment.id, None, "missing_provider", None, None)
        elif payment is None and "MissingInternalRecord" in types:
            item = (None, verdict.record_ids[0], "missing_internal", None, None)
        else:
            return
        self._items.append((org_id, *item))

    # --- writing ----------------------------------------------------------------------

    def write(self) -> None:
        """Write every change, a multi-row statement per kind; once, at the end.

        A discrepancy another transaction opened meanwhile is not opened twice (the
        unresolved index), and only those written get their action-log entries.
        """
        records = self.records.values()
        new = [r for r in records if r.new]
        folded = [r for r in records if r.folded and not r.new]
        rebound = [r for r in records if r.rebound and not r.folded and not r.new]
        if new:
            self._execute(_INSERT_RECORDS, new, RECORD_COLUMNS)
        if folded:
            self._execute(_UPDATE_RECORDS, folded, ("id", *STATE_COLUMNS))
        if rebound:
            self._execute(_UPDATE_BINDINGS, rebound, ("id", *BINDING_COLUMNS))
        self.discrepancies.write(self.session, self.now)
        if self._items:
            self.session.execute(_INSERT_ITEMS, column_arrays(self._items, _ITEM_COLUMNS))
        expire_rewritten(self.session, ProviderRecord, [r.id for r in [*folded, *rebound]])

    def _execute(self, statement: Any, records: list[RecordRow], columns: Iterable[str]) -> None:
        columns = tuple(columns)
        rows = [
            [
                json.dumps(record.refunds) if name == "refunds" else getattr(record, name)
                for name in columns
            ]
            for record in records
        ]
        self.session.execute(statement, column_arrays(rows, columns))


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


def reconcile_payment(
    *, session: Session, payment_id: uuid.UUID, now: datetime, evidence: dict[str, Any]
) -> Verdict | None:
    """Match one internal payment after it was created or changed (None if it is gone).

    The payment is read again once its keys are held: an import may have changed it.
    """
    keys = session.execute(
        select(
            Payment.org_id, Payment.provider, Payment.provider_reference, Payment.external_id
        ).where(Payment.id == payment_id)
    ).one_or_none()
    if keys is None:
        return None
    lock_match_keys(
        session=session,
        org_id=keys.org_id,
        provider=keys.provider,
        reference=keys.provider_reference,
        external=keys.external_id,
    )
    settings = match_settings(session=session, org_id=keys.org_id)
    batch = MatchBatch(session=session, now=now, settings={keys.org_id: settings})
    verdict = batch.reconcile_payment_group(batch.load_payment(payment_id), evidence)
    batch.write()
    return verdict
