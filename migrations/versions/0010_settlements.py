"""settlement reports: files (with their original bytes), payouts and lines

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 06:20:00.000000

``settlement_files`` holds one row per uploaded report (unique per organisation and
SHA-256, so the same bytes import once) and ``settlement_file_chunks`` its original
bytes in pieces of up to 1 MiB, written and read one piece at a time so a 200 MB file
never sits in memory (docs/decisions.md, "Settlement originals in chunks").
``settlement_payouts`` is unique per (organisation, provider, payout id, currency) and
``settlement_lines`` per (organisation, line key): the same payout or row in another file
adds nothing. The worker role may read them (the settlement matching to come), not write.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORKER_ROLE = "recon_worker"
TABLES = ("settlement_files", "settlement_file_chunks", "settlement_payouts", "settlement_lines")
PROVIDER_KNOWN = "provider IN ('adyen', 'stripe', 'paypal')"
LINE_TYPES = (
    "capture", "refund", "refund_reversal", "chargeback", "chargeback_reversal", "fee",
    "adjustment", "payout", "balance_transfer", "deposit_correction", "invoice_deduction",
    "currency_conversion", "other",
)  # fmt: skip
PAYOUT_STATUSES = ("pending", "in_transit", "paid", "failed", "canceled")


def _one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _id() -> sa.Column:
    return sa.Column(
        "id", sa.UUID(), server_default=sa.text("recon_uuid7()"), nullable=False, primary_key=True
    )


def _org() -> sa.Column:
    return sa.Column(
        "org_id",
        sa.UUID(),
        sa.ForeignKey(
            "organizations.id",
            ondelete="RESTRICT",
            name=None,
        ),
        nullable=False,
    )


def _file() -> sa.Column:
    return sa.Column("file_id", sa.UUID(), sa.ForeignKey("settlement_files.id"), nullable=False)


def _minor(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def upgrade() -> None:
    now = sa.text("now()")
    op.create_table(
        "settlement_files",
        _id(),
        _org(),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("provider_account_id", sa.UUID(), sa.ForeignKey("provider_accounts.id")),
        sa.Column("layout", sa.String(48), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column(
            "summary",
            postgresql.JSONB(),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("imported_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.UniqueConstraint("org_id", "sha256"),
        sa.CheckConstraint(PROVIDER_KNOWN, name="known_settlement_provider"),
        sa.CheckConstraint("size_bytes >= 0", name="size_non_negative"),
    )
    op.create_index(
        "ix_settlement_files_org_imported", "settlement_files", ["org_id", "imported_at", "id"]
    )
    op.create_table(
        "settlement_file_chunks",
        sa.Column("file_id", sa.UUID(), sa.ForeignKey("settlement_files.id"), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("position >= 0", name="position_non_negative"),
    )
    op.create_table(
        "settlement_payouts",
        _id(),
        _org(),
        _file(),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("payout_id", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        _minor("amount_minor"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("arrival_date", sa.Date()),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.UniqueConstraint("org_id", "provider", "payout_id", "currency"),
        sa.CheckConstraint(PROVIDER_KNOWN, name="known_settlement_provider"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso"),
        sa.CheckConstraint(_one_of("status", PAYOUT_STATUSES), name="status_known"),
        sa.CheckConstraint("amount_minor >= 0", name="amount_non_negative"),
    )
    op.create_index(
        "ix_settlement_payouts_org_booked", "settlement_payouts", ["org_id", "booked_at", "id"]
    )
    op.create_table(
        "settlement_lines",
        _id(),
        _org(),
        _file(),
        sa.Column("line_key", sa.String(64), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("batch_id", sa.Text()),
        sa.Column("line_type", sa.String(24), nullable=False),
        sa.Column("provider_type", sa.Text(), nullable=False),
        sa.Column("provider_reference", sa.Text()),
        sa.Column("line_reference", sa.Text()),
        sa.Column("merchant_reference", sa.Text()),
        sa.Column("payment_intent_id", sa.Text()),
        _minor("gross_minor", nullable=True),
        sa.Column("gross_currency", sa.String(3)),
        _minor("commission_minor"),
        _minor("markup_minor"),
        _minor("scheme_fee_minor"),
        _minor("interchange_minor"),
        _minor("processing_minor"),
        _minor("other_fee_minor"),
        _minor("net_minor"),
        sa.Column("net_currency", sa.String(3), nullable=False),
        sa.Column("exchange_rate", sa.Numeric()),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("description", sa.Text()),
        sa.UniqueConstraint("org_id", "line_key"),
        sa.CheckConstraint(PROVIDER_KNOWN, name="known_settlement_provider"),
        sa.CheckConstraint(_one_of("line_type", LINE_TYPES), name="line_type_known"),
        sa.CheckConstraint("net_currency ~ '^[A-Z]{3}$'", name="net_currency_iso"),
        sa.CheckConstraint(
            "gross_currency IS NULL OR gross_currency ~ '^[A-Z]{3}$'", name="gross_currency_iso"
        ),
    )
    op.create_index(
        "ix_settlement_lines_batch",
        "settlement_lines",
        ["org_id", "provider", "batch_id", "net_currency"],
    )
    op.create_index("ix_settlement_lines_file", "settlement_lines", ["file_id"])
    for table in TABLES:
        op.execute(f"GRANT SELECT ON {table} TO {WORKER_ROLE}")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
