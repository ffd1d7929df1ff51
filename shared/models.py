"""The data model of the service (SQLAlchemy 2 typed ORM).

Money is always ``*_minor`` (BIGINT minor units) plus an upper-case ISO 4217 ``currency``.
Timestamps are ``timestamptz`` in UTC. Enumerations are text columns guarded by CHECK
constraints, so adding a value is a plain migration (see docs/decisions.md).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.platform.ids import SQL_NEW_ID, new_id

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("owner", "manager", "viewer")
PROVIDERS = ("stripe", "adyen", "standard")
PAYMENT_STATUSES = (
    "pending",
    "succeeded",
    "failed",
    "refunded",
    "partially_refunded",
    "canceled",
)
BASE_STATUSES = ("pending", "succeeded", "failed", "canceled")
EVENT_STATES = ("pending", "processed", "failed")
RUN_STATUSES = ("queued", "running", "completed", "failed")
RUN_TRIGGERS = ("schedule", "daily_endpoint", "api", "cli")
ITEM_OUTCOMES = ("matched", "mismatched", "missing_internal", "missing_provider")
MATCH_METHODS = ("provider_reference", "merchant_reference", "heuristic")
DISCREPANCY_TYPES = (
    "MissingInternalRecord",
    "MissingProviderRecord",
    "AmountMismatch",
    "CurrencyMismatch",
    "StatusMismatch",
    "DuplicateChargeSuspected",
    "DisputeOpened",
)
# A dispute's (or chargeback's) normalised status: the provider's own text is kept beside it
# (docs/decisions.md, "Dispute status vocabulary").
DISPUTE_STATUSES = ("open", "under_review", "won", "lost")
SEVERITIES = ("high", "medium", "low")
DISCREPANCY_STATUSES = ("open", "acknowledged", "resolved")
# The equality filters of the discrepancy list (shared/discrepancies/listing.py), in its indexes.
DISCREPANCY_LIST_FILTERS = (
    "status",
    "type",
    "severity",
    "currency",
    "assignee",
    "run_id",
    "dispute_status",
)
ACTIONS = (
    "opened",
    "acknowledged",
    "assigned",
    "note_added",
    "resolved",
    "auto_resolved",
    "reopened_as_new",
    "dispute_updated",
)

# Settlement reports (shared/settlements): who sends them, the normalised line types, and
# the states of a payout.
SETTLEMENT_PROVIDERS = ("adyen", "stripe", "paypal")
SETTLEMENT_LINE_TYPES = (
    "capture",
    "refund",
    "refund_reversal",
    "chargeback",
    "chargeback_reversal",
    "fee",
    "adjustment",
    "payout",
    "balance_transfer",
    "deposit_correction",
    "invoice_deduction",
    "currency_conversion",
    "other",
)
PAYOUT_STATUSES = ("pending", "in_transit", "paid", "failed", "canceled")


def one_of(column: str, values: tuple[str, ...]) -> str:
    """SQL for a CHECK that ``column`` holds one of ``values``."""
    listed = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({listed})"


def provider_check() -> CheckConstraint:
    """The ``provider`` column names a provider the service knows."""
    return CheckConstraint(one_of("provider", PROVIDERS), name="provider_known")


def currency_check() -> CheckConstraint:
    """Currency codes are three upper-case letters (ISO 4217 form)."""
    return CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso")


def payment_checks() -> tuple[CheckConstraint, ...]:
    """What holds for a payment on either side: a known provider and payment status, and
    an ISO 4217 currency."""
    return (
        provider_check(),
        CheckConstraint(one_of("status", PAYMENT_STATUSES), name="status_known"),
        currency_check(),
    )


def dispute_status_check() -> CheckConstraint:
    """A dispute status, when there is one, is one of DISPUTE_STATUSES."""
    return CheckConstraint(
        f"dispute_status IS NULL OR {one_of('dispute_status', DISPUTE_STATUSES)}",
        name="dispute_status_known",
    )


def heuristic_index(name: str, **options: Any) -> Index:
    """The index the heuristic match searches: same provider, currency and amount, by time."""
    return Index(name, "org_id", "provider", "currency", "amount_minor", "occurred_at", **options)


def uuid_pk() -> Mapped[uuid.UUID]:
    """A time-ordered UUID primary key (shared.platform.ids), made by the application or, for
    bulk SQL, by PostgreSQL."""
    return mapped_column(
        UUID(as_uuid=True),
        primary_key=True,
        default=new_id,
        server_default=text(SQL_NEW_ID),
    )


def stamped_now() -> Mapped[datetime]:
    """A time the database sets on insert (creation; a last change's writer sets it anew)."""
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def org_fk() -> Mapped[uuid.UUID]:
    """The owning organisation: every tenant row carries it."""
    return mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False
    )


class Base(DeclarativeBase):
    """Declarative base with a fixed constraint naming convention (stable migrations)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Organization(Base):
    """A tenant: its own payments, providers, keys, schedule and matching settings."""

    __tablename__ = "organizations"
    __table_args__ = (
        CheckConstraint("daily_hour BETWEEN 0 AND 23", name="daily_hour_range"),
        CheckConstraint("grace_period_seconds >= 0", name="grace_period_non_negative"),
        CheckConstraint("amount_tolerance_minor >= 0", name="tolerance_non_negative"),
        CheckConstraint("heuristic_window_seconds >= 0", name="heuristic_window_non_negative"),
        CheckConstraint("duplicate_window_seconds >= 0", name="duplicate_window_non_negative"),
        CheckConstraint(
            "amount_tolerance_percent BETWEEN 0 AND 100", name="tolerance_percent_range"
        ),
        CheckConstraint("settings_version >= 1", name="settings_version_positive"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    timezone: Mapped[str] = mapped_column(Text, nullable=False, server_default="UTC")
    daily_hour: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="2")
    paused: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    grace_period_seconds: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="3600"
    )
    amount_tolerance_minor: Mapped[int] = mapped_column(
        BigInteger, nullable=False, server_default="0"
    )
    heuristic_window_seconds: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="900"
    )
    duplicate_window_seconds: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="600"
    )
    # A percentage of the payment's amount; the rules use the larger of the two tolerances.
    amount_tolerance_percent: Mapped[Decimal] = mapped_column(
        Numeric(7, 4), nullable=False, server_default="0"
    )
    # Null: the deployment's RECONCILIATION_AUTO_FIX decides.
    auto_fix: Mapped[bool | None] = mapped_column(Boolean)
    # Bumped by every settings change; the API's ETag (migration 0008).
    settings_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    created_at: Mapped[datetime] = stamped_now()


class ApiKey(Base):
    """A bearer key of one organisation; only its SHA-256 hash is stored."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = stamped_now()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(one_of("role", ROLES), name="role_known"),
        Index("ix_api_keys_org_id", "org_id"),
    )


class ProviderAccount(Base):
    """One provider integration of an organisation; its id is part of the webhook URL."""

    __tablename__ = "provider_accounts"
    __table_args__ = (
        provider_check(),
        CheckConstraint("cardinality(signing_secrets) >= 1", name="has_secret"),
        Index("ix_provider_accounts_org_id", "org_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str | None] = mapped_column(Text)
    signing_secrets: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    merchant_reference_key: Mapped[str] = mapped_column(
        Text, nullable=False, server_default="external_id"
    )
    manual_capture: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=text("false")
    )
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[datetime] = stamped_now()


class Payment(Base):
    """An internal billing record. Written only by the billing side; reconciliation reads it."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("org_id", "external_id"),
        *payment_checks(),
        CheckConstraint("amount_minor >= 0", name="amount_non_negative"),
        CheckConstraint("amount_refunded_minor >= 0", name="refunded_non_negative"),
        Index(
            "ix_payments_provider_reference",
            "org_id",
            "provider",
            "provider_reference",
            postgresql_where=text("provider_reference IS NOT NULL"),
        ),
        Index("ix_payments_org_occurred", "org_id", "occurred_at"),
        Index("ix_payments_created_at", "created_at"),
        heuristic_index("ix_payments_heuristic"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    external_id: Mapped[str] = mapped_column(Text, nullable=False)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    provider_reference: Mapped[str | None] = mapped_column(Text)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False)
    amount_refunded_minor: Mapped[int] = mapped_column(
        BigInteger, nullable=False, server_default="0"
    )
    customer_ref: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = stamped_now()
    updated_at: Mapped[datetime] = stamped_now()


class ProviderEvent(Base):
    """A webhook exactly as received; processing changes its state, never deletes it."""

    __tablename__ = "provider_events"
    __table_args__ = (
        UniqueConstraint("provider_account_id", "provider_event_id"),
        CheckConstraint(one_of("state", EVENT_STATES), name="state_known"),
        provider_check(),
        Index(
            "ix_provider_events_pending",
            "received_at",
            postgresql_where=text("state = 'pending'"),
        ),
        Index("ix_provider_events_org_state", "org_id", "state", "received_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    provider_account_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("provider_accounts.id"), nullable=False
    )
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    provider_event_id: Mapped[str] = mapped_column(Text, nullable=False)
    event_type: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    signature_verified: Mapped[bool] = mapped_column(Boolean, nullable=False)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    state: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    ignored_reason: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProviderRecord(Base):
    """The provider's current view of one object, normalised from its events."""

    __tablename__ = "provider_records"
    __table_args__ = (
        UniqueConstraint("org_id", "provider", "provider_reference"),
        *payment_checks(),
        Index(
            "ix_provider_records_merchant_reference",
            "org_id",
            "merchant_reference",
            postgresql_where=text("merchant_reference IS NOT NULL"),
        ),
        Index("ix_provider_records_org_occurred", "org_id", "occurred_at"),
        Index("ix_provider_records_payment_id", "payment_id"),
        Index(
            "ix_provider_records_unmatched",
            "created_at",
            postgresql_where=text("payment_id IS NULL"),
        ),
        Index(
            "ix_provider_records_customer",
            "org_id",
            "customer_ref",
            "currency",
            "amount_minor",
            "occurred_at",
            postgresql_where=text("customer_ref IS NOT NULL"),
        ),
        CheckConstraint(
            f"payment_status IS NULL OR {one_of('payment_status', BASE_STATUSES)}",
            name="payment_status_known",
        ),
        CheckConstraint(
            f"match_method IS NULL OR {one_of('match_method', MATCH_METHODS)}",
            name="match_method_known",
        ),
        # The heuristic looks among unbound records only (migration 0007).
        heuristic_index(
            "ix_provider_records_heuristic", postgresql_where=text("payment_id IS NULL")
        ),
        dispute_status_check(),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    provider_reference: Mapped[str] = mapped_column(Text, nullable=False)
    merchant_reference: Mapped[str | None] = mapped_column(Text)
    # Null until an event states the payment's amount (a refund can arrive first).
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False)
    amount_refunded_minor: Mapped[int] = mapped_column(
        BigInteger, nullable=False, server_default="0"
    )
    customer_ref: Mapped[str | None] = mapped_column(Text)
    dispute_status: Mapped[str | None] = mapped_column(Text)
    dispute_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # The merge state behind ``status`` and ``amount_refunded_minor`` (shared/matching/records.py).
    payment_status: Mapped[str | None] = mapped_column(String(16))
    status_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refunds: Mapped[dict[str, int]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    reported_refunded_minor: Mapped[int] = mapped_column(
        BigInteger, nullable=False, server_default="0"
    )
    dispute_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The newest dispute event's reason, the provider's own status text (``dispute_status``
    # is its normalised form) and the evidence due date (migration 0009).
    dispute_reason: Mapped[str | None] = mapped_column(Text)
    dispute_provider_status: Mapped[str | None] = mapped_column(Text)
    dispute_evidence_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The internal payment this record is matched to, and how. No foreign key: its check
    # locked the payment until the binding committed (migration 0007, docs/decisions.md).
    payment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    match_method: Mapped[str | None] = mapped_column(String(24))
    matched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = stamped_now()
    updated_at: Mapped[datetime] = stamped_now()


class ReconciliationRun(Base):
    """One full reconciliation of an organisation's period, with its report."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        CheckConstraint(one_of("status", RUN_STATUSES), name="status_known"),
        CheckConstraint(one_of("triggered_by", RUN_TRIGGERS), name="trigger_known"),
        CheckConstraint("period_start <= period_end", name="period_ordered"),
        Index(
            "uq_reconciliation_runs_one_active",
            "org_id",
            "period_start",
            "period_end",
            unique=True,
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        Index("ix_reconciliation_runs_org_created", "org_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    period_start: Mapped[date] = mapped_column(Date, nullable=False)
    period_end: Mapped[date] = mapped_column(Date, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="queued")
    triggered_by: Mapped[str] = mapped_column(String(16), nullable=False)
    is_verification_run: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=text("false")
    )
    auto_fix_enabled: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=text("false")
    )
    payments_checked: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    provider_records_checked: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="0"
    )
    matched: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    discrepancies_opened: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    discrepancies_auto_resolved: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="0"
    )
    report_json: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    report_markdown: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = stamped_now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)


class ReconciliationItem(Base):
    """One match verdict, from the incremental path (``run_id`` null) or a period run."""

    __tablename__ = "reconciliation_items"
    __table_args__ = (
        CheckConstraint(one_of("outcome", ITEM_OUTCOMES), name="outcome_known"),
        CheckConstraint(
            f"match_method IS NULL OR {one_of('match_method', MATCH_METHODS)}",
            name="match_method_known",
        ),
        CheckConstraint(
            "payment_id IS NOT NULL OR provider_record_id IS NOT NULL", name="has_subject"
        ),
        # BRIN: a run's items are written together (migration 0005).
        Index("ix_reconciliation_items_run_id", "run_id", postgresql_using="brin"),
        Index("ix_reconciliation_items_payment_id", "payment_id"),
        Index("ix_reconciliation_items_provider_record_id", "provider_record_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    # No foreign keys on this table, the largest a run writes: their checks were most of
    # a period run's insert time (migration 0005, docs/decisions.md).
    org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    run_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    payment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    provider_record_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    outcome: Mapped[str] = mapped_column(String(24), nullable=False)
    match_method: Mapped[str | None] = mapped_column(String(24))
    amount_difference_minor: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = stamped_now()


class ReconciliationDiscrepancy(Base):
    """A finding for finance to triage; at most one unresolved per (org, type, subjects)."""

    __tablename__ = "reconciliation_discrepancies"
    __table_args__ = (
        CheckConstraint(one_of("type", DISCREPANCY_TYPES), name="type_known"),
        CheckConstraint(one_of("severity", SEVERITIES), name="severity_known"),
        CheckConstraint(one_of("status", DISCREPANCY_STATUSES), name="status_known"),
        currency_check(),
        CheckConstraint(
            "payment_id IS NOT NULL OR provider_record_id IS NOT NULL", name="has_subject"
        ),
        CheckConstraint("version >= 1", name="version_positive"),
        dispute_status_check(),
        Index(
            "uq_reconciliation_discrepancies_one_unresolved",
            "org_id",
            "type",
            "payment_id",
            "provider_record_id",
            unique=True,
            postgresql_where=text("status <> 'resolved'"),
            postgresql_nulls_not_distinct=True,
        ),
        # The triage list, one index per sort (keyset order: the sort key, then id). Every
        # filter column follows as a key column, so a filter is checked in the index and
        # only matching rows are read from the table (docs/decisions.md, "Triage").
        Index(
            "ix_reconciliation_discrepancies_list_by_opened",
            "org_id",
            "opened_at",
            "id",
            *DISCREPANCY_LIST_FILTERS,
            "amount_minor",
        ),
        Index(
            "ix_reconciliation_discrepancies_list_by_amount",
            "org_id",
            "amount_minor",
            "id",
            *DISCREPANCY_LIST_FILTERS,
            "opened_at",
        ),
        Index("ix_reconciliation_discrepancies_payment_id", "payment_id"),
        Index("ix_reconciliation_discrepancies_provider_record_id", "provider_record_id"),
        Index("ix_reconciliation_discrepancies_run_id", "run_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    severity: Mapped[str] = mapped_column(String(8), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="open")
    payment_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("payments.id")
    )
    provider_record_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("provider_records.id")
    )
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("reconciliation_runs.id")
    )
    item_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("reconciliation_items.id")
    )
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    difference_minor: Mapped[int | None] = mapped_column(BigInteger)
    assignee: Mapped[str | None] = mapped_column(Text)
    resolution: Mapped[str | None] = mapped_column(String(32))
    resolution_reason: Mapped[str | None] = mapped_column(Text)
    adjustment_reference: Mapped[str | None] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    # DisputeOpened only: the dispute as the provider last stated it (``amount_minor`` is the
    # disputed amount). Null for every other type (migration 0009).
    dispute_status: Mapped[str | None] = mapped_column(String(16))
    dispute_reason: Mapped[str | None] = mapped_column(Text)
    dispute_provider_status: Mapped[str | None] = mapped_column(Text)
    dispute_evidence_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


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


def settlement_provider_check() -> CheckConstraint:
    """The ``provider`` column names a provider whose settlement reports recon reads."""
    return CheckConstraint(
        one_of("provider", SETTLEMENT_PROVIDERS), name="known_settlement_provider"
    )


class SettlementFile(Base):
    """One uploaded settlement report, as received: its layout, hash and summary.

    The same bytes are imported once per organisation (unique sha256); the original is
    kept in ``settlement_file_chunks``.
    """

    __tablename__ = "settlement_files"
    __table_args__ = (
        UniqueConstraint("org_id", "sha256"),
        settlement_provider_check(),
        CheckConstraint("size_bytes >= 0", name="size_non_negative"),
        Index("ix_settlement_files_org_imported", "org_id", "imported_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    provider_account_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("provider_accounts.id")
    )
    layout: Mapped[str] = mapped_column(String(48), nullable=False)
    filename: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    summary: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    imported_at: Mapped[datetime] = stamped_now()


class SettlementFileChunk(Base):
    """One piece (up to 1 MiB) of a settlement file's original bytes, in order."""

    __tablename__ = "settlement_file_chunks"
    __table_args__ = (CheckConstraint("position >= 0", name="position_non_negative"),)

    file_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("settlement_files.id"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class SettlementPayout(Base):
    """Money a provider paid out: one per provider payout id (Adyen: batch) and currency."""

    __tablename__ = "settlement_payouts"
    __table_args__ = (
        UniqueConstraint("org_id", "provider", "payout_id", "currency"),
        settlement_provider_check(),
        currency_check(),
        CheckConstraint(one_of("status", PAYOUT_STATUSES), name="status_known"),
        CheckConstraint("amount_minor >= 0", name="amount_non_negative"),
        Index("ix_settlement_payouts_org_booked", "org_id", "booked_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    file_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("settlement_files.id"), nullable=False
    )
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    payout_id: Mapped[str] = mapped_column(Text, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    arrival_date: Mapped[date | None] = mapped_column(Date)
    booked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = stamped_now()


class SettlementLine(Base):
    """One row of a settlement report; ``line_key`` (shared.settlements.model) makes the
    same row in another file the same line. Fees are in the net (settlement) currency."""

    __tablename__ = "settlement_lines"
    __table_args__ = (
        UniqueConstraint("org_id", "line_key"),
        settlement_provider_check(),
        CheckConstraint(one_of("line_type", SETTLEMENT_LINE_TYPES), name="line_type_known"),
        CheckConstraint("net_currency ~ '^[A-Z]{3}$'", name="net_currency_iso"),
        CheckConstraint(
            "gross_currency IS NULL OR gross_currency ~ '^[A-Z]{3}$'", name="gross_currency_iso"
        ),
        Index("ix_settlement_lines_batch", "org_id", "provider", "batch_id", "net_currency"),
        Index("ix_settlement_lines_file", "file_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    file_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("settlement_files.id"), nullable=False
    )
    line_key: Mapped[str] = mapped_column(String(64), nullable=False)
    row_number: Mapped[int] = mapped_column(Integer, nullable=False)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    batch_id: Mapped[str | None] = mapped_column(Text)
    line_type: Mapped[str] = mapped_column(String(24), nullable=False)
    provider_type: Mapped[str] = mapped_column(Text, nullable=False)
    provider_reference: Mapped[str | None] = mapped_column(Text)
    line_reference: Mapped[str | None] = mapped_column(Text)
    merchant_reference: Mapped[str | None] = mapped_column(Text)
    payment_intent_id: Mapped[str | None] = mapped_column(Text)
    gross_minor: Mapped[int | None] = mapped_column(BigInteger)
    gross_currency: Mapped[str | None] = mapped_column(String(3))
    commission_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    markup_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    scheme_fee_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    interchange_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    processing_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    other_fee_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    net_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    net_currency: Mapped[str] = mapped_column(String(3), nullable=False)
    exchange_rate: Mapped[Decimal | None] = mapped_column(Numeric)
    booked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)


BANK_FORMATS = ("camt053", "mt940", "bai2", "csv")


class BankAccount(Base):
    """An organisation's bank account, as its statements identify it.

    Only a masked identifier is kept in clear; ``identifier_digest`` (SHA-256 of the org and
    the full identifier, shared.bank.accounts) finds the account again on the next statement.
    One account per identifier and currency: a multi-currency IBAN is one account per currency.
    """

    __tablename__ = "bank_accounts"
    __table_args__ = (
        UniqueConstraint("org_id", "identifier_digest", "currency"),
        currency_check(),
        CheckConstraint("country IS NULL OR country ~ '^[A-Z]{2}$'", name="country_iso"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    masked_identifier: Mapped[str] = mapped_column(Text, nullable=False)
    identifier_digest: Mapped[str] = mapped_column(String(64), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    # ISO 3166 alpha-2, for the business-day calendar (from an IBAN; else unknown).
    country: Mapped[str | None] = mapped_column(String(2))
    # The providers that pay out into this account.
    providers: Mapped[list[str]] = mapped_column(
        ARRAY(String(16)), nullable=False, server_default="{}"
    )
    # The CsvMapping (without its account) of the last CSV statement imported for it.
    csv_mapping: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    created_at: Mapped[datetime] = stamped_now()


class BankStatementRecord(Base):
    """One statement of a bank account: its period, balances and whether they add up.

    ``balanced`` is opening + entries == closing (null when a balance is missing). The same
    statement id and period for the same account is one statement (a re-import adds nothing).
    """

    __tablename__ = "bank_statements"
    __table_args__ = (
        Index(
            "uq_bank_statements_account_statement_period",
            "account_id",
            "statement_id",
            "period_start",
            "period_end",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
        Index("ix_bank_statements_org_file", "org_id", "file_sha256"),
        currency_check(),
        CheckConstraint(one_of("format", BANK_FORMATS), name="format_known"),
        CheckConstraint("entry_count >= 0", name="entry_count_non_negative"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    account_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("bank_accounts.id", ondelete="RESTRICT"), nullable=False
    )
    statement_id: Mapped[str] = mapped_column(Text, nullable=False)
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    opening_balance_minor: Mapped[int | None] = mapped_column(BigInteger)
    closing_balance_minor: Mapped[int | None] = mapped_column(BigInteger)
    entry_count: Mapped[int] = mapped_column(Integer, nullable=False)
    entries_total_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    balanced: Mapped[bool | None] = mapped_column(Boolean)
    file_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    filename: Mapped[str] = mapped_column(Text, nullable=False)
    imported_at: Mapped[datetime] = stamped_now()


class BankEntryRecord(Base):
    """One booked entry of a statement: signed minor units (credit > 0, debit < 0).

    ``entry_digest`` hashes every fact of the entry and ``occurrence`` numbers identical
    entries within their statement, so the same entries imported again add nothing.
    """

    __tablename__ = "bank_entries"
    __table_args__ = (
        UniqueConstraint("account_id", "entry_digest", "occurrence"),
        Index("ix_bank_entries_org_booking", "org_id", "booking_date", "id"),
        Index("ix_bank_entries_account_booking", "account_id", "booking_date", "id"),
        Index("ix_bank_entries_statement", "bank_statement_id"),
        currency_check(),
        CheckConstraint("occurrence >= 1", name="occurrence_positive"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    account_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("bank_accounts.id", ondelete="RESTRICT"), nullable=False
    )
    bank_statement_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("bank_statements.id", ondelete="RESTRICT"), nullable=False
    )
    booking_date: Mapped[date] = mapped_column(Date, nullable=False)
    value_date: Mapped[date | None] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    counterparty_name: Mapped[str | None] = mapped_column(Text)
    counterparty_account: Mapped[str | None] = mapped_column(Text)
    remittance_text: Mapped[str | None] = mapped_column(Text)
    bank_reference: Mapped[str | None] = mapped_column(Text)
    end_to_end_id: Mapped[str | None] = mapped_column(Text)
    # The codes the format gives (TransactionCodes' fields that are set).
    transaction_codes: Mapped[dict[str, str]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    reversal: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    entry_digest: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    occurrence: Mapped[int] = mapped_column(Integer, nullable=False)
