"""Request and response models of the settlement endpoints."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.schemas import Strict
from shared.models import PAYOUT_STATUSES
from shared.platform.pagination import DEFAULT_LIMIT, MAX_LIMIT
from shared.settlements.listing import PayoutDetail, PayoutFilters, PayoutView


class CurrencyTotals(BaseModel):
    """A file's figures in one settlement currency, in minor units."""

    lines: int
    net_minor: int = Field(description="Net of the lines, payout rows excepted")
    fees_minor: int = Field(description="Fees of the lines, every component")
    payouts_minor: int


class KnownRows(BaseModel):
    """Rows of the file that an earlier file already brought (not added again)."""

    lines: int
    payouts: int


class SettlementSummary(BaseModel):
    """What a file held."""

    lines: int
    payouts: int
    already_known: KnownRows
    totals: dict[str, CurrencyTotals] = Field(description="By settlement currency")


class SettlementFileOut(BaseModel):
    """An imported settlement file."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider: str
    layout: str = Field(description="The layout detected (docs/design.md, Settlement reports)")
    filename: str
    sha256: str
    size_bytes: int
    provider_account_id: uuid.UUID | None
    imported_by: str | None = Field(
        description="The API key's id, user:<id> (the console) or cli; null if unrecorded"
    )
    imported_by_name: str | None = Field(description="The key's or the person's name")
    imported_at: datetime
    summary: SettlementSummary


class SettlementFilePage(BaseModel):
    """A page of imported files, newest first."""

    items: list[SettlementFileOut]
    next_cursor: str | None


class UploadQuery(Strict):
    """Query of ``POST /billing/settlements/files``."""

    account_id: uuid.UUID | None = Field(
        default=None,
        description="The provider account the file is from (its merchant-reference key)",
    )


class FileListQuery(Strict):
    """Query of ``GET /billing/settlements/files``."""

    cursor: str | None = Field(default=None, max_length=512)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class PayoutListQuery(Strict):
    """Filters of ``GET /billing/settlements/payouts``: ``since`` inclusive and ``until``
    exclusive, both on ``booked_at`` and both with an offset."""

    status: Literal[PAYOUT_STATUSES] | None = None  # type: ignore[valid-type]
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    cursor: str | None = Field(default=None, max_length=512)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)

    def filters(self) -> PayoutFilters:
        """The domain's filters."""
        currency = self.currency.upper() if self.currency else None
        return PayoutFilters(self.status, currency, self.since, self.until)


class PayoutOut(BaseModel):
    """A payout with the net of its lines and the difference (amount − lines' net)."""

    id: uuid.UUID
    provider: str
    payout_id: str = Field(description="The provider's payout id (Adyen: batch number)")
    currency: str
    amount_minor: int
    status: str
    arrival_date: date | None
    booked_at: datetime
    file_id: uuid.UUID | None = Field(
        description="The first file that stated it; null while only webhooks have"
    )
    line_count: int
    lines_net_minor: int
    difference_minor: int

    @classmethod
    def of(cls, view: PayoutView) -> PayoutOut:
        """The answer for ``view``."""
        payout = view.payout
        return cls(
            id=payout.id, provider=payout.provider, payout_id=payout.payout_id,
            currency=payout.currency, amount_minor=payout.amount_minor, status=payout.status,
            arrival_date=payout.arrival_date, booked_at=payout.booked_at, file_id=payout.file_id,
            line_count=view.line_count, lines_net_minor=view.lines_net_minor,
            difference_minor=view.difference_minor,
        )  # fmt: skip


class PayoutPage(BaseModel):
    """A page of payouts, newest booked first."""

    items: list[PayoutOut]
    next_cursor: str | None


class FeesOut(BaseModel):
    """Fees by component, in minor units of the settlement currency."""

    commission: int
    markup: int
    scheme_fee: int
    interchange: int
    processing: int
    other: int


class SettlementLineOut(BaseModel):
    """One settlement line."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    file_id: uuid.UUID
    row_number: int
    line_type: str
    provider_type: str
    provider_reference: str | None
    line_reference: str | None
    merchant_reference: str | None
    payment_intent_id: str | None
    gross_minor: int | None
    gross_currency: str | None
    commission_minor: int
    markup_minor: int
    scheme_fee_minor: int
    interchange_minor: int
    processing_minor: int
    other_fee_minor: int
    net_minor: int
    net_currency: str
    exchange_rate: Decimal | None = Field(description="As the provider wrote it (a string)")
    booked_at: datetime
    description: str | None
    provider_record_id: uuid.UUID | None = Field(description="The provider record it settles")
    payment_id: uuid.UUID | None = Field(description="The internal payment it settles")


class PayoutDetailOut(PayoutOut):
    """A payout with its fee breakdown and its lines (at most 1,000; see line_count)."""

    fees: FeesOut
    lines: list[SettlementLineOut]

    @classmethod
    def of_detail(cls, detail: PayoutDetail) -> PayoutDetailOut:
        """The answer for ``detail``."""
        return cls(
            **PayoutOut.of(detail.view).model_dump(),
            fees=FeesOut(**detail.fees),
            lines=[SettlementLineOut.model_validate(line) for line in detail.lines],
        )
