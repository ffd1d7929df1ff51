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
