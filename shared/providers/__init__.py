"""Provider adapters: how each provider signs its webhooks and what its events say."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

BASE_STATUSES = ("pending", "succeeded", "failed", "canceled")


@dataclass(frozen=True)
class VerifiedEvent:
    """One authentic provider event, ready to be stored.

    ``raw`` is the verified body when ``payload`` is the whole of it: it is stored as
    sent (PostgreSQL reads the JSON) instead of being serialised again.
    """

    provider_event_id: str
    event_type: str
    payload: dict[str, Any]
    raw: bytes | None = None


@dataclass(frozen=True)
class RecordUpdate:
    """What one provider event says about one provider object; ``None`` says nothing.

    ``payment_status`` is the object's base lifecycle (one of BASE_STATUSES); refunds
    are kept apart and folded in later, so that refunds and status changes commute.
    ``refunds`` maps a refund id to its amount in minor units (0 withdraws a refund that
    failed or was canceled). ``reported_refunded_minor`` is an absolute refunded total
    when the provider states one (Stripe ``charge.amount_refunded``).
    """

    provider_reference: str
    event_at: datetime
    currency: str | None = None
    amount_minor: int | None = None
    merchant_reference: str | None = None
    customer_ref: str | None = None
    occurred_at: datetime | None = None
    payment_status: str | None = None
    refunds: dict[str, int] = field(default_factory=dict)
    reported_refunded_minor: int | None = None
    dispute_status: str | None = None
    dispute_amount_minor: int | None = None


@dataclass(frozen=True)
class Ignored:
    """An event this service does not act on, and why (the event is marked processed)."""

    reason: str
