"""The evidence behind one discrepancy, as a person reads it: the internal payment and the
provider record side by side, field by field, the provider events that built the
record, their payloads with every secret-looking value masked, and the cash chain's
subjects it names (payout, settlement line, bank statement, bank entry).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from shared.discrepancies.listing import DiscrepancyDetail, DiscrepancyView, get_discrepancy
from shared.models import (
    BankEntryRecord,
    BankStatementRecord,
    Payment,
    ProviderEvent,
    ProviderRecord,
    SettlementLine,
    SettlementPayout,
)
from shared.settlements.listing import payout_of_line
from shared.values.money import format_minor

MAX_EVENTS = 50
MASK = "[hidden]"
# A payload field whose name says it holds a credential is never shown, whatever its value
# (Stripe's ``client_secret``, Adyen's ``hmacSignature``, any ``password`` or ``token``).
_SECRET_NAME = re.compile(r"secret|password|passwd|token|signature|hmac|api_?key|authori[sz]", re.I)


@dataclass(frozen=True)
class ComparedField:
    """One fact as the payment and as the provider record state it (None: no such side)."""

    label: str
    internal: str | None
    provider: str | None

    @property
    def differs(self) -> bool:
        """True when both sides exist and state different values."""
        return None not in (self.internal, self.provider) and self.internal != self.provider


@dataclass(frozen=True)
class EventEvidence:
    """A provider event, its payload as indented JSON with secrets masked."""

    id: uuid.UUID
    provider_event_id: str
    event_type: str
    state: str
    received_at: datetime
    payload: str


@dataclass(frozen=True)
class CashSubjects:
    """The cash chain's subjects a discrepancy names (None where it names none), and the
    payout its settlement line belongs to (``line_payout``)."""

    payout: SettlementPayout | None = None
    line: SettlementLine | None = None
    line_payout: SettlementPayout | None = None
    statement: BankStatementRecord | None = None
    entry: BankEntryRecord | None = None


@dataclass(frozen=True)
class DiscrepancyEvidence:
    """A discrepancy with everything a person needs to decide on it."""

    detail: DiscrepancyDetail
    payment: Payment | None
    record: ProviderRecord | None
    fields: list[ComparedField]
    events: list[EventEvidence]
    cash: CashSubjects


def _when(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _money(amount: int | None, currency: str) -> str | None:
    return format_minor(amount, currency) if amount is not None else None


# label → how each side states it (a field missing on one side reads None there).
_FIELDS: dict[str, tuple[Callable[[Payment], Any], Callable[[ProviderRecord], Any]]] = {
    "Provider": (lambda p: p.provider, lambda r: r.provider),
    "Provider reference": (lambda p: p.provider_reference, lambda r: r.provider_reference),
    "Merchant reference": (lambda p: p.external_id, lambda r: r.merchant_reference),
    "Amount": (
        lambda p: _money(p.amount_minor, p.currency),
        lambda r: _money(r.amount_minor, r.currency),
    ),
    "Currency": (lambda p: p.currency, lambda r: r.currency),
    "Status": (lambda p: p.status, lambda r: r.status),
    "Refunded": (
        lambda p: _money(p.amount_refunded_minor, p.currency),
        lambda r: _money(r.amount_refunded_minor, r.currency),
    ),
    "Customer": (lambda p: p.customer_ref, lambda r: r.customer_ref),
    "Occurred at": (lambda p: _when(p.occurred_at), lambda r: _when(r.occurred_at)),
}


def compare_fields(payment: Payment | None, record: ProviderRecord | None) -> list[ComparedField]:
    """Each compared fact of the two sides; pure."""
    return [
        ComparedField(
            label=label,
            internal=None if payment is None else _text(internal(payment)),
            provider=None if record is None else _text(provider(record)),
        )
        for label, (internal, provider) in _FIELDS.items()
    ]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def mask_secrets(value: Any) -> Any:
    """``value`` (JSON) with the value of every field named like a credential masked."""
    if isinstance(value, dict):
        return {
            key: MASK if _SECRET_NAME.search(str(key)) else mask_secrets(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(item) for item in value]
    return value


def discrepancy_evidence(
    *, session: Session, org_id: uuid.UUID, discrepancy_id: uuid.UUID
) -> DiscrepancyEvidence:
    """The discrepancy (NotFound in another organisation), its two sides compared, and
    the record's events (those of its provider whose payload names its reference, oldest
    first, at most 50)."""
    detail = get_discrepancy(session=session, org_id=org_id, discrepancy_id=discrepancy_id)
    view = detail.discrepancy
    payment = session.get(Payment, view.payment.id) if view.payment else None
    record = session.get(ProviderRecord, view.provider_record.id) if view.provider_record else None
    events: list[EventEvidence] = []
    if record is not None:
        query = (
            select(ProviderEvent)
            .where(
                ProviderEvent.org_id == org_id,
                ProviderEvent.provider == record.provider,
                cast(ProviderEvent.payload, Text).contains(
                    json.dumps(record.provider_reference, ensure_ascii=False), autoescape=True
                ),
            )
            .order_by(ProviderEvent.received_at, ProviderEvent.id)
            .limit(MAX_EVENTS)
        )
        events = [
            EventEvidence(
                id=event.id,
                provider_event_id=event.provider_event_id,
                event_type=event.event_type,
                state=event.state,
                received_at=event.received_at,
                payload=json.dumps(mask_secrets(event.payload), indent=2, sort_keys=True),
            )
            for event in session.scalars(query)
        ]
    return DiscrepancyEvidence(
        detail=detail,
        payment=payment,
        record=record,
        fields=compare_fields(payment, record),
        events=events,
        cash=_cash_subjects(session, view),
    )


def _cash_subjects(session: Session, view: DiscrepancyView) -> CashSubjects:
    """The cash subjects ``view`` names (of its organisation: the discrepancy's rows)."""

    def load(model: type, subject_id: uuid.UUID | None) -> Any:
        return session.get(model, subject_id) if subject_id is not None else None

    line = load(SettlementLine, view.settlement_line_id)
    return CashSubjects(
        payout=load(SettlementPayout, view.settlement_payout_id),
        line=line,
        line_payout=payout_of_line(session=session, line=line) if line is not None else None,
        statement=load(BankStatementRecord, view.bank_statement_id),
        entry=load(BankEntryRecord, view.bank_entry_id),
    )
