"""The evidence of a discrepancy side by side: the internal payment and the provider
record, field by field, with the fields whose values differ marked.

:func:`compare_subjects` is pure: it reads the two rows (either may be missing) and
touches nothing; :func:`subjects_of` loads them for a discrepancy. A field is
marked only when both sides state a value and the values differ: a side that does not
know (a record whose amount no event has stated yet, a payment without the provider's
reference) is not a difference. Times are shown, never marked: each side stamps its own
clock. Whether a difference is a discrepancy is the matching rules' business
(``shared/matching/rules.py``: tolerances, grace periods); this only shows the facts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.discrepancies.listing import DiscrepancyView
from shared.models import Payment, ProviderRecord

Value = str | int | datetime | None


@dataclass(frozen=True)
class ComparedField:
    """One fact as each side states it (None: not stated, or no such side)."""

    name: str
    internal: Value
    provider: Value
    differs: bool


# (name shown, the payment's attribute, the record's attribute, compared?)
FIELDS = (
    ("reference", "external_id", "merchant_reference", True),
    ("provider_reference", "provider_reference", "provider_reference", True),
    ("amount_minor", "amount_minor", "amount_minor", True),
    ("currency", "currency", "currency", True),
    ("status", "status", "status", True),
    ("amount_refunded_minor", "amount_refunded_minor", "amount_refunded_minor", True),
    ("customer_ref", "customer_ref", "customer_ref", True),
    ("occurred_at", "occurred_at", "occurred_at", False),
)


def compare_subjects(payment: Payment | None, record: ProviderRecord | None) -> list[ComparedField]:
    """Every field of :data:`FIELDS`, in order, with each side's value and whether they
    differ (both stated and unequal; never for times)."""
    compared = []
    for name, payment_attribute, record_attribute, comparable in FIELDS:
        internal = getattr(payment, payment_attribute) if payment is not None else None
        provider = getattr(record, record_attribute) if record is not None else None
        differs = (
            comparable and internal is not None and provider is not None and internal != provider
        )
        compared.append(ComparedField(name, internal, provider, differs))
    return compared


def subjects_of(
    *, session: Session, org_id: uuid.UUID, view: DiscrepancyView
) -> tuple[Payment | None, ProviderRecord | None]:
    """The payment and the provider record ``view`` concerns (None for a missing side),
    read within the organisation only."""
    payment = record = None
    if view.payment is not None:
        payment = session.scalar(
            select(Payment).where(Payment.id == view.payment.id, Payment.org_id == org_id)
        )
    if view.provider_record is not None:
        record = session.scalar(
            select(ProviderRecord).where(
                ProviderRecord.id == view.provider_record.id, ProviderRecord.org_id == org_id
            )
        )
    return payment, record
