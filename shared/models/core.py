"""The reconciliation tables: organisations, keys and provider accounts, payments,
provider events and records, runs, items and discrepancies (their append-only trails are
in ``audit.py``)."""

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
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import (
    BASE_STATUSES,
    CASH_SUBJECTS,
    DISCREPANCY_LIST_FILTERS,
    DISCREPANCY_PROVIDERS,
    DISCREPANCY_STATUSES,
    DISCREPANCY_SUBJECTS,
    DISCREPANCY_TYPES,
    EVENT_STATES,
    ITEM_OUTCOMES,
    MATCH_METHODS,
    ONE_UNRESOLVED_INDEX,
    ROLES,
    RUN_STATUSES,
    RUN_TRIGGERS,
    SEVERITIES,
    Base,
    currency_check,
    dispute_status_check,
    heuristic_index,
    one_of,
    org_fk,
    payment_checks,
    provider_check,
    stamped_now,
    uuid_pk,
)


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
    # The expected settlement delay in business days per settlement provider; a provider
    # left out: DEFAULT_SETTLEMENT_DELAY_DAYS (shared/settlements/rules.py).
    settlement_delay_days: Mapped[dict[str, int]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
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
        CheckConstraint(
            "payout_arrival_business_days BETWEEN 0 AND 30", name="payout_arrival_days_range"
        ),
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
    # Business days after a payout's expected arrival before it counts as not received
    # (PayoutNotReceived; shared/bank/findings.py).
    payout_arrival_business_days: Mapped[int] = mapped_column(
        SmallInteger, nullable=False, server_default=text("2")
    )
    # Settlement currency → {"percent", "fixed_minor", "tolerance_minor"}: the fees its
    # provider is expected to take (shared/providers/accounts.py); null: none expected.
    fee_schedule: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
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


class PendingPaymentMatch(Base):
    """An imported payment waiting to be matched: written in the import's transaction,
    deleted by the worker's batch that matched it (shared/payments/matching.py)."""

    __tablename__ = "pending_payment_matches"
    __table_args__ = (
        # The claim: the oldest claimable first; rows given up on are left out.
        Index(
            "ix_pending_payment_matches_claimable",
            "retry_at",
            "id",
            postgresql_where=text("failed_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    # No foreign key: payments are never deleted, and its check would lock the payment.
    payment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    queued_at: Mapped[datetime] = stamped_now()
    # Not claimed before this time: a batch that failed waits (backing off) before its retry.
    retry_at: Mapped[datetime] = stamped_now()
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    # Set once matching it has failed MAX_MATCH_ATTEMPTS times: kept, visible, not retried.
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


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
    # The fingerprint of the run's matched set: its (payment, record) bindings, how many and
    # their order-independent digest (shared/runs/fingerprint.py; migration 0013).
    matched_pairs: Mapped[int | None] = mapped_column(BigInteger)
    matched_digest: Mapped[str | None] = mapped_column(String(16))


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
        # The incremental path's exceptions only: a run looks up whether a clean pair's
        # verdict changed since that path judged it (migration 0013).
        Index(
            "ix_reconciliation_items_incremental_payment_exceptions",
            "payment_id",
            "id",
            postgresql_where=text("run_id IS NULL AND outcome <> 'matched'"),
        ),
        Index(
            "ix_reconciliation_items_incremental_record_exceptions",
            "provider_record_id",
            "id",
            postgresql_where=text("run_id IS NULL AND payment_id IS NULL"),
        ),
        # A run's items a page at a time, in the order it wrote them.
        Index(
            "ix_reconciliation_items_run_pages",
            "run_id",
            "id",
            postgresql_where=text("run_id IS NOT NULL"),
        ),
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
            " OR ".join(f"{subject} IS NOT NULL" for subject in DISCREPANCY_SUBJECTS),
            name="has_subject",
        ),
        CheckConstraint("version >= 1", name="version_positive"),
        dispute_status_check(),
        CheckConstraint(
            f"provider IS NULL OR {one_of('provider', DISCREPANCY_PROVIDERS)}",
            name="provider_known",
        ),
        Index(
            ONE_UNRESOLVED_INDEX,
            "org_id",
            "type",
            *DISCREPANCY_SUBJECTS,
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
        *(
            Index(f"ix_reconciliation_discrepancies_{subject}", subject)
            for subject in CASH_SUBJECTS
        ),
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
    # The cash chain's subjects (migration 0012): a settlement line or payout, a bank
    # statement or entry.
    settlement_line_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("settlement_lines.id")
    )
    settlement_payout_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("settlement_payouts.id")
    )
    bank_statement_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("bank_statements.id")
    )
    bank_entry_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("bank_entries.id")
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
    # Whom it is about, derived from its subjects when it is opened (``discrepancy_provider``;
    # null when none names one): the queue's provider filter (migration 0020).
    provider: Mapped[str | None] = mapped_column(String(16))
