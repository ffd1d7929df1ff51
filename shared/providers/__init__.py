"""Provider adapters: how each provider signs its webhooks and names its events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VerifiedEvent:
    """One authentic provider event, ready to be stored."""

    provider_event_id: str
    event_type: str
    payload: dict[str, Any]
