"""Reading imported bank statements and entries: the organisation's, filtered, newest
first.

An entry is matched once a payout is linked to it (``shared/bank/matching.py``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

from shared.models import BankEntryRecord, BankPayoutLink, BankStatementRecord
from shared.platform.pagination import Page, newest_first


@dataclass(frozen=True)
class EntryFilters:
    """The entry list's filters; dates and amounts (signed minor units) inclusive."""

    account_id: uuid.UUID | None = None
    currency: str | None = None
    booked_from: date | None = None
    booked_to: date | None = None
    min_amount: int | None = None
    max_amount: int | None = None
    unmatched: bool | None = None  # True: no payout linked to it; False: one is


def list_entries(
    *,
    session: Session,
    org_id: uuid.UUID,
    filters: EntryFilters,
    cursor: str | None,
    limit: int,
) -> Page[BankEntryRecord]:
    """The organisation's entries that pass ``filters``, newest booking date first."""
    query: Select = select(BankEntryRecord).where(BankEntryRecord.org_id == org_id)
    entry = BankEntryRecord
    for value, condition in (
        (filters.account_id, lambda value: entry.account_id == value),
        (filters.currency, lambda value: entry.currency == value),
        (filters.booked_from, lambda value: entry.booking_date >= value),
        (filters.booked_to, lambda value: entry.booking_date <= value),
        (filters.min_amount, lambda value: entry.amount_minor >= value),
        (filters.max_amount, lambda value: entry.amount_minor <= value),
    ):
        if value is not None:
            query = query.where(condition(value))
    if filters.unmatched is not None:
        linked = exists().where(BankPayoutLink.bank_entry_id == BankEntryRecord.id)
        query = query.where(~linked if filters.unmatched else linked)
    order = (BankEntryRecord.booking_date, BankEntryRecord.id)
    return newest_first(query, order, session=session, cursor=cursor, limit=limit)


def list_statements(
    *,
    session: Session,
    org_id: uuid.UUID,
    account_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> Page[BankStatementRecord]:
    """The organisation's statements (of ``account_id`` when given), newest imported first,
    each with its balance check (``balanced``)."""
    query: Select = select(BankStatementRecord).where(BankStatementRecord.org_id == org_id)
    if account_id is not None:
        query = query.where(BankStatementRecord.account_id == account_id)
    order = (BankStatementRecord.imported_at, BankStatementRecord.id)
    return newest_first(query, order, session=session, cursor=cursor, limit=limit)


def linked_payouts(*, session: Session, entry_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """The payout linked to each of ``entry_ids`` that has one, by entry."""
    rows = session.execute(
        select(BankPayoutLink.bank_entry_id, BankPayoutLink.settlement_payout_id).where(
            BankPayoutLink.bank_entry_id.in_(entry_ids)
        )
    )
    return dict(rows.all())
