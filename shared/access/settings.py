"""An organisation's settings: what they are, how a change is checked and applied, and the
matching settings they give.

A change is a :class:`SettingsChange` (every field optional). :func:`apply_settings_change`
checks the version it is based on, applies it, bumps ``settings_version`` and logs each
changed field. :func:`effective_match_settings` is pure: it answers the MatchSettings an
organisation has, or would have with a change, without writing anything.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    WithJsonSchema,
)
from sqlalchemy.orm import Session

from shared.access.organizations import auto_fix_or_default
from shared.access.settings_log import ORGANIZATION_SUBJECT, Actor, record_changes
from shared.matching.rules import MatchSettings
from shared.models import SETTLEMENT_PROVIDERS, Organization
from shared.platform.cache import ORGANIZATION, forget_everywhere
from shared.platform.db import after_commit
from shared.platform.errors import (
    NotFound,
    PreconditionFailed,
    ValidationFailed,
    validate_input,
)
from shared.platform.settings import validate_timezone
from shared.settlements.rules import DEFAULT_SETTLEMENT_DELAY_DAYS, MAX_SETTLEMENT_DELAY_DAYS
from shared.values.changes import PartialChange
from shared.values.money import MAX_AMOUNT_MINOR

DAY_SECONDS = 86_400
MAX_GRACE_PERIOD_SECONDS = 30 * DAY_SECONDS
MAX_WINDOW_SECONDS = DAY_SECONDS


def _number(value: object) -> object:
    """A JSON number as a Decimal (a float through its shortest text: 0.1 is 0.1)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return Decimal(str(value)) if isinstance(value, float) else value


def _time_zone(name: str) -> str:
    try:
        return validate_timezone(name)
    except ValueError:
        raise ValueError("must be an IANA time zone, e.g. Europe/Paris") from None


# A percentage in JSON: a number (never a string), 0 to 100 with at most four decimals.
Percent = Annotated[
    Decimal,
    BeforeValidator(_number),
    Field(ge=0, le=100, max_digits=7, decimal_places=4),
    PlainSerializer(float, return_type=float, when_used="json"),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 100}),
]
Seconds = Annotated[StrictInt, Field(ge=0)]
TimeZone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_time_zone)]
# Business days a settlement provider takes to report a captured payment, per provider.
SettlementDelays = dict[
    Literal[SETTLEMENT_PROVIDERS],
    Annotated[StrictInt, Field(ge=0, le=MAX_SETTLEMENT_DELAY_DAYS)],
]


class OrganizationSettings(BaseModel):
    """Every setting of an organisation, as stored."""

    model_config = ConfigDict(from_attributes=True)

    grace_period_seconds: int
    amount_tolerance_minor: int
    amount_tolerance_percent: Annotated[
        Decimal,
        PlainSerializer(float, return_type=float, when_used="json"),
        WithJsonSchema({"type": "number"}),
    ]
    heuristic_window_seconds: int
    duplicate_window_seconds: int
    auto_fix: bool | None = Field(description="null: the deployment's RECONCILIATION_AUTO_FIX")
    paused: bool
    timezone: str
    daily_hour: int
    settlement_delay_days: dict[str, int] = Field(
        description="business days per settlement provider before a captured payment no "
        f"settlement line covers is UnsettledPayment; a provider left out: "
        f"{DEFAULT_SETTLEMENT_DELAY_DAYS}"
    )

    @classmethod
    def of(cls, organization: Organization) -> OrganizationSettings:
        """The organisation's settings."""
        return cls.model_validate(organization)


class SettingsChange(PartialChange):
    """A change of some settings; a field left out keeps its value. Only ``auto_fix`` may
    be null (back to the deployment's RECONCILIATION_AUTO_FIX)."""

    NULLABLE: ClassVar[frozenset[str]] = frozenset({"auto_fix"})

    grace_period_seconds: Annotated[Seconds, Field(le=MAX_GRACE_PERIOD_SECONDS)] | None = None
    amount_tolerance_minor: Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT_MINOR)] | None = None
    amount_tolerance_percent: Percent | None = None
    heuristic_window_seconds: Annotated[Seconds, Field(le=MAX_WINDOW_SECONDS)] | None = None
    duplicate_window_seconds: Annotated[Seconds, Field(le=MAX_WINDOW_SECONDS)] | None = None
    auto_fix: StrictBool | None = None
    paused: StrictBool | None = None
    timezone: TimeZone | None = None
    daily_hour: Annotated[StrictInt, Field(ge=0, le=23)] | None = None
    settlement_delay_days: SettlementDelays | None = None


def typed_value(text: str) -> Any:
    """A value typed as text (the CLI's words, the console's fields) as the API's JSON
    would hold it: JSON when it is JSON (``600``, ``0.5``, ``true``, ``null``), else the
    text itself (``Europe/Paris``)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignments(assignments: list[str]) -> SettingsChange:
    """``KEY=VALUE`` words (the CLI's) as a change, validated like the API's body; each
    VALUE is read by :func:`typed_value`."""
    values: dict[str, Any] = {}
    for assignment in assignments:
        name, equals, text = assignment.partition("=")
        if not equals or not name:
            raise ValidationFailed(f"{assignment!r} is not KEY=VALUE")
        values[name] = typed_value(text)
    return validate_input(SettingsChange, values, "settings are invalid")


def effective_match_settings(
    organization: Organization, change: SettingsChange | None = None
) -> MatchSettings:
    """The matching settings of ``organization``, or those it would have with ``change``
    applied. Pure: reads the organisation's attributes, writes nothing."""
    values = OrganizationSettings.of(organization).model_dump()
    values.update(change.changes() if change is not None else {})
    return MatchSettings(
        grace_period=timedelta(seconds=values["grace_period_seconds"]),
        amount_tolerance_minor=values["amount_tolerance_minor"],
        amount_tolerance_percent=values["amount_tolerance_percent"],
        heuristic_window=timedelta(seconds=values["heuristic_window_seconds"]),
        duplicate_window=timedelta(seconds=values["duplicate_window_seconds"]),
        auto_fix=auto_fix_or_default(values["auto_fix"]),
    )


def apply_settings_change(
    *,
    session: Session,
    org_id: uuid.UUID,
    change: SettingsChange,
    actor: Actor,
    expected_version: int | None,
) -> Organization:
    """Apply ``change`` to the organisation and log every field it changed.

    PreconditionFailed when ``expected_version`` (None: any) is not the current
    ``settings_version``. A change that changes something bumps the version; once it
    commits, this process's caches of the organisation are dropped (other processes
    read it again within their cache's seconds).
    """
    organization = session.get(Organization, org_id, with_for_update=True)
    if organization is None:
        raise NotFound(f"organisation {org_id} does not exist")
    current = organization.settings_version
    if expected_version is not None and expected_version != current:
        raise PreconditionFailed(
            f"the settings are at version {current}, not {expected_version}: read them again"
        )
    before = OrganizationSettings.of(organization).model_dump(mode="json")
    for name, value in change.changes().items():
        setattr(organization, name, value)
    after = OrganizationSettings.of(organization).model_dump(mode="json")
    changed = record_changes(
        session=session,
        org_id=org_id,
        actor=actor,
        subject=ORGANIZATION_SUBJECT,
        before=before,
        after=after,
    )
    if changed:
        organization.settings_version = current + 1
        after_commit(session, lambda: forget_everywhere(ORGANIZATION, org_id))
    session.flush()
    return organization
