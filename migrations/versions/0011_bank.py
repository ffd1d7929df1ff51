"""bank accounts, statements and entries

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10 09:00:00.000000

Imported bank statements (docs/design.md, "Bank statements"): ``bank_accounts`` (a masked
identifier and a digest of the full one, currency, country, the providers paying into
it, the CSV mapping last used), ``bank_statements`` (period, balances, whether they add
up, the file they came from) and ``bank_entries`` (signed minor units; unique per
account, entry digest and occurrence, so a re-import adds nothing). The worker may only
read them: matching payouts to entries comes later.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORKER_ROLE = "recon_worker"
TABLES = ("bank_accounts", "bank_statements", "bank_entries")
CURRENCY_ISO = "currency ~ '^[A-Z]{3}$'"
NEW_ID = sa.text("recon_uuid7()")


def _id() -> sa.Column:
    return sa.Column("id", sa.UUID(), server_default=NEW_ID, nullable=False)


def _org_id() -> sa.Column:
    return sa.Column("org_id", sa.UUID(), nullable=False)


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_org_id_organizations"),
        ondelete="RESTRICT",
    )


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"],
        ["bank_accounts.id"],
        name=op.f(f"fk_{table}_account_id_bank_accounts"),
        ondelete="RESTRICT",
    )


def upgrade() -> None:
    op.create_table(
        "bank_accounts",
        _id(),
        _org_id(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("masked_identifier", sa.Text(), nullable=False),
        sa.Column("identifier_digest", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column(
            "providers", postgresql.ARRAY(sa.String(16)), server_default="{}", nullable=False
        ),
        sa.Column("csv_mapping", postgresql.JSONB(none_as_null=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(CURRENCY_ISO, name=op.f("ck_bank_accounts_currency_iso")),
        sa.CheckConstraint(
            "country IS NULL OR country ~ '^[A-Z]{2}$'", name=op.f("ck_bank_accounts_country_iso")
        ),
        _org_fk("bank_accounts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_accounts")),
        sa.UniqueConstraint(
            "org_id",
            "identifier_digest",
            "currency",
            name=op.f("uq_bank_accounts_org_id_identifier_digest_currency"),
        ),
    )
    op.create_table(
        "bank_statements",
        _id(),
        _org_id(),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("statement_id", sa.Text(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=True),
        sa.Column("period_end", sa.Date(), nullable=True),
        sa.Column("opening_balance_minor", sa.BigInteger(), nullable=True),
        sa.Column("closing_balance_minor", sa.BigInteger(), nullable=True),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("entries_total_minor", sa.BigInteger(), nullable=False),
        sa.Column("balanced", sa.Boolean(), nullable=True),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column(
            "imported_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(CURRENCY_ISO, name=op.f("ck_bank_statements_currency_iso")),
        sa.CheckConstraint(
            "format IN ('camt053', 'mt940', 'bai2', 'csv')",
            name=op.f("ck_bank_statements_format_known"),
        ),
        sa.CheckConstraint(
            "entry_count >= 0", name=op.f("ck_bank_statements_entry_count_non_negative")
        ),
        _org_fk("bank_statements"),
        _account_fk("bank_statements"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_statements")),
    )
    op.create_index(
        "uq_bank_statements_account_statement_period",
        "bank_statements",
        ["account_id", "statement_id", "period_start", "period_end"],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )
    op.create_index("ix_bank_statements_org_file", "bank_statements", ["org_id", "file_sha256"])
    op.create_table(
        "bank_entries",
        _id(),
        _org_id(),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("bank_statement_id", sa.UUID(), nullable=False),
        sa.Column("booking_date", sa.Date(), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("counterparty_name", sa.Text(), nullable=True),
        sa.Column("counterparty_account", sa.Text(), nullable=True),
        sa.Column("remittance_text", sa.Text(), nullable=True),
        sa.Column("bank_reference", sa.Text(), nullable=True),
        sa.Column("end_to_end_id", sa.Text(), nullable=True),
        sa.Column(
            "transaction_codes",
            postgresql.JSONB(),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("reversal", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("entry_digest", sa.LargeBinary(32), nullable=False),
        sa.Column("occurrence", sa.Integer(), nullable=False),
        sa.CheckConstraint(CURRENCY_ISO, name=op.f("ck_bank_entries_currency_iso")),
        sa.CheckConstraint("occurrence >= 1", name=op.f("ck_bank_entries_occurrence_positive")),
        _org_fk("bank_entries"),
        _account_fk("bank_entries"),
        sa.ForeignKeyConstraint(
            ["bank_statement_id"],
            ["bank_statements.id"],
            name=op.f("fk_bank_entries_bank_statement_id_bank_statements"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_entries")),
        sa.UniqueConstraint(
            "account_id",
            "entry_digest",
            "occurrence",
            name=op.f("uq_bank_entries_account_id_entry_digest_occurrence"),
        ),
    )
    op.create_index("ix_bank_entries_org_booking", "bank_entries", ["org_id", "booking_date", "id"])
    op.create_index(
        "ix_bank_entries_account_booking", "bank_entries", ["account_id", "booking_date", "id"]
    )
    op.create_index("ix_bank_entries_statement", "bank_entries", ["bank_statement_id"])
    for table in TABLES:
        op.execute(f"GRANT SELECT ON {table} TO {WORKER_ROLE}")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
