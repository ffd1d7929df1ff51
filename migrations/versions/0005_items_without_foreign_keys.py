"""reconciliation items without foreign keys

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


def upgrade() -> None:
    for name, _, _, _ in FOREIGN_KEYS:
        op.drop_constraint(name, TABLE, type_="foreignkey")


def downgrade() -> None:
    for name, column, referred, ondelete in FOREIGN_KEYS:
        op.create_foreign_key(name, TABLE, referred, [column], ["id"], ondelete=ondelete)
