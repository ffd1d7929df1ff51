"""triage indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 09:00:00.000000

One index per sort of the triage list, each carrying every filter column as a key column
(docs/decisions.md, "Triage"); they replace the (org, opened_at) and (org, status,
opened_at) indexes. Built in one transaction: at 1,000,000 discrepancies both take about
10 s, during which writes to the table wait.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "reconciliation_discrepancies"
FILTERS = ["status", "type", "severity", "currency", "assignee", "run_id"]


def upgrade() -> None:
    op.create_index(
        "ix_reconciliation_discrepancies_list_by_opened",
        TABLE,
        ["org_id", "opened_at", "id", *FILTERS, "amount_minor"],
        unique=False,
    )
    op.create_index(
        "ix_reconciliation_discrepancies_list_by_amount",
        TABLE,
        ["org_id", "amount_minor", "id", *FILTERS, "opened_at"],
        unique=False,
    )
    op.drop_index("ix_reconciliation_discrepancies_org_opened", table_name=TABLE)
    op.drop_index("ix_reconciliation_discrepancies_org_status", table_name=TABLE)


def downgrade() -> None:
    op.create_index(
        "ix_reconciliation_discrepancies_org_status",
        TABLE,
        ["org_id", "status", "opened_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_reconciliation_discrepancies_org_opened",
        TABLE,
        ["org_id", "opened_at", "id"],
        unique=False,
    )
    op.drop_index("ix_reconciliation_discrepancies_list_by_amount", table_name=TABLE)
    op.drop_index("ix_reconciliation_discrepancies_list_by_opened", table_name=TABLE)
