"""disputes as discrepancies

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09 10:00:00.000000

A provider's dispute or chargeback becomes a ``DisputeOpened`` discrepancy (docs/design.md,
"Disputes"):

- ``provider_records`` keeps the newest dispute event's reason, the provider's own status
  text and the evidence due date; ``dispute_status`` now holds the normalised status
  (open, under_review, won, lost). Existing rows keep their provider text in
  ``dispute_provider_status`` and get the normalised status from it.
- ``reconciliation_discrepancies`` gets the same four dispute columns, the type
  ``DisputeOpened`` and, in both triage list indexes, ``dispute_status`` as a filter key.
- The action log accepts ``dispute_updated``.

The list indexes are rebuilt in this transaction: writes to the table wait meanwhile
(about 10 s each at 1,000,000 discrepancies, migration 0003).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECORDS = "provider_records"
DISCREPANCIES = "reconciliation_discrepancies"
LOGS = "reconciliation_action_logs"
DISPUTE_STATUSES = ("open", "under_review", "won", "lost")
OLD_TYPES = (
    "MissingInternalRecord",
    "MissingProviderRecord",
    "AmountMismatch",
    "CurrencyMismatch",
    "StatusMismatch",
    "DuplicateChargeSuspected",
)
OLD_ACTIONS = (
    "opened",
    "acknowledged",
    "assigned",
    "note_added",
    "resolved",
    "auto_resolved",
    "reopened_as_new",
)
OLD_FILTERS = ["status", "type", "severity", "currency", "assignee", "run_id"]
LIST_INDEXES = {
    "ix_reconciliation_discrepancies_list_by_opened": ("opened_at", "amount_minor"),
    "ix_reconciliation_discrepancies_list_by_amount": ("amount_minor", "opened_at"),
}
# The provider statuses stored before 0009 (Stripe's dispute statuses, Adyen's
# "chargeback"), normalised as the providers' mappings now do.
BACKFILL = """
UPDATE provider_records SET dispute_provider_status = dispute_status,
  dispute_status = CASE
    WHEN dispute_status IN ('warning_under_review', 'under_review') THEN 'under_review'
    WHEN dispute_status IN ('won', 'warning_closed', 'prevented') THEN 'won'
    WHEN dispute_status = 'lost' THEN 'lost'
    ELSE 'open' END
WHERE dispute_status IS NOT NULL
"""
UNDO_BACKFILL = (
    "UPDATE provider_records SET dispute_status = dispute_provider_status "
    "WHERE dispute_status IS NOT NULL"
)


def _one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _dispute_columns(table: str) -> None:
    op.add_column(table, sa.Column("dispute_reason", sa.Text(), nullable=True))
    op.add_column(table, sa.Column("dispute_provider_status", sa.Text(), nullable=True))
    op.add_column(
        table, sa.Column("dispute_evidence_due_at", sa.DateTime(timezone=True), nullable=True)
    )


def _replace_check(table: str, name: str, condition: str) -> None:
    op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
    op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, condition)


def _list_indexes(filters: list[str]) -> None:
    for name, (sort, last) in LIST_INDEXES.items():
        op.drop_index(name, table_name=DISCREPANCIES)
        op.create_index(name, DISCREPANCIES, ["org_id", sort, "id", *filters, last])


def upgrade() -> None:
    _dispute_columns(RECORDS)
    op.execute(BACKFILL)
    dispute_known = f"dispute_status IS NULL OR {_one_of('dispute_status', DISPUTE_STATUSES)}"
    op.create_check_constraint(op.f(f"ck_{RECORDS}_dispute_status_known"), RECORDS, dispute_known)
    op.add_column(DISCREPANCIES, sa.Column("dispute_status", sa.String(16), nullable=True))
    _dispute_columns(DISCREPANCIES)
    op.create_check_constraint(
        op.f(f"ck_{DISCREPANCIES}_dispute_status_known"), DISCREPANCIES, dispute_known
    )
    _replace_check(DISCREPANCIES, "type_known", _one_of("type", (*OLD_TYPES, "DisputeOpened")))
    _replace_check(LOGS, "action_known", _one_of("action", (*OLD_ACTIONS, "dispute_updated")))
    _list_indexes([*OLD_FILTERS, "dispute_status"])


def downgrade() -> None:
    # The action log is append-only: with disputes recorded, the narrower checks refuse
    # the rows and the downgrade stops, changing nothing.
    _replace_check(LOGS, "action_known", _one_of("action", OLD_ACTIONS))
    _list_indexes(OLD_FILTERS)
    _replace_check(DISCREPANCIES, "type_known", _one_of("type", OLD_TYPES))
    op.drop_constraint(op.f(f"ck_{DISCREPANCIES}_dispute_status_known"), DISCREPANCIES)
    for column in (
        "dispute_status",
        "dispute_reason",
        "dispute_provider_status",
        "dispute_evidence_due_at",
    ):
        op.drop_column(DISCREPANCIES, column)
    op.drop_constraint(op.f(f"ck_{RECORDS}_dispute_status_known"), RECORDS)
    op.execute(UNDO_BACKFILL)
    for column in ("dispute_reason", "dispute_provider_status", "dispute_evidence_due_at"):
        op.drop_column(RECORDS, column)
