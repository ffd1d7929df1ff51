"""Request and response models of the settings and provider-account endpoints.

The request models of changes live in the core (``SettingsChange``, ``AccountChange``,
``NewAccount``), so the CLI validates exactly as the API does.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from api.run_schemas import RunListQuery
from shared.access.settings import OrganizationSettings


class SettingsOut(OrganizationSettings):
    """The organisation's settings and their version (also the ``ETag``)."""

    settings_version: int


class SettingsHistoryQuery(RunListQuery):
    """Query of ``GET /billing/settings/history``."""


class SettingsLogEntryOut(BaseModel):
    """One changed field. ``subject`` is ``organization`` or ``provider_account:<id>``;
    ``actor`` an API key id or ``cli``. A secret appears only as its fingerprint."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    actor: str
    actor_name: str | None
    subject: str
    field: str
    old_value: Any
    new_value: Any
    created_at: datetime


class SettingsLogPage(BaseModel):
    """A page of the settings log, newest first."""

    items: list[SettingsLogEntryOut]
    next_cursor: str | None
