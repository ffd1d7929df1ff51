"""organisation settings through the API, and the append-only settings log

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 09:00:00.000000

Finance changes an organisation's settings and its provider accounts through the API and
the CLI (docs/design.md, "Settings"). Three changes:

- ``organizations.amount_tolerance_percent``: a tolerance as a percentage of the
  payment's amount (0–100, four decimals); the rules use the larger of it and
  ``amount_tolerance_minor``.
- ``organizations.settings_version``: bumped by every change, sent as the ETag, so
  concurrent edits answer 412 instead of overwriting each other.
- ``settings_log``: one row per changed field, append-only like the action log. The
  one trigger function of migration 0001 now names the table it refuses, and guards
  both tables. No grant to ``recon_worker``: only the API and the CLI write it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The function of migration 0001, now naming whichever table it guards.
APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION reject_action_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""
# Migration 0001's text, restored on downgrade.
ACTION_LOG_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION reject_action_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'reconciliation_action_logs is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""
APPEND_ONLY_TRIGGER = """
CREATE TRIGGER settings_log_append_only
BEFORE UPDATE OR DELETE ON settings_log
FOR EACH ROW EXECUTE FUNCTION reject_action_log_change()
"""
UUID_TEXT = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SUBJECT_FORMAT = f"subject = 'organization' OR subject ~ '^provider_account:{UUID_TEXT}$'"


def upgrade() -> None:
    op.add_column(
        "organizations",
        sa.Column(
            "amount_tolerance_percent",
            sa.Numeric(precision=7, scale=4),
            server_default="0",
            nullable=False,
        ),
    )
    op.add_column(
        "organizations",
        sa.Column("settings_version", sa.Integer(), server_default="1", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_organizations_tolerance_percent_range"),
        "organizations",
        "amount_tolerance_percent BETWEEN 0 AND 100",
    )
    op.create_check_constraint(
        op.f("ck_organizations_settings_version_positive"),
        "organizations",
        "settings_version >= 1",
    )
    op.create_table(
        "settings_log",
        sa.Column("id", sa.UUID(), server_default=sa.text("recon_uuid7()"), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("actor_name", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("old_value", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("new_value", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.CheckConstraint(SUBJECT_FORMAT, name=op.f("ck_settings_log_subject_format")),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_settings_log_org_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settings_log")),
    )
    op.create_index("ix_settings_log_org_created", "settings_log", ["org_id", "created_at", "id"])
    op.execute(APPEND_ONLY_FUNCTION)
    op.execute(APPEND_ONLY_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER settings_log_append_only ON settings_log")
    op.execute(ACTION_LOG_ONLY_FUNCTION)
    op.drop_index("ix_settings_log_org_created", table_name="settings_log")
    op.drop_table("settings_log")
    op.drop_constraint(
        op.f("ck_organizations_settings_version_positive"), "organizations", type_="check"
    )
    op.drop_constraint(
        op.f("ck_organizations_tolerance_percent_range"), "organizations", type_="check"
    )
    op.drop_column("organizations", "settings_version")
    op.drop_column("organizations", "amount_tolerance_percent")
