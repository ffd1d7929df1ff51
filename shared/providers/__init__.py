"""Provider adapters: how each provider signs its webhooks and what its events say."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# What one event states about one provider object: declared with a record's other shapes.
from shared.matching.record_fields import RecordUpdate as RecordUpdate
from shared.settlements.model import ReportPayout


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
class Ignored:
    """An event this service does not act on, and why (the event is marked processed)."""

    reason: str


@dataclass(frozen=True)
class PayoutUpdate:
    """What a payout event states: the payout as the provider described it at ``event_at``
    (recorded by shared/settlements/payouts.py)."""

    payout: ReportPayout
    event_at: datetime
