"""The append-only trails: the discrepancies' action log and the settings log. A trigger
refuses UPDATE and DELETE on each (migrations 0001 and 0008)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import (
    ACTIONS,
    Base,
    one_of,
    org_fk,
    uuid_pk,
)


class ReconciliationActionLog(Base):
    """Append-only trail of every triage action; a trigger refuses UPDATE and DELETE."""

    __tablename__ = "reconciliation_action_logs"
    __table_args__ = (
        CheckConstraint(one_of("action", ACTIONS), name="action_known"),
        Index("ix_reconciliation_action_logs_discrepancy", "discrepancy_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    discrepancy_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("reconciliation_discrepancies.id"), nullable=False
    )
    action: Mapped[str] = mapped_column(String(24), nullable=False)
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    actor_name: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    )


UUID_TEXT = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class SettingsLogEntry(Base):
    """Append-only trail of settings changes, a row per field (never a secret's value); a
    trigger refuses UPDATE and DELETE."""

    __tablename__ = "settings_log"
    __table_args__ = (
        # The organisation, or one of its provider accounts.
        CheckConstraint(
            f"subject = 'organization' OR subject ~ '^provider_account:{UUID_TEXT}$'",
            name="subject_format",
        ),
        Index("ix_settings_log_org_created", "org_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    actor_name: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    field: Mapped[str] = mapped_column(Text, nullable=False)
    old_value: Mapped[Any] = mapped_column(JSONB(none_as_null=True), nullable=True)
    new_value: Mapped[Any] = mapped_column(JSONB(none_as_null=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    )
