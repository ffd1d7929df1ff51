"""binding a provider record writes less

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 08:30:00.000000

Binding a record to its payment (``UPDATE provider_records SET payment_id …``) rewrites
the row and every index entry of it. Two of those costs go (docs/decisions.md,
"Cheaper bindings"):

- ``ix_provider_records_heuristic`` holds only unbound records (``WHERE payment_id IS
  NULL``): every query that reads it — the heuristic's candidates, on both paths — asks
  for unbound records only. A bound record leaves it, instead of taking a new entry.
- The foreign key from ``provider_records.payment_id`` to ``payments`` is dropped. Its
  check is a query that takes a KEY SHARE lock on the payment — a write to billing's row
  — and holds it until the binding transaction commits, so a period run locked every
  payment it bound a record to. Bindings are written only by the matching code, from
  payments it read in the same transaction, and payments are never deleted.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "provider_records"
HEURISTIC_INDEX = "ix_provider_records_heuristic"
HEURISTIC_COLUMNS = ["org_id", "provider", "currency", "amount_minor", "occurred_at"]
PAYMENT_KEY = "fk_provider_records_payment_id_payments"


def upgrade() -> None:
    op.drop_constraint(PAYMENT_KEY, TABLE, type_="foreignkey")
    op.drop_index(HEURISTIC_INDEX, table_name=TABLE)
    op.create_index(
        HEURISTIC_INDEX, TABLE, HEURISTIC_COLUMNS, postgresql_where="payment_id IS NULL"
    )


def downgrade() -> None:
    op.drop_index(HEURISTIC_INDEX, table_name=TABLE)
    op.create_index(HEURISTIC_INDEX, TABLE, HEURISTIC_COLUMNS)
    op.create_foreign_key(PAYMENT_KEY, TABLE, "payments", ["payment_id"], ["id"])
