"""payouts linked to bank entries

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-12 08:00:00.000000

Payouts matched to the bank entries that carried them (docs/design.md, "Bank
statements", "Payouts and bank entries"):

- ``bank_payout_links``: one row per payout received, the entry that carried it (each
  payout and each entry at most once), how it was found (``reference``, ``amount``,
  ``manual``).
- ``bank_payout_suggestions``: candidate entries of a payout that could not be linked
  for certain (several candidates); rewritten by each matching pass.
- ``bank_payout_link_log``: append-only trail of links and unlinks (actor, method,
  reason), guarded by the action log's trigger function.
- ``settlement_payouts.amount_minor`` becomes signed: a negative payout is a debit the
  provider draws from the bank account (the non-negative check is dropped).
- ``bank_accounts.version`` (≥ 1): bumped by each settings change, for ``If-Match``.
- ``provider_accounts.payout_arrival_business_days`` (0–30, default 2): how long after a
  payout's expected arrival it counts as not received.

The worker (``recon_worker``) may write links, suggestions and the log.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORKER_ROLE = "recon_worker"
NEW_ID = sa.text("recon_uuid7()")
METHODS = "method IN ('reference', 'amount', 'manual')"
APPEND_ONLY_TRIGGER = """
CREATE TRIGGER bank_payout_link_log_append_only
BEFORE UPDATE OR DELETE ON bank_payout_link_log
FOR EACH ROW EXECUTE FUNCTION reject_action_log_change()
"""
GRANTS = {
    "bank_payout_links": "SELECT, INSERT",
    "bank_payout_suggestions": "SELECT, INSERT, DELETE",
    "bank_payout_link_log": "SELECT, INSERT",
}


def _org(table: str) -> tuple[sa.Column, sa.ForeignKeyConstraint]:
    return (
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f(f"fk_{table}_org_id_organizations"),
            ondelete="RESTRICT",
        ),
    )


def _subjects(table: str, *, primary: bool = False) -> list:
    return [
        sa.Column("settlement_payout_id", sa.UUID(), nullable=False, primary_key=primary),
        sa.Column("bank_entry_id", sa.UUID(), nullable=False, primary_key=primary),
        sa.ForeignKeyConstraint(
            ["settlement_payout_id"],
            ["settlement_payouts.id"],
            name=op.f(f"fk_{table}_settlement_payout_id_settlement_payouts"),
        ),
        sa.ForeignKeyConstraint(
            ["bank_entry_id"],
            ["bank_entries.id"],
            name=op.f(f"fk_{table}_bank_entry_id_bank_entries"),
        ),
    ]


def _now() -> sa.Column:
    return sa.Column(
        "linked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.add_column(
        "bank_accounts",
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_bank_accounts_version_positive"), "bank_accounts", "version >= 1"
    )
    op.drop_constraint(
        op.f("ck_settlement_payouts_amount_non_negative"), "settlement_payouts", type_="check"
    )
    op.add_column(
        "provider_accounts",
        sa.Column(
            "payout_arrival_business_days",
            sa.SmallInteger(),
            server_default=sa.text("2"),
            nullable=False,
        ),
    )
    op.create_check_constraint(
        op.f("ck_provider_accounts_payout_arrival_days_range"),
        "provider_accounts",
        "payout_arrival_business_days BETWEEN 0 AND 30",
    )
    op.create_table(
        "bank_payout_links",
        sa.Column("id", sa.UUID(), server_default=NEW_ID, nullable=False),
        *_org("bank_payout_links"),
        *_subjects("bank_payout_links"),
        sa.Column("method", sa.String(length=16), nullable=False),
        _now(),
        sa.CheckConstraint(METHODS, name=op.f("ck_bank_payout_links_method_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_payout_links")),
        sa.UniqueConstraint(
            "settlement_payout_id", name=op.f("uq_bank_payout_links_settlement_payout_id")
        ),
        sa.UniqueConstraint("bank_entry_id", name=op.f("uq_bank_payout_links_bank_entry_id")),
    )
    op.create_index("ix_bank_payout_links_org", "bank_payout_links", ["org_id"])
    op.create_table(
        "bank_payout_suggestions",
        *_subjects("bank_payout_suggestions", primary=True),
        *_org("bank_payout_suggestions"),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "method IN ('reference', 'amount')",
            name=op.f("ck_bank_payout_suggestions_method_known"),
        ),
        sa.PrimaryKeyConstraint(
            "settlement_payout_id", "bank_entry_id", name=op.f("pk_bank_payout_suggestions")
        ),
    )
    op.create_index(
        "ix_bank_payout_suggestions_entry", "bank_payout_suggestions", ["bank_entry_id"]
    )
    op.create_index("ix_bank_payout_suggestions_org", "bank_payout_suggestions", ["org_id"])
    op.create_table(
        "bank_payout_link_log",
        sa.Column("id", sa.UUID(), server_default=NEW_ID, nullable=False),
        *_org("bank_payout_link_log"),
        *_subjects("bank_payout_link_log"),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("actor_name", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "action IN ('linked', 'unlinked')", name=op.f("ck_bank_payout_link_log_action_known")
        ),
        sa.CheckConstraint(METHODS, name=op.f("ck_bank_payout_link_log_method_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_payout_link_log")),
    )
    op.create_index(
        "ix_bank_payout_link_log_payout",
        "bank_payout_link_log",
        ["settlement_payout_id", "created_at"],
    )
    op.create_index("ix_bank_payout_link_log_entry", "bank_payout_link_log", ["bank_entry_id"])
    op.execute(APPEND_ONLY_TRIGGER)
    for table, privileges in GRANTS.items():
        op.execute(f"GRANT {privileges} ON {table} TO {WORKER_ROLE}")


def downgrade() -> None:
    op.execute("DROP TRIGGER bank_payout_link_log_append_only ON bank_payout_link_log")
    for table in reversed(GRANTS):
        op.drop_table(table)
    op.drop_constraint(
        op.f("ck_provider_accounts_payout_arrival_days_range"), "provider_accounts", type_="check"
    )
    op.drop_column("provider_accounts", "payout_arrival_business_days")
    op.create_check_constraint(
        op.f("ck_settlement_payouts_amount_non_negative"),
        "settlement_payouts",
        "amount_minor >= 0",
    )
    op.drop_constraint(op.f("ck_bank_accounts_version_positive"), "bank_accounts", type_="check")
    op.drop_column("bank_accounts", "version")
