"""Organisations: the tenants every other row belongs to."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from shared.models import Organization
from shared.platform.errors import NotFound, ValidationFailed
from shared.platform.settings import get_settings, validate_timezone


def create_organization(
    *, session: Session, name: str, timezone: str | None = None, daily_hour: int | None = None
) -> Organization:
    """Create an organisation; time zone and hour default to the RECONCILIATION_* settings."""
    settings = get_settings()
    name = name.strip()
    if not name:
        raise ValidationFailed("organisation name must not be empty")
    timezone = timezone or settings.reconciliation_timezone
    try:
        validate_timezone(timezone)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None
    hour = settings.reconciliation_hour if daily_hour is None else daily_hour
    if not 0 <= hour <= 23:
        raise ValidationFailed("daily hour must be between 0 and 23")
    organization = Organization(name=name, timezone=timezone, daily_hour=hour)
    session.add(organization)
    session.flush()
    return organization


def get_organization(*, session: Session, org_id: uuid.UUID) -> Organization:
    """The organisation ``org_id``, or NotFound."""
    organization = session.get(Organization, org_id)
    if organization is None:
        raise NotFound(f"organisation {org_id} does not exist")
    return organization


def auto_fix_enabled(organization: Organization) -> bool:
    """Whether discrepancies whose condition no longer holds are resolved automatically:
    the organisation's own choice, else RECONCILIATION_AUTO_FIX."""
    return auto_fix_or_default(organization.auto_fix)


def auto_fix_or_default(choice: bool | None) -> bool:
    """An organisation's auto-fix choice; None (no choice) is RECONCILIATION_AUTO_FIX."""
    return get_settings().reconciliation_auto_fix if choice is None else choice
