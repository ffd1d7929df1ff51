"""Request and response models of the runs endpoints."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictBool, model_validator

from api.schemas import Strict
from shared.access.settings import SettingsChange
from shared.platform.pagination import DEFAULT_LIMIT, MAX_LIMIT
from shared.runs.dry_run import WouldOpen, WouldResolve


class RunTrigger(Strict):
    """``{"period_start", "period_end"}`` or ``{"date"}`` (one day)."""

    period_start: dt.date | None = None
    period_end: dt.date | None = None
    date: dt.date | None = None
    is_verification_run: bool = False
    dry_run: StrictBool = Field(
        default=False,
        description="Answer what the run would do (200, DryRunOut) and write nothing",
    )
    settings: SettingsChange | None = Field(
        default=None,
        description="With dry_run: the settings to try instead of the organisation's own",
    )

    @model_validator(mode="after")
    def _one_period(self) -> RunTrigger:
        if self.date is not None and (self.period_start or self.period_end):
            raise ValueError("send either date or period_start and period_end, not both")
        if self.date is None and not (self.period_start and self.period_end):
            raise ValueError("send date, or both period_start and period_end")
        if self.settings is not None and not self.dry_run:
            raise ValueError("settings can only be tried in a dry run (dry_run: true)")
        return self

    @property
    def bounds(self) -> tuple[dt.date, dt.date]:
        """The first and last day of the period."""
        if self.date is not None:
            return self.date, self.date
        return self.period_start, self.period_end


class RunListQuery(Strict):
    """Query of ``GET /billing/reconciliation/runs``."""

    cursor: str | None = Field(default=None, max_length=512)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class ReportQuery(Strict):
    """Query of the report endpoint."""

    format: Literal["json", "markdown"] | None = None


class RunItemsQuery(Strict):
    """Query of a run's items: a page (JSON), or every item (``format=csv``)."""

    cursor: str | None = Field(default=None, max_length=512)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    format: Literal["json", "csv"] | None = None


class ItemOut(BaseModel):
    """One recorded verdict: ``run_id`` null for the incremental path; ``currency`` is the
    payment's (else the record's), the unit of ``amount_difference_minor``."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    run_id: uuid.UUID | None
    outcome: str
    match_method: str | None
    payment_id: uuid.UUID | None
    payment_external_id: str | None
    provider_record_id: uuid.UUID | None
    provider: str | None
    provider_reference: str | None
    currency: str | None
    amount_difference_minor: int | None
    created_at: dt.datetime


class ItemPage(BaseModel):
    """A page of a run's items, in the order the run wrote them."""

    items: list[ItemOut]
    next_cursor: str | None


class BoundRecordOut(BaseModel):
    """A provider record matched to the payment, and how."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider: str
    provider_reference: str
    match_method: str | None
    matched_at: dt.datetime | None


class MatchedPaymentOut(BaseModel):
    """The payment the matches are about."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    external_id: str
    provider: str
    amount_minor: int
    currency: str
    status: str
    occurred_at: dt.datetime


class PaymentMatchesOut(BaseModel):
    """A payment's binding (its records) and every verdict recorded on it, oldest first:
    the incremental path's and the runs' (a run records its exceptions only)."""

    model_config = ConfigDict(from_attributes=True)

    payment: MatchedPaymentOut
    records: list[BoundRecordOut]
    items: list[ItemOut]


class RunCounts(BaseModel):
    """What a run checked, matched, opened and auto-resolved."""

    payments_checked: int
    provider_records_checked: int
    matched: int
    discrepancies_opened: int
    discrepancies_auto_resolved: int


class RunOut(BaseModel):
    """A reconciliation run (docs/design.md, "Runs")."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: str
    period_start: dt.date
    period_end: dt.date
    triggered_by: str
    is_verification_run: bool
    auto_fix_enabled: bool
    counts: RunCounts
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None

    @classmethod
    def of(cls, run) -> RunOut:
        """The resource of a run row; its counts are columns of the same row."""
        fields = {name: getattr(run, name) for name in cls.model_fields if name != "counts"}
        return cls(**fields, counts=RunCounts.model_validate(run, from_attributes=True))


class RunPage(BaseModel):
    """A page of runs, newest first."""

    items: list[RunOut]
    next_cursor: str | None


class DailyRuns(BaseModel):
    """Answer of the daily endpoint: every organisation's run for yesterday."""

    started: int
    runs: list[RunOut]


class DryRunOut(BaseModel):
    """What a run of the period would do under the settings given; nothing was written."""

    model_config = ConfigDict(from_attributes=True)

    dry_run: Literal[True] = True
    report: dict[str, Any] = Field(description="The report the run would write")
    would_open: list[WouldOpen]
    would_auto_resolve: list[WouldResolve]


class TriggerAnswer(RootModel[DryRunOut | RunOut]):
    """A dry run's answer, or the run already active for the period."""
