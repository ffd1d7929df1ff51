"""What every provider module offers (``WebhookProvider``) and the small values it trades in.

One provider is one module (``stripe``, ``adyen``, ``standard``) holding a
``WebhookProvider`` object, listed once in :mod:`shared.providers.registry`. The webhook
routes, ingestion, processing and account handling ask that object; none of them names a
provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from shared.providers import Ignored, PayoutUpdate, RecordUpdate, VerifiedEvent

Normalised = list[RecordUpdate] | PayoutUpdate | Ignored


@dataclass(frozen=True, slots=True)
class AccountOptions:
    """How an account's events are read: the option columns of ``provider_accounts``.

    ``merchant_reference_key`` is the Stripe metadata key holding the internal payment's
    external_id; ``manual_capture`` says the Adyen account captures manually (an
    authorisation is then pending until CAPTURE). A provider reads the options it names
    in ``account_options`` and no other.
    """

    merchant_reference_key: str = "external_id"
    manual_capture: bool = False


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One webhook request as it arrived: its raw body, its headers, when (Unix seconds)."""

    body: bytes
    headers: Mapping[str, str]
    received_at: float


@dataclass(frozen=True, slots=True)
class SignatureHeader:
    """A request header that carries (part of) a delivery's signature."""

    name: str
    description: str


@runtime_checkable
class WebhookProvider(Protocol):
    """One payment provider: how it signs, what it sends, what it means, what it expects back.

    ``acknowledgement`` is the literal ``text/plain`` body the provider expects in answer to
    a delivery, or ``None`` for the service's JSON receipt.
    """

    name: str
    summary: str
    signature_headers: tuple[SignatureHeader, ...]
    acknowledgement: str | None
    account_options: frozenset[str]

    def check_secret(self, secret: str) -> None:
        """Raise ValidationFailed unless ``secret`` has the form this provider issues."""
        ...

    def new_secret(self) -> str:
        """A fresh random signing secret of this provider's form (demo and tests)."""
        ...

    def verify(
        self, request: WebhookRequest, secrets: list[str], *, tolerance: int
    ) -> list[VerifiedEvent]:
        """The request's events if one of ``secrets`` signed it within ``tolerance`` seconds of
        its arrival; InvalidSignature, MalformedPayload (400) or ValidationFailed (422)
        otherwise."""
        ...

    def sign(
        self, document: dict[str, Any], secret: str, *, now: int
    ) -> tuple[bytes, dict[str, str]]:
        """Body and headers of ``document`` delivered as the provider would, signed at ``now``."""
        ...

    def normalise(
        self, event_type: str, payload: dict[str, Any], options: AccountOptions
    ) -> Normalised:
        """What one stored event says, as RecordUpdates (a payment), a PayoutUpdate (a
        payout), or Ignored with a reason.

        Pure. Every datetime is timezone-aware UTC; every amount an integer of minor
        units as the provider sent it. A known event type whose payload lacks what the
        mapping needs raises ValidationFailed naming the field (the event is then failed,
        visible and replayable); an event type the service does not act on is Ignored
        whatever its payload.
        """
        ...
