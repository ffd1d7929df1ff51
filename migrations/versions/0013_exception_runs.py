"""period runs record exceptions and a fingerprint of the matched set

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 08:00:00.000000

A period run writes ``reconciliation_items`` only for exceptions (docs/design.md,
"Period runs"); the pairs it found clean are counted, and the run stores a fingerprint
of its matched set: ``reconciliation_runs.matched_pairs`` (how many (payment, record)
bindings its period's payments had) and ``matched_digest`` (an order-independent digest
of those pairs, 16 hex digits), which ``recon run verify`` recomputes. Runs from before
have neither (null).

Two partial indexes hold the incremental path's exceptions only — items with no run
whose outcome is not ``matched``, by payment and by record — so that a run finds the
clean pairs whose verdict changed since that path judged them without reading every
item; a third holds the runs' items by (run_id, id), for ``GET
/billing/reconciliation/runs/<id>/items`` a page at a time (small too, now that a run
writes its exceptions only). All three are built CONCURRENTLY, outside the migration's
transaction: writes to the items table go on while they build. Each build reads the
whole items table (twice, as CONCURRENTLY does), which older runs filled with one row per
payment: long on a large table, but it blocks no writer (not measured here). Adding the two
nullable columns takes an ACCESS EXCLUSIVE lock on ``reconciliation_runs`` for an
instant (no table rewrite).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNS = "reconciliation_runs"
ITEMS = "reconciliation_items"
INCREMENTAL_EXCEPTIONS = {
    "ix_reconciliation_items_incremental_payment_exceptions": (
        ["payment_id", "id"],
        "run_id IS NULL AND outcome <> 'matched'",
    ),
    "ix_reconciliation_items_incremental_record_exceptions": (
        ["provider_record_id", "id"],
        "run_id IS NULL AND payment_id IS NULL",
    ),
    "ix_reconciliation_items_run_pages": (["run_id", "id"], "run_id IS NOT NULL"),
}


def upgrade() -> None:
    op.add_column(RUNS, sa.Column("matched_pairs", sa.BigInteger(), nullable=True))
    op.add_column(RUNS, sa.Column("matched_digest", sa.String(length=16), nullable=True))
    with op.get_context().autocommit_block():
        for name, (columns, where) in INCREMENTAL_EXCEPTIONS.items():
            op.create_index(
                name,
                ITEMS,
                columns,
                postgresql_where=sa.text(where),
                postgresql_concurrently=True,
                if_not_exists=True,
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in INCREMENTAL_EXCEPTIONS:
            op.drop_index(name, table_name=ITEMS, postgresql_concurrently=True, if_exists=True)
    op.drop_column(RUNS, "matched_digest")
    op.drop_column(RUNS, "matched_pairs")
