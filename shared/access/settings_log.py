"""The settings log: who changed which setting of an organisation or a provider account,
from what to what. Append-only (a trigger refuses UPDATE and DELETE, migration 0008).

A secret's value never enters it: a secret's addition or retirement is recorded with its
fingerprint only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.access.api_keys import Caller
from shared.models import SettingsLogEntry
from shared.platform.pagination import Page, newest_first

ORGANIZATION_SUBJECT = "organization"


@dataclass(frozen=True)
class Actor:
    """Who makes a change: an API key (its id and name), a person (``user:<id>``, their
    name), or the operator's CLI."""

    id: str
    name: str | None = None

    @classmethod
    def of(cls, caller: Caller) -> Actor:
        """The key or person behind a request."""
        return cls(id=caller.actor, name=caller.actor_name)


OPERATOR = Actor(id="cli", name="recon CLI")


def account_subject(account_id: uuid.UUID) -> str:
    """The log subject of a provider account."""
    return f"provider_account:{account_id}"


def record_change(
    *,
    session: Session,
    org_id: uuid.UUID,
    actor: Actor,
    subject: str,
    field: str,
    old: Any,
    new: Any,
) -> None:
    """Append one entry: ``field`` of ``subject`` went from ``old`` to ``new`` (JSON values)."""
    session.add(
        SettingsLogEntry(
            org_id=org_id,
            actor=actor.id,
            actor_name=actor.name,
            subject=subject,
            field=field,
            old_value=old,
            new_value=new,
        )
    )


def record_changes(
    *,
    session: Session,
    org_id: uuid.UUID,
    actor: Actor,
    subject: str,
    before: dict[str, Any],
    after: dict[str, Any],
) -> list[str]:
    """Append an entry for every field whose value differs between ``before`` and
    ``after``; the names of those fields."""
    changed = [name for name in after if before.get(name) != after[name]]
    for name in changed:
        record_change(
            session=session,
            org_id=org_id,
            actor=actor,
            subject=subject,
            field=name,
            old=before.get(name),
            new=after[name],
        )
    return changed


def list_settings_history(
    *, session: Session, org_id: uuid.UUID, cursor: str | None, limit: int
) -> Page[SettingsLogEntry]:
    """The organisation's settings log, newest first (cursor pagination)."""
    query = select(SettingsLogEntry).where(SettingsLogEntry.org_id == org_id)
    newest = (SettingsLogEntry.created_at, SettingsLogEntry.id)
    return newest_first(query, newest, session=session, cursor=cursor, limit=limit)
