"""the provider a discrepancy is about, for the queue's provider filter

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-15 08:00:00.000000

``reconciliation_discrepancies.provider`` (nullable; one of stripe, adyen, standard,
paypal) names whom a discrepancy is about, so the triage list and the console's queue
filter by it (docs/design.md, "Data model"). The rule that derives it from the
discrepancy's subjects is the SQL function ``recon_discrepancy_provider`` made here:
every statement that opens discrepancies calls it (``shared.models.discrepancy_provider``),
and the backfill below does too. Its order: the settlement line's provider, the
payout's, the provider record's, the payment's; else, for a bank entry or statement, the
provider of its bank account when the account lists exactly one; else null.

Without a long lock on a populated table:

1. in the migration's transaction, the function, the nullable column (no default: no
   rewrite) and its check ``NOT VALID`` — an ACCESS EXCLUSIVE lock for an instant;
2. outside it (autocommit), the backfill in batches of ``BATCH`` rows by id, each its own
   short transaction, so writers wait at most for one batch's rows; then the check is
   validated (SHARE UPDATE EXCLUSIVE: reads and writes go on);
3. both triage list indexes gain ``provider`` as a filter key: each is built anew
   CONCURRENTLY under a temporary name, the old one dropped CONCURRENTLY and the new one
   renamed (also SHARE UPDATE EXCLUSIVE).

Rows an older process opens while it runs are filled by a later batch (ids grow with
time) or, after the last batch, stay null until opened again. Interrupted (the first part
committed, the version not yet written), it runs again from the start: each step finds
what is done (the batches skip rows already filled). Measured on 1,000,000
discrepancies: docs/design.md, "Data model".

(Chained after 0019, the settlement importer.)
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DISCREPANCIES = "reconciliation_discrepancies"
CHECK = "ck_reconciliation_discrepancies_provider_known"
PROVIDERS = ("stripe", "adyen", "standard", "paypal")
BATCH = 2_000
OLD_FILTERS = ["status", "type", "severity", "currency", "assignee", "run_id", "dispute_status"]
LIST_INDEXES = {
    "ix_reconciliation_discrepancies_list_by_opened": ("opened_at", "amount_minor"),
    "ix_reconciliation_discrepancies_list_by_amount": ("amount_minor", "opened_at"),
}
SUBJECTS = (
    "payment_id",
    "provider_record_id",
    "settlement_line_id",
    "settlement_payout_id",
    "bank_statement_id",
    "bank_entry_id",
)
# Plain SQL, STABLE: the planner may not inline it (it holds subqueries), but PostgreSQL
# plans its body once per calling statement; a NULL subject's lookup finds nothing at once.
CREATE_FUNCTION = """
CREATE OR REPLACE FUNCTION recon_discrepancy_provider(
  payment uuid, provider_record uuid, settlement_line uuid, settlement_payout uuid,
  bank_statement uuid, bank_entry uuid
) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT coalesce(
  (SELECT provider FROM settlement_lines WHERE id = settlement_line),
  (SELECT provider FROM settlement_payouts WHERE id = settlement_payout),
  (SELECT provider FROM provider_records WHERE id = provider_record),
  (SELECT provider FROM payments WHERE id = payment),
  (SELECT a.providers[1] FROM bank_entries AS e JOIN bank_accounts AS a ON a.id = e.account_id
   WHERE e.id = bank_entry AND cardinality(a.providers) = 1),
  (SELECT a.providers[1] FROM bank_statements AS s
   JOIN bank_accounts AS a ON a.id = s.account_id
   WHERE s.id = bank_statement AND cardinality(a.providers) = 1)
)
$$
"""
BACKFILL_BATCH = text(f"""
WITH batch AS (
  SELECT id FROM {DISCREPANCIES} WHERE id > :after ORDER BY id LIMIT {BATCH}
), filled AS (
  UPDATE {DISCREPANCIES} AS d
  SET provider = recon_discrepancy_provider({", ".join(f"d.{s}" for s in SUBJECTS)})
  FROM batch WHERE d.id = batch.id AND d.provider IS NULL
)
SELECT id FROM batch ORDER BY id DESC LIMIT 1
""")  # noqa: S608 - constant names


def _backfill() -> None:
    connection = op.get_bind()
    after = "00000000-0000-0000-0000-000000000000"
    while (last := connection.execute(BACKFILL_BATCH, {"after": after}).scalar()) is not None:
        after = last


def _rebuild_list_indexes(filters: list[str]) -> None:
    """Each list index with ``filters`` as its filter keys, built beside the old one and
    swapped in: no lock that stops writes."""
    for name, (sort, last) in LIST_INDEXES.items():
        building = f"{name}_0020"
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {building}")  # a failed earlier build
        columns = ", ".join(["org_id", sort, "id", *filters, last])
        op.execute(f"CREATE INDEX CONCURRENTLY {building} ON {DISCREPANCIES} ({columns})")
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        op.execute(f"ALTER INDEX {building} RENAME TO {name}")


def upgrade() -> None:
    # Each step may find itself done: an interrupted upgrade committed its first part.
    op.execute(CREATE_FUNCTION)
    op.execute(f"ALTER TABLE {DISCREPANCIES} ADD COLUMN IF NOT EXISTS provider varchar(16)")
    known = ", ".join(f"'{provider}'" for provider in PROVIDERS)
    op.execute(f"ALTER TABLE {DISCREPANCIES} DROP CONSTRAINT IF EXISTS {CHECK}")
    op.execute(
        f"ALTER TABLE {DISCREPANCIES} ADD CONSTRAINT {CHECK} "
        f"CHECK (provider IS NULL OR provider IN ({known})) NOT VALID"
    )
    with op.get_context().autocommit_block():
        _backfill()
        op.execute(f"ALTER TABLE {DISCREPANCIES} VALIDATE CONSTRAINT {CHECK}")
        _rebuild_list_indexes([*OLD_FILTERS, "provider"])


def downgrade() -> None:
    with op.get_context().autocommit_block():
        _rebuild_list_indexes(OLD_FILTERS)
    op.execute(f"ALTER TABLE {DISCREPANCIES} DROP COLUMN provider")
    op.execute("DROP FUNCTION recon_discrepancy_provider(uuid, uuid, uuid, uuid, uuid, uuid)")
