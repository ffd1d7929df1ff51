"""Whether each payout reached the bank: its linked entry, else the suggested ones.

A payout is ``linked`` (an entry carried it), ``suggested`` (entries could be its, none
for certain: a person decides) or ``unlinked`` (nothing seen yet). Its ``arrival`` tells
the unlinked apart: ``not_expected`` (failed or canceled: it never reaches the bank),
``not_received`` (the matching pass judged it overdue: a PayoutNotReceived is
unresolved) or ``in_transit``.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

from shared.bank.payout_rules import NEVER_ARRIVING
from shared.models import (
    BankEntryRecord,
    BankPayoutLink,
    BankPayoutSuggestion,
    ReconciliationDiscrepancy,
    SettlementPayout,
)
from shared.platform.errors import NotFound
from shared.platform.pagination import Page, newest_first

BankStatus = Literal["linked", "suggested", "unlinked"]
Arrival = Literal["linked", "suggested", "in_transit", "not_received", "not_expected"]


@dataclass(frozen=True)
class LinkedEntry:
    """The entry that carried a payout, how it was found, and its amount."""

    entry_id: uuid.UUID
    method: str
    amount_minor: int
    booking_date: date
    linked_at: datetime


@dataclass(frozen=True)
class PayoutBankStatus:
    """A payout and what the bank shows of it."""

    payout: SettlementPayout
    link: LinkedEntry | None
    suggestions: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    overdue: bool = False  # an unresolved PayoutNotReceived names the payout

    @property
    def status(self) -> BankStatus:
        """``linked``, ``suggested`` or ``unlinked``."""
        if self.link is not None:
            return "linked"
        return "suggested" if self.suggestions else "unlinked"

    @property
    def arrival(self) -> Arrival:
        """The status, with an unlinked payout told apart: ``not_expected``,
        ``not_received`` or ``in_transit`` (the module's docstring)."""
        if self.status != "unlinked":
            return self.status
        if self.payout.status in NEVER_ARRIVING:
            return "not_expected"
        return "not_received" if self.overdue else "in_transit"


def _linked() -> object:
    return exists().where(BankPayoutLink.settlement_payout_id == SettlementPayout.id)


def _suggested() -> object:
    return exists().where(BankPayoutSuggestion.settlement_payout_id == SettlementPayout.id)


def list_payout_statuses(
    *,
    session: Session,
    org_id: uuid.UUID,
    status: BankStatus | None,
    cursor: str | None,
    limit: int,
) -> Page[PayoutBankStatus]:
    """The organisation's payouts with their bank status, newest booked first."""
    query: Select = select(SettlementPayout).where(SettlementPayout.org_id == org_id)
    if status == "linked":
        query = query.where(_linked())
    elif status == "suggested":
        query = query.where(~_linked(), _suggested())
    elif status == "unlinked":
        query = query.where(~_linked(), ~_suggested())
    order = (SettlementPayout.booked_at, SettlementPayout.id)
    page = newest_first(query, order, session=session, cursor=cursor, limit=limit)
    return Page(bank_statuses(session=session, payouts=page.items), page.next_cursor)


def payout_status(*, session: Session, org_id: uuid.UUID, payout_id: uuid.UUID) -> PayoutBankStatus:
    """One of the organisation's payouts with its bank status, or NotFound."""
    payout = session.get(SettlementPayout, payout_id)
    if payout is None or payout.org_id != org_id:
        raise NotFound(f"payout {payout_id} does not exist")
    return bank_statuses(session=session, payouts=[payout])[0]


def bank_statuses(*, session: Session, payouts: list[SettlementPayout]) -> list[PayoutBankStatus]:
    """The bank status of each of ``payouts`` (one organisation's), in their order."""
    ids = [payout.id for payout in payouts]
    links = {
        payout_id: LinkedEntry(entry_id, method, amount, booked, linked_at)
        for payout_id, entry_id, method, amount, booked, linked_at in session.execute(
            select(
                BankPayoutLink.settlement_payout_id, BankPayoutLink.bank_entry_id,
                BankPayoutLink.method, BankEntryRecord.amount_minor,
                BankEntryRecord.booking_date, BankPayoutLink.linked_at,
            )
            .join(BankEntryRecord, BankEntryRecord.id == BankPayoutLink.bank_entry_id)
            .where(BankPayoutLink.settlement_payout_id.in_(ids))
        )
    }  # fmt: skip
    suggestions: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = defaultdict(list)
    for payout_id, entry_id, method in session.execute(
        select(
            BankPayoutSuggestion.settlement_payout_id,
            BankPayoutSuggestion.bank_entry_id,
            BankPayoutSuggestion.method,
        )
        .where(BankPayoutSuggestion.settlement_payout_id.in_(ids))
        .order_by(BankPayoutSuggestion.bank_entry_id)
    ):
        suggestions[payout_id].append((entry_id, method))
    overdue = set(
        session.scalars(
            select(ReconciliationDiscrepancy.settlement_payout_id).where(
                ReconciliationDiscrepancy.settlement_payout_id.in_(ids),
                ReconciliationDiscrepancy.type == "PayoutNotReceived",
                ReconciliationDiscrepancy.status != "resolved",
            )
        )
    )
    return [
        PayoutBankStatus(
            payout, links.get(payout.id), suggestions.get(payout.id, []), payout.id in overdue
        )
        for payout in payouts
    ]
