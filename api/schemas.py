"""Request and response models of the HTTP API (pydantic): the API's contract."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.pagination import DEFAULT_LIMIT, MAX_LIMIT


class Strict(BaseModel):
    """Unknown fields are refused, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid")


class EventListQuery(Strict):
    """Filters of ``GET /billing/webhooks/events``."""

    state: Literal["pending", "processed", "failed"] | None = None
    cursor: str | None = Field(default=None, max_length=512)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class WebhookEventOut(BaseModel):
    """A stored webhook event (the raw payload is not exposed here)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider: str
    provider_event_id: str
    event_type: str
    state: str
    attempts: int
    last_error: str | None
    received_at: datetime
    processed_at: datetime | None


class WebhookEventPage(BaseModel):
    """A page of webhook events."""

    items: list[WebhookEventOut]
    next_cursor: str | None


class WebhookReceipt(BaseModel):
    """Answer to a Stripe or Standard Webhooks delivery."""

    received: int
    stored: int
    duplicate: bool


class PaymentBatchIn(Strict):
    """Body of ``POST /billing/payments``; each item is validated on its own by the domain."""

    payments: list[Any]


class PaymentItemErrorOut(BaseModel):
    """One reason an item was refused; ``field`` is null when it concerns the whole item."""

    model_config = ConfigDict(from_attributes=True)

    field: str | None
    message: str


class RejectedPaymentOut(BaseModel):
    """A refused item, by its 0-based index in ``payments``."""

    model_config = ConfigDict(from_attributes=True)

    index: int
    errors: list[PaymentItemErrorOut]


class PaymentImportResult(BaseModel):
    """What a payments batch did: exact counts, and every refused item."""

    model_config = ConfigDict(from_attributes=True)

    created: int
    updated: int
    unchanged: int
    rejected: list[RejectedPaymentOut]
