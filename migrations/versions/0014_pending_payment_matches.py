"""pending payment matches

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 08:30:00.000000

Imported payments are matched in batches (issue 17): the import writes one row per
created or changed payment into ``pending_payment_matches`` in its own transaction, and
the worker claims them in batches and deletes the ones it matched, so a payment whose
wake-up message was lost, or whose matching failed, is found again by the sweep
(docs/design.md, "Imported payments"). A new, empty table: nothing else is locked.
The worker may read, delete and write back rows (a failed payment's, with its reason).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORKER_ROLE = "recon_worker"
TABLE = "pending_payment_matches"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.UUID(), server_default=sa.text("recon_uuid7()"), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("payment_id", sa.UUID(), nullable=False),
        sa.Column(
            "queued_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "retry_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f(f"fk_{TABLE}_org_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TABLE}")),
    )
    op.create_index(
        "ix_pending_payment_matches_claimable",
        TABLE,
        ["retry_at", "id"],
        postgresql_where=sa.text("failed_at IS NULL"),
    )
    # A batch deletes the rows it claims and writes back those whose payment failed; its
    # claim (FOR UPDATE) needs an UPDATE privilege: the retry bookkeeping only.
    op.execute(
        f"GRANT SELECT, INSERT, DELETE, UPDATE (attempts, last_error, retry_at, failed_at) "
        f"ON {TABLE} TO {WORKER_ROLE}"
    )


def downgrade() -> None:
    op.drop_table(TABLE)
