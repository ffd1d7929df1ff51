"""The settlement model a finance person reads: lines, their fees, and payouts.

Every provider's report is parsed into these values (pure data, no database). Money is
an integer of minor units with the currency's own exponent; a line's gross is in the
transaction currency, its fees and net in the settlement currency.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from datetime import date, datetime
from decimal import Decimal

from shared.models import PAYOUT_STATUSES, SETTLEMENT_LINE_TYPES, SETTLEMENT_PROVIDERS

# The normalised type of a settlement line (the provider's own word is kept beside it),
# and the states of a payout: the tables' CHECK constraints hold the same lists.
LINE_TYPES = SETTLEMENT_LINE_TYPES
PROVIDERS = SETTLEMENT_PROVIDERS
__all__ = ["LINE_TYPES", "PAYOUT_STATUSES", "PROVIDERS", "Fees", "ReportLine", "ReportPayout"]


@dataclass(frozen=True, slots=True)
class Fees:
    """A line's fees by component, in minor units of the settlement currency (a fee the
    provider returns is negative)."""

    commission: int = 0
    markup: int = 0
    scheme_fee: int = 0
    interchange: int = 0
    processing: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        """The sum of every component."""
        return sum(astuple(self))


@dataclass(frozen=True, slots=True)
class ReportLine:
    """One row of a settlement report: a movement of the merchant's balance.

    ``net_minor`` is signed from the merchant's side (a credit is positive). ``row`` is the
    record's number in its file (the header is row 1), for error messages and evidence.
    """

    provider: str
    row: int
    batch_id: str | None
    line_type: str
    provider_type: str
    provider_reference: str | None
    line_reference: str | None
    merchant_reference: str | None
    payment_intent_id: str | None
    gross_minor: int | None
    gross_currency: str | None
    fees: Fees
    net_minor: int
    net_currency: str
    exchange_rate: Decimal | None
    booked_at: datetime
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ReportPayout:
    """Money the provider sent (or will send) to the merchant's bank account.

    Adyen states one payout per batch and settlement currency, Stripe one per payout
    object, PayPal one per withdrawal; ``amount_minor`` is signed as the bank books it:
    positive, or negative for a debit the provider draws (an Adyen batch whose net is
    negative, a Stripe payout object with a negative amount).
    """

    provider: str
    row: int
    payout_id: str
    currency: str
    amount_minor: int
    status: str
    arrival_date: date | None
    booked_at: datetime | None
