"""reconciliation items written cheaply by period runs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:10:00.000000

``reconciliation_items`` is the one table a period run writes a row to for every payment
of the period: its four foreign-key checks (organisation, run, payment, provider record)
took 34 of the 41 seconds of inserting 688,631 items, because each check is a query that
also takes a KEY SHARE lock on the referenced row — on every payment and record the run
checks (docs/decisions.md, "Items without foreign keys"). The columns and their indexes
stay; the rows they name are never deleted, and items are written only by the matching
code from rows it read in the same transaction.

The index on ``run_id`` becomes a BRIN index: a run's items are written together, so a
block range holds one run's items (and the incremental path's, whose ``run_id`` is
null), and finding a run's items stays cheap; the B-tree cost 2.2 s of those inserts
for a key that is the same on every row of the statement.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "reconciliation_items"
# (constraint, column, referenced table, ON DELETE)
FOREIGN_KEYS = (
    ("fk_reconciliation_items_org_id_organizations", "org_id", "organizations", "RESTRICT"),
    ("fk_reconciliation_items_run_id_reconciliation_runs", "run_id", "reconciliation_runs", None),
    ("fk_reconciliation_items_payment_id_payments", "payment_id", "payments", None),
    (
        "fk_reconciliation_items_provider_record_id_provider_records",
        "provider_record_id",
        "provider_records",
        None,
    ),
)


RUN_INDEX = "ix_reconciliation_items_run_id"


def upgrade() -> None:
    for name, _, _, _ in FOREIGN_KEYS:
        op.drop_constraint(name, TABLE, type_="foreignkey")
    op.drop_index(RUN_INDEX, table_name=TABLE)
    op.create_index(RUN_INDEX, TABLE, ["run_id"], postgresql_using="brin")


def downgrade() -> None:
    op.drop_index(RUN_INDEX, table_name=TABLE)
    op.create_index(RUN_INDEX, TABLE, ["run_id"])
    for name, column, referred, ondelete in FOREIGN_KEYS:
        op.create_foreign_key(name, TABLE, referred, [column], ["id"], ondelete=ondelete)
