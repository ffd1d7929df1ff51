"""A payout with everything a person needs to follow its cash: its lines and fees, the
payments they settle and the discrepancies about any of them, the bank entry that
carried it (or the suggested ones, and the unmatched entries a person may link it to),
and the trail of links and unlinks.

Nothing here writes: a person links and unlinks through ``shared/bank/matching.py``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shared.bank.entries import EntryFilters, list_entries
from shared.bank.payout_rules import REFERENCE_WINDOW_AFTER_DAYS, REFERENCE_WINDOW_BEFORE_DAYS
from shared.bank.payout_status import PayoutBankStatus, bank_statuses
from shared.models import (
    BankAccount,
    BankEntryRecord,
    BankPayoutLinkLogEntry,
    Payment,
    ReconciliationDiscrepancy,
    SettlementPayout,
)
from shared.settlements.listing import PayoutDetail, get_payout

# The unmatched entries offered for a manual link: of the payout's currency, booked in
# the widest window the matching pass searches, newest first, at most this many.
MAX_LINK_CANDIDATES = 100


@dataclass(frozen=True)
class DiscrepancyMention:
    """A discrepancy named on another subject's page: enough to link to it."""

    id: uuid.UUID
    type: str
    severity: str
    status: str


@dataclass(frozen=True)
class SettledPayment:
    """An internal payment a line of the payout settles, and the discrepancies about it."""

    payment: Payment
    discrepancies: list[DiscrepancyMention]


@dataclass(frozen=True)
class PayoutEvidence:
    """A payout's lines, payments, bank side and trail (see the module's docstring).

    ``entries`` holds the linked and suggested entries by id; ``accounts`` the accounts of
    those and of ``candidates`` (the other unmatched entries offered while it is
    unlinked).
    """

    detail: PayoutDetail
    bank: PayoutBankStatus
    payments: list[SettledPayment]
    discrepancies: list[DiscrepancyMention]
    entries: dict[uuid.UUID, BankEntryRecord]
    candidates: list[BankEntryRecord]
    accounts: dict[uuid.UUID, BankAccount]
    history: list[BankPayoutLinkLogEntry]


def expected_arrival(payout: SettlementPayout) -> date:
    """The day the payout should reach the bank: its arrival date, else its booking day
    in UTC (as the matching pass reads it)."""
    return payout.arrival_date or payout.booked_at.astimezone(UTC).date()


def payout_evidence(*, session: Session, org_id: uuid.UUID, payout_id: uuid.UUID) -> PayoutEvidence:
    """The organisation's payout ``payout_id`` with its evidence, or NotFound."""
    detail = get_payout(session=session, org_id=org_id, payout_id=payout_id)
    payout = detail.view.payout
    bank = bank_statuses(session=session, payouts=[payout])[0]
    shown = [bank.link.entry_id] if bank.link else [entry for entry, _ in bank.suggestions]
    entries = {
        entry.id: entry
        for entry in session.scalars(select(BankEntryRecord).where(BankEntryRecord.id.in_(shown)))
    }
    candidates = [] if bank.link else _link_candidates(session, payout, exclude=set(shown))
    account_ids = {entry.account_id for entry in [*entries.values(), *candidates]}
    accounts = {
        account.id: account
        for account in session.scalars(select(BankAccount).where(BankAccount.id.in_(account_ids)))
    }
    history = session.scalars(
        select(BankPayoutLinkLogEntry)
        .where(BankPayoutLinkLogEntry.settlement_payout_id == payout.id)
        .order_by(BankPayoutLinkLogEntry.created_at, BankPayoutLinkLogEntry.id)
    ).all()
    line_ids = [line.id for line in detail.lines]
    about_payout = _mentions(
        session,
        org_id,
        or_(
            ReconciliationDiscrepancy.settlement_payout_id == payout.id,
            ReconciliationDiscrepancy.settlement_line_id.in_(line_ids),
        ),
    )
    return PayoutEvidence(
        detail=detail,
        bank=bank,
        payments=_settled_payments(session, org_id, detail),
        discrepancies=[mention for _, mention in about_payout],
        entries=entries,
        candidates=candidates,
        accounts=accounts,
        history=list(history),
    )


def _link_candidates(
    session: Session, payout: SettlementPayout, *, exclude: set[uuid.UUID]
) -> list[BankEntryRecord]:
    arrival = expected_arrival(payout)
    filters = EntryFilters(
        currency=payout.currency,
        booked_from=arrival - timedelta(days=REFERENCE_WINDOW_BEFORE_DAYS),
        booked_to=arrival + timedelta(days=REFERENCE_WINDOW_AFTER_DAYS),
        unmatched=True,
    )
    listed = list_entries(
        session=session, org_id=payout.org_id, filters=filters, cursor=None,
        limit=MAX_LINK_CANDIDATES,
    )  # fmt: skip
    return [entry for entry in listed.items if entry.id not in exclude]


def _settled_payments(
    session: Session, org_id: uuid.UUID, detail: PayoutDetail
) -> list[SettledPayment]:
    """The payments the listed lines settle, in line order, each once."""
    ids = list(dict.fromkeys(line.payment_id for line in detail.lines if line.payment_id))
    payments = {
        payment.id: payment
        for payment in session.scalars(
            select(Payment).where(Payment.org_id == org_id, Payment.id.in_(ids))
        )
    }
    mentions: dict[uuid.UUID, list[DiscrepancyMention]] = {}
    for payment_id, mention in _mentions(
        session, org_id, ReconciliationDiscrepancy.payment_id.in_(ids)
    ):
        mentions.setdefault(payment_id, []).append(mention)
    return [
        SettledPayment(payments[payment_id], mentions.get(payment_id, []))
        for payment_id in ids
        if payment_id in payments
    ]


def _mentions(
    session: Session, org_id: uuid.UUID, condition: object
) -> list[tuple[uuid.UUID | None, DiscrepancyMention]]:
    """(payment id, mention) of the organisation's discrepancies meeting ``condition``,
    oldest first."""
    found = ReconciliationDiscrepancy
    rows = session.execute(
        select(found.payment_id, found.id, found.type, found.severity, found.status)
        .where(found.org_id == org_id, condition)
        .order_by(found.opened_at, found.id)
    )
    return [
        (payment_id, DiscrepancyMention(id_, kind, severity, status))
        for payment_id, id_, kind, severity, status in rows
    ]
