"""settlement matching: lines linked to records and payments, payouts from webhooks

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 08:20:00.000000

- ``settlement_lines`` gets ``provider_record_id`` and ``payment_id``: what the line was
  linked to (shared/settlements/matching.py). No foreign keys, as on
  ``provider_records.payment_id`` (migration 0007): the links are written in bulk. An
  index on ``payment_id`` answers "which lines cover this payment" (UnsettledPayment, the
  report) and one on ``(org_id, booked_at)`` finds a period's lines.
- ``settlement_payouts.file_id`` becomes nullable (a Stripe ``payout.*`` webhook can state
  a payout before any file) and ``status_at`` says when its status was stated, so an
  older statement never overwrites a newer one.
- ``organizations.settlement_delay_days``: the expected settlement delay per provider in
  business days (``{}``: 3 for each).
- ``provider_accounts.fee_schedule``: the fees the account's provider is expected to take
  per settlement currency (percent of the gross, fixed part, tolerance); null: no
  FeeMismatch for its lines.
- The worker, which links lines and records payouts, may write those columns and rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORKER_ROLE = "recon_worker"
LINES = "settlement_lines"
PAYOUTS = "settlement_payouts"


def upgrade() -> None:
    op.add_column(LINES, sa.Column("provider_record_id", sa.UUID(), nullable=True))
    op.add_column(LINES, sa.Column("payment_id", sa.UUID(), nullable=True))
    op.create_index("ix_settlement_lines_payment", LINES, ["payment_id"])
    op.create_index("ix_settlement_lines_org_booked", LINES, ["org_id", "booked_at"])
    op.alter_column(PAYOUTS, "file_id", existing_type=sa.UUID(), nullable=True)
    op.add_column(PAYOUTS, sa.Column("status_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "organizations",
        sa.Column(
            "settlement_delay_days",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
    )
    op.add_column(
        "provider_accounts",
        sa.Column("fee_schedule", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.execute(f"GRANT UPDATE (provider_record_id, payment_id) ON {LINES} TO {WORKER_ROLE}")
    op.execute(f"GRANT INSERT, UPDATE ON {PAYOUTS} TO {WORKER_ROLE}")


def downgrade() -> None:
    op.execute(f"REVOKE INSERT, UPDATE ON {PAYOUTS} FROM {WORKER_ROLE}")
    op.execute(f"REVOKE UPDATE (provider_record_id, payment_id) ON {LINES} FROM {WORKER_ROLE}")
    op.drop_column("provider_accounts", "fee_schedule")
    op.drop_column("organizations", "settlement_delay_days")
    op.drop_column(PAYOUTS, "status_at")
    # Payouts stated only by webhooks have no file: the downgrade stops, changing nothing.
    op.alter_column(PAYOUTS, "file_id", existing_type=sa.UUID(), nullable=False)
    op.drop_index("ix_settlement_lines_org_booked", table_name=LINES)
    op.drop_index("ix_settlement_lines_payment", table_name=LINES)
    op.drop_column(LINES, "payment_id")
    op.drop_column(LINES, "provider_record_id")
