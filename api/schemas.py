"""Request and response models of the HTTP API (pydantic): the API's contract."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

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
