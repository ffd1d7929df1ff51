"""The evidence behind verdicts: a run's exceptions (the item rows it wrote), a page at a
time or as CSV, and a payment's binding with its item history across the incremental
path and runs."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from shared.discrepancies.listing import CSV_CHUNK, safe_cell
from shared.models import Payment, ProviderRecord, ReconciliationItem
from shared.platform.errors import NotFound
from shared.platform.pagination import Page, decode_cursor, page_of
from shared.runs.lifecycle import get_run
from shared.values.money import format_minor

EXPORT_BATCH = 1_000


@dataclass(frozen=True)
class ItemView:
    """One verdict as recorded, with what names its subjects to a person."""

    id: uuid.UUID
    run_id: uuid.UUID | None  # None: the incremental path
    payment_id: uuid.UUID | None
    payment_external_id: str | None
    provider_record_id: uuid.UUID | None
    provider: str | None
    provider_reference: str | None
    outcome: str
    match_method: str | None
    currency: str | None  # the payment's, else the record's
    amount_difference_minor: int | None
    created_at: datetime


_ITEM = ReconciliationItem
_ITEM_VIEWS = (
    select(
        _ITEM.id,
        _ITEM.run_id,
        _ITEM.payment_id,
        Payment.external_id.label("payment_external_id"),
        _ITEM.provider_record_id,
        ProviderRecord.provider,
        ProviderRecord.provider_reference,
        _ITEM.outcome,
        _ITEM.match_method,
        func.coalesce(Payment.currency, ProviderRecord.currency).label("currency"),
        _ITEM.amount_difference_minor,
        _ITEM.created_at,
    )
    .outerjoin(Payment, Payment.id == _ITEM.payment_id)
    .outerjoin(ProviderRecord, ProviderRecord.id == _ITEM.provider_record_id)
)


def _views(session: Session, query: Select) -> list[ItemView]:
    return [ItemView(**row._mapping) for row in session.execute(query)]


def list_run_items(
    *,
    session: Session,
    org_id: uuid.UUID,
    run_id: uuid.UUID,
    cursor: str | None = None,
    limit: int,
) -> Page[ItemView]:
    """One page of the run's items (its exceptions), in the order it wrote them; NotFound
    for another organisation's run, InvalidCursor for a cursor this listing did not issue."""
    get_run(session=session, org_id=org_id, run_id=run_id)
    query = _ITEM_VIEWS.where(_ITEM.org_id == org_id, _ITEM.run_id == run_id)
    if cursor is not None:
        (after,) = decode_cursor(cursor, (uuid.UUID,))
        query = query.where(_ITEM.id > after)
    rows = _views(session, query.order_by(_ITEM.id).limit(limit + 1))
    return page_of(rows, limit, lambda view: (view.id,))


def iter_run_items(
    *, session: Session, org_id: uuid.UUID, run_id: uuid.UUID, batch_size: int = EXPORT_BATCH
) -> Iterator[ItemView]:
    """Every item of the run, in keyset batches (memory bounded by ``batch_size``)."""
    cursor = None
    while True:
        page = list_run_items(
            session=session, org_id=org_id, run_id=run_id, cursor=cursor, limit=batch_size
        )
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


CSV_COLUMNS = (
    "id",
    "run_id",
    "outcome",
    "match_method",
    "payment_id",
    "payment_external_id",
    "provider_record_id",
    "provider",
    "provider_reference",
    "currency",
    "amount_difference",
    "amount_difference_minor",
    "created_at",
)


def item_csv_chunks(views: Iterable[ItemView], chunk_size: int = CSV_CHUNK) -> Iterator[str]:
    """The header line, then one line per item (free text made inert for spreadsheets, the
    difference formatted and in minor units), in pieces of about ``chunk_size``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for view in views:
        difference = view.amount_difference_minor
        writer.writerow([
            view.id, view.run_id or "", view.outcome, view.match_method or "",
            view.payment_id or "", safe_cell(view.payment_external_id or ""),
            view.provider_record_id or "", view.provider or "",
            safe_cell(view.provider_reference or ""), view.currency or "",
            "" if difference is None else format_minor(difference, view.currency),
            "" if difference is None else difference, view.created_at.isoformat(),
        ])  # fmt: skip
        if buffer.tell() >= chunk_size:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@dataclass(frozen=True)
class BoundRecord:
    """A provider record matched to the payment, and how."""

    id: uuid.UUID
    provider: str
    provider_reference: str
    match_method: str | None
    matched_at: datetime | None


@dataclass(frozen=True)
class PaymentMatches:
    """A payment's binding and every verdict recorded on it, oldest first."""

    payment: Payment
    records: list[BoundRecord]
    items: list[ItemView]


def payment_matches(
    *, session: Session, org_id: uuid.UUID, payment_id: uuid.UUID
) -> PaymentMatches:
    """The payment's bound records and its item history — the incremental path's and every
    run's, including the records' own items from before they were bound; NotFound for
    another organisation's payment."""
    payment = session.get(Payment, payment_id)
    if payment is None or payment.org_id != org_id:
        raise NotFound(f"payment {payment_id} does not exist")
    records = [
        BoundRecord(**row._mapping)
        for row in session.execute(
            select(
                ProviderRecord.id,
                ProviderRecord.provider,
                ProviderRecord.provider_reference,
                ProviderRecord.match_method,
                ProviderRecord.matched_at,
            )
            .where(ProviderRecord.org_id == org_id, ProviderRecord.payment_id == payment_id)
            .order_by(ProviderRecord.id)
        )
    ]
    about_its_records = _ITEM.payment_id.is_(None) & _ITEM.provider_record_id.in_(
        [record.id for record in records]
    )
    items = _views(
        session,
        _ITEM_VIEWS.where(
            _ITEM.org_id == org_id, or_(_ITEM.payment_id == payment_id, about_its_records)
        ).order_by(_ITEM.id),
    )
    return PaymentMatches(payment, records, items)
