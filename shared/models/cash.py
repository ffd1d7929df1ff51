"""The cash tables: settlement files, payouts and lines; bank accounts, statements and
entries."""

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
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import (
    PAYOUT_STATUSES,
    SETTLEMENT_LINE_TYPES,
    SETTLEMENT_PROVIDERS,
    Base,
    currency_check,
    one_of,
    org_fk,
    stamped_now,
    uuid_pk,
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
        UniqueConstraint("org_id", "id"),  # what each line's one foreign key references
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
    # Who imported it: an API key's id, ``user:<id>`` or ``cli``, and its name (None:
    # imported before migration 0019 recorded it).
    imported_by: Mapped[str | None] = mapped_column(Text)
    imported_by_name: Mapped[str | None] = mapped_column(Text)
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
    """Money a provider paid out: one per provider payout id (Adyen: batch) and currency.

    ``amount_minor`` is signed as the bank sees it: a payout credits the bank account
    (> 0); a negative payout is a debit the provider draws from it (its balance went
    negative), matched to a debit entry.
    ``file_id`` is the first file that stated it (None: known from a webhook only);
    ``status_at`` when its status was stated (shared/settlements/payouts.py).
    """

    __tablename__ = "settlement_payouts"
    __table_args__ = (
        UniqueConstraint("org_id", "provider", "payout_id", "currency"),
        settlement_provider_check(),
        currency_check(),
        CheckConstraint(one_of("status", PAYOUT_STATUSES), name="status_known"),
        Index("ix_settlement_payouts_org_booked", "org_id", "booked_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    file_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("settlement_files.id")
    )
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    payout_id: Mapped[str] = mapped_column(Text, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    arrival_date: Mapped[date | None] = mapped_column(Date)
    booked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    status_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = stamped_now()


class SettlementLine(Base):
    """One row of a settlement report; ``line_key`` (shared.settlements.imports) makes the
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
        Index("ix_settlement_lines_payment", "payment_id"),
        Index("ix_settlement_lines_org_booked", "org_id", "booked_at"),
        # One key, checked once per inserted line (migration 0021): the file's organisation.
        ForeignKeyConstraint(
            ["org_id", "file_id"], ["settlement_files.org_id", "settlement_files.id"]
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    file_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
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
    # What the line was linked to (shared/settlements/matching.py); no foreign keys, as on
    # provider_records.payment_id: the links are written in bulk.
    provider_record_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    payment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


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
        CheckConstraint("version >= 1", name="version_positive"),
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
    # Bumped by every settings change (name, providers, country): the ETag of If-Match.
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
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
        UniqueConstraint("org_id", "account_id", "id"),  # what each entry's foreign key references
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
        # One key, checked once per inserted entry (migration 0021): the statement's
        # organisation and account.
        ForeignKeyConstraint(
            ["org_id", "account_id", "bank_statement_id"],
            ["bank_statements.org_id", "bank_statements.account_id", "bank_statements.id"],
            ondelete="RESTRICT",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    bank_statement_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
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


PAYOUT_LINK_METHODS = ("reference", "amount", "manual")
PAYOUT_LINK_ACTIONS = ("linked", "unlinked")


class BankPayoutLink(Base):
    """A payout received: the bank entry that carried it (one each way).

    ``method`` says how it was found: the payout's reference in the entry's text, a
    unique amount near the expected arrival, or a person (``manual``). Every link and
    unlink is also in ``bank_payout_link_log``.
    """

    __tablename__ = "bank_payout_links"
    __table_args__ = (
        UniqueConstraint("settlement_payout_id"),
        UniqueConstraint("bank_entry_id"),
        CheckConstraint(one_of("method", PAYOUT_LINK_METHODS), name="method_known"),
        Index("ix_bank_payout_links_org", "org_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    settlement_payout_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("settlement_payouts.id"), nullable=False
    )
    bank_entry_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("bank_entries.id"), nullable=False
    )
    method: Mapped[str] = mapped_column(String(16), nullable=False)
    linked_at: Mapped[datetime] = stamped_now()


class BankPayoutSuggestion(Base):
    """An entry that could be a payout's, but not for certain (several candidates): shown,
    never linked. Rewritten by every matching pass."""

    __tablename__ = "bank_payout_suggestions"
    __table_args__ = (
        CheckConstraint(one_of("method", PAYOUT_LINK_METHODS[:2]), name="method_known"),
        Index("ix_bank_payout_suggestions_entry", "bank_entry_id"),
        Index("ix_bank_payout_suggestions_org", "org_id"),
    )

    settlement_payout_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("settlement_payouts.id"), primary_key=True
    )
    bank_entry_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("bank_entries.id"), primary_key=True
    )
    org_id: Mapped[uuid.UUID] = org_fk()
    method: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = stamped_now()


class BankPayoutLinkLogEntry(Base):
    """Append-only trail of payout ↔ entry links (a trigger refuses UPDATE and DELETE):
    who linked or unlinked which pair, how, and why."""

    __tablename__ = "bank_payout_link_log"
    __table_args__ = (
        CheckConstraint(one_of("action", PAYOUT_LINK_ACTIONS), name="action_known"),
        CheckConstraint(one_of("method", PAYOUT_LINK_METHODS), name="method_known"),
        Index("ix_bank_payout_link_log_payout", "settlement_payout_id", "created_at"),
        Index("ix_bank_payout_link_log_entry", "bank_entry_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    settlement_payout_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("settlement_payouts.id"), nullable=False
    )
    bank_entry_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("bank_entries.id"), nullable=False
    )
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    method: Mapped[str] = mapped_column(String(16), nullable=False)
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    actor_name: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    )
