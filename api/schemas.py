"""Request and response models of the HTTP API (pydantic): the API's contract."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from shared.discrepancies.bulk import BULK_ACTIONS, MAX_BULK_DISCREPANCIES
from shared.discrepancies.lifecycle import (
    MAX_ADJUSTMENT_REFERENCE_LENGTH,
    MAX_ASSIGNEE_LENGTH,
    MAX_NOTE_LENGTH,
    MAX_REASON_LENGTH,
    RESOLUTION_CODES,
)
from shared.discrepancies.listing import SORTS, DiscrepancyDetail, DiscrepancyFilters
from shared.ingest.events import EVENT_LIST_STATES
from shared.models import (
    DISCREPANCY_PROVIDERS,
    DISCREPANCY_STATUSES,
    DISCREPANCY_TYPES,
    DISPUTE_STATUSES,
    SEVERITIES,
)
from shared.platform.pagination import DEFAULT_LIMIT, MAX_LIMIT
from shared.values.text import check_identifier

MAX_BIGINT = 2**63 - 1


class Strict(BaseModel):
    """Unknown fields are refused, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid")


def one_or_many(value: Any) -> Any:
    """A query parameter given once, as the list it would be if repeated."""
    return [value] if isinstance(value, str) else value


class EventListQuery(Strict):
    """Filters of ``GET /billing/webhooks/events``: ``state`` may repeat, for the events in
    any of those states (``?state=failed&state=pending``: the ones that need attention)."""

    state: (
        Annotated[
            list[Literal[EVENT_LIST_STATES]],
            BeforeValidator(one_or_many),
            Field(min_length=1, max_length=len(EVENT_LIST_STATES)),
        ]
        | None
    ) = None
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
    ignored_reason: str | None = Field(
        description="Why processing acted on nothing (an event type recon does not use)"
    )
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


class DiscrepancyFilterQuery(Strict):
    """Filters of the discrepancy list and of its summaries.

    ``since`` is inclusive and ``until`` exclusive, both on ``opened_at`` and both with an
    offset; ``min_amount`` and ``max_amount`` (both inclusive) are in minor units (pair
    them with ``currency``); ``provider`` is whom the discrepancy is about.
    """

    status: Literal[DISCREPANCY_STATUSES] | None = None
    type: Literal[DISCREPANCY_TYPES] | None = None
    severity: Literal[SEVERITIES] | None = None
    assignee: (
        Annotated[
            str,
            Field(min_length=1, max_length=MAX_ASSIGNEE_LENGTH),
            AfterValidator(check_identifier),
        ]
        | None
    ) = None
    run_id: uuid.UUID | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    min_amount: int | None = Field(default=None, ge=0, le=MAX_BIGINT)
    max_amount: int | None = Field(default=None, ge=0, le=MAX_BIGINT)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    dispute_status: Literal[DISPUTE_STATUSES] | None = None
    provider: Literal[DISCREPANCY_PROVIDERS] | None = None

    def filters(self) -> DiscrepancyFilters:
        """The domain's filter object."""
        return DiscrepancyFilters(
            status=self.status,
            type=self.type,
            severity=self.severity,
            assignee=self.assignee,
            run_id=self.run_id,
            currency=self.currency.upper() if self.currency else None,
            min_amount=self.min_amount,
            max_amount=self.max_amount,
            since=self.since,
            until=self.until,
            dispute_status=self.dispute_status,
            provider=self.provider,
        )


class DiscrepancyListQuery(DiscrepancyFilterQuery):
    """Filters, sort and page of ``GET /billing/reconciliation/discrepancies``."""

    sort: Literal[SORTS] = "opened_at"
    cursor: str | None = Field(default=None, max_length=512)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class AssignIn(Strict):
    """Body of ``PATCH …/discrepancies/<id>/assign``."""

    assignee: str = Field(min_length=1, max_length=MAX_ASSIGNEE_LENGTH)


class NoteIn(Strict):
    """Body of ``POST …/discrepancies/<id>/notes``."""

    note: str = Field(min_length=1, max_length=MAX_NOTE_LENGTH)


class ResolveIn(Strict):
    """Body of ``PATCH …/discrepancies/<id>/resolve``; ``auto_resolved`` is system-only."""

    resolution: Literal[RESOLUTION_CODES]
    reason: str = Field(min_length=1, max_length=MAX_REASON_LENGTH)
    adjustment_reference: str | None = Field(
        default=None, min_length=1, max_length=MAX_ADJUSTMENT_REFERENCE_LENGTH
    )


class PaymentSummaryOut(BaseModel):
    """The internal payment a discrepancy concerns."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    external_id: str


class ProviderRecordSummaryOut(BaseModel):
    """The provider record a discrepancy concerns."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider: str
    provider_reference: str


class DiscrepancyOut(BaseModel):
    """A discrepancy as docs/design.md shapes it; ``difference_minor`` for AmountMismatch;
    the ``dispute_*`` fields for DisputeOpened (``amount_minor`` is then the disputed
    amount, ``dispute_status`` one of open, under_review, won, lost); the settlement and
    bank ids for the cash chain's discrepancies; ``provider``, whom it is about (from its
    subjects when opened; null when none names a provider)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    type: str
    severity: str
    status: str
    payment: PaymentSummaryOut | None
    provider_record: ProviderRecordSummaryOut | None
    amount_minor: int
    currency: str
    difference_minor: int | None
    assignee: str | None
    resolution: str | None
    version: int
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    dispute_status: str | None
    dispute_provider_status: str | None
    dispute_reason: str | None
    dispute_evidence_due_at: datetime | None
    settlement_line_id: uuid.UUID | None
    settlement_payout_id: uuid.UUID | None
    bank_statement_id: uuid.UUID | None
    bank_entry_id: uuid.UUID | None
    provider: str | None


class DiscrepancyPage(BaseModel):
    """A page of discrepancies."""

    items: list[DiscrepancyOut]
    next_cursor: str | None


class ReconciliationItemOut(BaseModel):
    """One match result touching the discrepancy's payment or provider record."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    run_id: uuid.UUID | None
    payment_id: uuid.UUID | None
    provider_record_id: uuid.UUID | None
    outcome: str
    match_method: str | None
    amount_difference_minor: int | None
    created_at: datetime


class ActionOut(BaseModel):
    """One entry of the append-only trail; ``actor`` is an API key id or ``system``."""

    model_config = ConfigDict(from_attributes=True)

    action: str
    actor: str
    actor_name: str | None
    payload: dict[str, Any]
    created_at: datetime


class DiscrepancyDetailOut(DiscrepancyOut):
    """A discrepancy with its match results and its action log, oldest first."""

    items: list[ReconciliationItemOut]
    actions: list[ActionOut]

    @classmethod
    def from_detail(cls, detail: DiscrepancyDetail) -> DiscrepancyDetailOut:
        """Build from the domain's detail object."""
        fields = {**vars(detail.discrepancy), "items": detail.items, "actions": detail.actions}
        return cls.model_validate(fields, from_attributes=True)


class CurrencyTotalOut(BaseModel):
    """Discrepancies of one currency: how many, and their amounts summed in minor units."""

    model_config = ConfigDict(from_attributes=True)

    currency: str
    count: int
    amount_minor: int


class AgeingBucketOut(BaseModel):
    """Discrepancies from ``min_days`` to ``max_days`` old (inclusive; null: no limit)."""

    model_config = ConfigDict(from_attributes=True)

    label: str
    min_days: int
    max_days: int | None
    count: int
    by_currency: list[CurrencyTotalOut]


class AgeingSummaryOut(BaseModel):
    """Open and acknowledged discrepancies per age bucket (calendar days in ``time_zone``,
    the organisation's, by ``opened_at``), youngest first, empty buckets included."""

    model_config = ConfigDict(from_attributes=True)

    as_of: datetime
    time_zone: str
    buckets: list[AgeingBucketOut]


class BulkTargetIn(Strict):
    """One discrepancy of a bulk action; with ``version``, it is changed only at that one."""

    id: uuid.UUID
    version: int | None = Field(default=None, ge=1, le=MAX_BIGINT)


class BulkTriageIn(Strict):
    """Body of ``POST …/discrepancies/bulk``: one action and one reason for up to 500.

    ``assignee`` goes with ``assign``; ``resolution`` (and ``adjustment_reference``, which a
    lost dispute requires) with ``resolve``.
    """

    action: Literal[BULK_ACTIONS]
    discrepancies: list[BulkTargetIn] = Field(min_length=1, max_length=MAX_BULK_DISCREPANCIES)
    reason: str = Field(min_length=1, max_length=MAX_REASON_LENGTH)
    assignee: str | None = Field(default=None, min_length=1, max_length=MAX_ASSIGNEE_LENGTH)
    resolution: Literal[RESOLUTION_CODES] | None = None
    adjustment_reference: str | None = Field(
        default=None, min_length=1, max_length=MAX_ADJUSTMENT_REFERENCE_LENGTH
    )


class BulkFailureOut(BaseModel):
    """A discrepancy left unchanged: its problem type (``not-found``,
    ``invalid-transition``, ``precondition-failed`` for a stale version,
    ``validation-failed``), why, and its status or version when that is the reason."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    problem: str
    detail: str
    current_status: str | None
    current_version: int | None


class BulkTriageOut(BaseModel):
    """What a bulk action changed (each discrepancy as it is now) and what it refused,
    each in the order of the request."""

    model_config = ConfigDict(from_attributes=True)

    changed: list[DiscrepancyOut]
    failed: list[BulkFailureOut]
