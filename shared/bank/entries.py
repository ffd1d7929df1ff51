"""Reading imported bank entries: the organisation's, filtered, newest booked first.

Payouts are not matched to entries yet (issue 19's next step): every entry is
unmatched, so ``unmatched=true`` lists them all and ``unmatched=false`` none.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Select, false, select
from sqlalchemy.orm import Session

from shared.models import BankEntryRecord
from shared.platform.pagination import Page, newest_first


@dataclass(frozen=True)
class EntryFilters:
    """The entry list's filters; dates and amounts (signed minor units) inclusive."""

    account_id: uuid.UUID | None = None
    booked_from: date | None = None
    booked_to: date | None = None
    min_amount: int | None = None
    max_amount: int | None = None
    unmatched: bool | None = None


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
    for condition, applies in (
        (BankEntryRecord.account_id == filters.account_id, filters.account_id is not None),
        (BankEntryRecord.booking_date >= filters.booked_from, filters.booked_from is not None),
        (BankEntryRecord.booking_date <= filters.booked_to, filters.booked_to is not None),
        (BankEntryRecord.amount_minor >= filters.min_amount, filters.min_amount is not None),
        (BankEntryRecord.amount_minor <= filters.max_amount, filters.max_amount is not None),
        (false(), filters.unmatched is False),  # nothing is matched yet
    ):
        if applies:
            query = query.where(condition)
    order = (BankEntryRecord.booking_date, BankEntryRecord.id)
    return newest_first(query, order, session=session, cursor=cursor, limit=limit)
