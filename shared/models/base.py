"""The model's foundation: the declarative base, the value vocabularies every table
checks, and the column and constraint helpers the tables share."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
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
# What the matching rules find, on payments and provider records ...
MATCHING_DISCREPANCY_TYPES = (
    "MissingInternalRecord",
    "MissingProviderRecord",
    "AmountMismatch",
    "CurrencyMismatch",
    "StatusMismatch",
    "DuplicateChargeSuspected",
    "DisputeOpened",
)
# ... and what the cash chain finds (docs/design.md, "Cash discrepancies"): on provider
# settlement files, then on bank statements.
CASH_DISCREPANCY_TYPES = (
    "PayoutMismatch",
    "SettlementAmountMismatch",
    "UnsettledPayment",
    "FeeMismatch",
    "StatementBalanceMismatch",
    "PayoutNotReceived",
    "DepositAmountMismatch",
    "UnexpectedDeposit",
)
DISCREPANCY_TYPES = (*MATCHING_DISCREPANCY_TYPES, *CASH_DISCREPANCY_TYPES)
# What a discrepancy is about: at least one of these is set, and at most one unresolved
# discrepancy of a type exists per organisation and combination of them (nulls equal).
DISCREPANCY_SUBJECTS = (
    "payment_id",
    "provider_record_id",
    "settlement_line_id",
    "settlement_payout_id",
    "bank_statement_id",
    "bank_entry_id",
)
CASH_SUBJECTS = DISCREPANCY_SUBJECTS[2:]
ONE_UNRESOLVED_INDEX = "uq_reconciliation_discrepancies_one_unresolved"
# The conflict target that names that index, for INSERT … ON CONFLICT DO NOTHING.
ONE_UNRESOLVED_CONFLICT = (
    f"ON CONFLICT (org_id, type, {', '.join(DISCREPANCY_SUBJECTS)}) WHERE status <> 'resolved'"
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
    "provider",
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
# Whom a discrepancy is about: a webhook provider or a settlement provider (migration 0020).
DISCREPANCY_PROVIDERS = tuple(dict.fromkeys((*PROVIDERS, *SETTLEMENT_PROVIDERS)))


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


def discrepancy_provider(columns: Iterable[str] = DISCREPANCY_SUBJECTS, prefix: str = "") -> str:
    """SQL of a discrepancy's provider, from its subjects (the one rule, migration 0020's
    ``recon_discrepancy_provider``): its settlement line's or payout's, else its provider
    record's or payment's, else that of the bank account of its entry or statement when the
    account is paid by exactly one provider, else NULL.

    ``columns`` names the subjects the statement has (``prefix`` + name); the others are NULL.
    """
    given = set(columns)
    arguments = (
        f"{prefix}{subject}" if subject in given else "CAST(NULL AS uuid)"
        for subject in DISCREPANCY_SUBJECTS
    )
    return f"recon_discrepancy_provider({', '.join(arguments)})"


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
