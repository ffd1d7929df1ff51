"""discrepancies of the cash chain

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-11 08:00:00.000000

Discrepancies found on settlement files and bank statements (docs/design.md, "Cash
discrepancies"):

- ``reconciliation_discrepancies`` gets four subjects beside the payment and the provider
  record: ``settlement_line_id``, ``settlement_payout_id``, ``bank_statement_id`` and
  ``bank_entry_id`` (foreign keys, each indexed), and eight types: PayoutMismatch,
  SettlementAmountMismatch, UnsettledPayment, FeeMismatch, StatementBalanceMismatch,
  PayoutNotReceived, DepositAmountMismatch, UnexpectedDeposit.
- A discrepancy needs at least one subject, and "one unresolved discrepancy per type and
  subjects" now counts all six (nulls equal), so two payouts can each have their own
  PayoutMismatch.

The unique index is rebuilt in this transaction: writes to the table wait meanwhile.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "reconciliation_discrepancies"
ONE_UNRESOLVED = "uq_reconciliation_discrepancies_one_unresolved"
OLD_TYPES = (
    "MissingInternalRecord",
    "MissingProviderRecord",
    "AmountMismatch",
    "CurrencyMismatch",
    "StatusMismatch",
    "DuplicateChargeSuspected",
    "DisputeOpened",
)
CASH_TYPES = (
    "PayoutMismatch",
    "SettlementAmountMismatch",
    "UnsettledPayment",
    "FeeMismatch",
    "StatementBalanceMismatch",
    "PayoutNotReceived",
    "DepositAmountMismatch",
    "UnexpectedDeposit",
)
OLD_SUBJECTS = ("payment_id", "provider_record_id")
# Each cash subject and the table it refers to.
CASH_SUBJECTS = {
    "settlement_line_id": "settlement_lines",
    "settlement_payout_id": "settlement_payouts",
    "bank_statement_id": "bank_statements",
    "bank_entry_id": "bank_entries",
}


def _one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _replace_check(name: str, condition: str) -> None:
    op.drop_constraint(op.f(f"ck_{TABLE}_{name}"), TABLE, type_="check")
    op.create_check_constraint(op.f(f"ck_{TABLE}_{name}"), TABLE, condition)


def _subject_rules(subjects: Sequence[str]) -> None:
    """At least one subject; one unresolved discrepancy per type and subjects."""
    _replace_check("has_subject", " OR ".join(f"{subject} IS NOT NULL" for subject in subjects))
    op.drop_index(ONE_UNRESOLVED, table_name=TABLE)
    op.create_index(
        ONE_UNRESOLVED,
        TABLE,
        ["org_id", "type", *subjects],
        unique=True,
        postgresql_where=sa.text("status <> 'resolved'"),
        postgresql_nulls_not_distinct=True,
    )


def upgrade() -> None:
    for column, target in CASH_SUBJECTS.items():
        op.add_column(TABLE, sa.Column(column, sa.UUID(), nullable=True))
        op.create_foreign_key(
            op.f(f"fk_{TABLE}_{column}_{target}"), TABLE, target, [column], ["id"]
        )
        op.create_index(op.f(f"ix_{TABLE}_{column}"), TABLE, [column])
    _replace_check("type_known", _one_of("type", (*OLD_TYPES, *CASH_TYPES)))
    _subject_rules((*OLD_SUBJECTS, *CASH_SUBJECTS))


def downgrade() -> None:
    # With cash discrepancies recorded, the narrower checks refuse the rows and the
    # downgrade stops, changing nothing.
    _subject_rules(OLD_SUBJECTS)
    _replace_check("type_known", _one_of("type", OLD_TYPES))
    for column, target in CASH_SUBJECTS.items():
        op.drop_index(op.f(f"ix_{TABLE}_{column}"), table_name=TABLE)
        op.drop_constraint(op.f(f"fk_{TABLE}_{column}_{target}"), TABLE, type_="foreignkey")
        op.drop_column(TABLE, column)
