"""What the console's forms and queries may hold (pydantic): an empty field is "not given"."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from flask import request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from werkzeug.datastructures import FileStorage

from shared.discrepancies.ageing import AGE_BUCKETS, bucket_window
from shared.discrepancies.bulk import BULK_ACTIONS, MAX_BULK_DISCREPANCIES, BulkChange, BulkTarget
from shared.discrepancies.lifecycle import (
    MAX_ADJUSTMENT_REFERENCE_LENGTH,
    MAX_NOTE_LENGTH,
    MAX_REASON_LENGTH,
    RESOLUTION_CODES,
)
from shared.discrepancies.listing import SORTS, DiscrepancyFilters
from shared.models import DISCREPANCY_PROVIDERS, DISCREPANCY_TYPES, SEVERITIES
from shared.platform.errors import ValidationFailed, validate_input
from shared.values.money import minor_units, normalise_currency

Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
QUEUE_STATUSES = ("unresolved", "open", "acknowledged", "resolved")
AGES = tuple(bucket.label for bucket in AGE_BUCKETS)
# A page may hold as many rows as one bulk action takes, so a whole page can be ticked.
PAGE_SIZES = (50, 100, 200, MAX_BULK_DISCREPANCIES)


class Form(BaseModel):
    """A submitted form or query string; unknown fields are ignored, empty ones are None."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return {key: value for key, value in values.items() if value != ""}
        return values


def parse_form(model: type[Form]) -> Form:
    """The submitted form as ``model``, or ValidationFailed naming each bad field."""
    return validate_input(model, request.form.to_dict(), "the form is incomplete")


def parse_query(model: type[Form]) -> Form:
    """The query string as ``model``, or ValidationFailed naming each bad field."""
    return validate_input(model, request.args.to_dict(), "the filters are invalid")


class Listed(Form):
    """A page's filters and cursor, which its links repeat."""

    cursor: Annotated[str, Field(max_length=512)] | None = None

    def link(self, **changes: Any) -> dict[str, str]:
        """The query string of these filters with ``changes`` (None drops a field)."""
        values = self.model_dump(mode="json") | changes
        return {name: str(value) for name, value in values.items() if value is not None}


class LoginForm(Form):
    email: Annotated[str, Field(max_length=254)] = ""
    password: Annotated[str, Field(max_length=1_024)] = ""
    next: str | None = None


class SetPasswordForm(Form):
    token: Annotated[str, Field(max_length=128)]
    password: Annotated[str, Field(max_length=1_024)] = ""
    confirm: Annotated[str, Field(max_length=1_024)] = ""


class VersionedForm(Form):
    """An action on the discrepancy as the person saw it (its version then)."""

    version: int = Field(ge=1)

    def fields(self) -> dict[str, Any]:
        """The action's own keyword arguments (all but the version)."""
        return self.model_dump(exclude={"version"})


class AcknowledgeForm(VersionedForm):
    pass


class AssignForm(VersionedForm):
    email: Annotated[str, Field(min_length=1, max_length=254)]


class NoteForm(VersionedForm):
    note: Annotated[str, Field(min_length=1, max_length=MAX_NOTE_LENGTH)]


class ResolveForm(VersionedForm):
    resolution: Literal[RESOLUTION_CODES]
    reason: Annotated[str, Field(min_length=1, max_length=MAX_REASON_LENGTH)]
    adjustment_reference: (
        Annotated[str, Field(max_length=MAX_ADJUSTMENT_REFERENCE_LENGTH)] | None
    ) = None


class QueueQuery(Listed):
    """The queue's filters, sort and page, as its filter form submits them."""

    status: Literal[QUEUE_STATUSES] = "unresolved"
    type: Literal[DISCREPANCY_TYPES] | None = None
    severity: Literal[SEVERITIES] | None = None
    provider: Literal[DISCREPANCY_PROVIDERS] | None = None
    assignee: Line | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")] | None = None
    run: uuid.UUID | None = None
    age: Literal[AGES] | None = None
    min_amount: Annotated[str, Field(max_length=32)] | None = None
    max_amount: Annotated[str, Field(max_length=32)] | None = None
    sort: Literal[SORTS] = "opened_at"
    size: Annotated[int, Field(ge=1, le=MAX_BULK_DISCREPANCIES)] = PAGE_SIZES[0]

    def filters(self, now: datetime, time_zone: str) -> DiscrepancyFilters:
        """The listing's filters: the age bucket as the opening times the ageing summary
        counts in it (calendar days in ``time_zone`` as of ``now``), amounts (decimal text)
        in minor units of the chosen currency."""
        since, until = bucket_window(self.age, now, time_zone) if self.age else (None, None)
        currency = normalise_currency(self.currency) if self.currency else None
        amounts = {"min_amount": self.min_amount, "max_amount": self.max_amount}
        if any(amounts.values()) and currency is None:
            raise ValidationFailed("choose a currency to filter by amount")
        return DiscrepancyFilters(
            unresolved=self.status == "unresolved" or None,
            status=None if self.status == "unresolved" else self.status,
            type=self.type,
            severity=self.severity,
            provider=self.provider,
            assignee=self.assignee,
            currency=currency,
            run_id=self.run,
            since=since,
            until=until,
            **{
                name: minor_units(text, currency) if text else None
                for name, text in amounts.items()
            },
        )


# A ticked row: a discrepancy's id, and the version the page showed.
TICKED = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}(:[0-9]{1,9})?$"


def _target(selected: str) -> BulkTarget:
    """A row's checkbox value, ``<id>:<version>``: the discrepancy as the person saw it."""
    discrepancy_id, _, version = selected.partition(":")
    return BulkTarget(uuid.UUID(discrepancy_id), int(version) if version else None)


class BulkForm(Form):
    """The queue's bulk form: the rows ticked, one action and its one reason."""

    selected: list[Annotated[str, Field(pattern=TICKED)]] = []
    action: Literal[BULK_ACTIONS]
    reason: Annotated[str, Field(max_length=MAX_REASON_LENGTH)] = ""
    assignee: Annotated[str, Field(max_length=254)] | None = None
    resolution: Literal[RESOLUTION_CODES] | None = None
    adjustment_reference: (
        Annotated[str, Field(max_length=MAX_ADJUSTMENT_REFERENCE_LENGTH)] | None
    ) = None

    def targets(self) -> list[BulkTarget]:
        """The ticked rows, each at the version the page showed."""
        return [_target(selected) for selected in self.selected]

    def change(self) -> BulkChange:
        """The action with its reason and the fields it takes."""
        return BulkChange(
            **self.model_dump(include={"action", "reason", "assignee", "resolution",
                                       "adjustment_reference"})
        )  # fmt: skip


def parse_bulk_form() -> BulkForm:
    """The bulk form (its ticked rows repeat one field), or ValidationFailed."""
    data: dict[str, Any] = request.form.to_dict()
    data["selected"] = request.form.getlist("selected")
    return validate_input(BulkForm, data, "the bulk form is incomplete")


class RunsQuery(Form):
    """The runs page's cursor."""

    cursor: Annotated[str, Field(max_length=512)] | None = None


class TriggerForm(Form):
    """A period to run (its first and last day) and whether it is a verification run."""

    period_start: date
    period_end: date
    is_verification_run: bool = False


# The events page's choices: what needs attention (failed or pending), or one state of it.
EVENT_VIEWS = {"attention": ("failed", "pending"), "failed": ("failed",), "pending": ("pending",)}


class EventsQuery(Form):
    """The events page's view and cursor, and the event just replayed (for its notice)."""

    view: Literal[tuple(EVENT_VIEWS)] = "attention"
    cursor: Annotated[str, Field(max_length=512)] | None = None
    replayed: uuid.UUID | None = None

    def states(self) -> tuple[str, ...]:
        """The event states this view lists."""
        return EVENT_VIEWS[self.view]


def uploaded_file(missing: str) -> FileStorage:
    """The form's ``file`` upload; ValidationFailed with ``missing`` when none was chosen."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationFailed(missing)
    return upload
