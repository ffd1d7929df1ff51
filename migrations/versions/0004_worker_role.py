"""worker database role

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 22:30:00.000000

The worker and beat connect as ``recon_worker``, which may read the internal payments
but never write them: ledger safety is enforced by PostgreSQL, not only by the code.
Its privileges are exactly what matching, period runs, the sweeps and the schedule
issue (docs/decisions.md, "The worker's database role"). The role is created without a
password; operators set one (``ALTER ROLE recon_worker PASSWORD '…'``; compose's
PostgreSQL does it on first start from RECON_WORKER_PASSWORD).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORKER_ROLE = "recon_worker"

# Roles belong to the cluster, not the database: another database of the cluster (the
# test suite migrates several at once) may have created it, or be creating it right now.
CREATE_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{WORKER_ROLE}') THEN
        CREATE ROLE {WORKER_ROLE} LOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- created concurrently by another database's migration
END
$$
"""

# table: privileges. Nothing on api_keys; payments, organisations and provider accounts
# are read-only; provider events may only have their processing state written; the
# action log and the match items are append-only.
GRANTS: dict[str, str] = {
    "organizations": "SELECT",
    "provider_accounts": "SELECT",
    "payments": "SELECT",
    "provider_events": (
        "SELECT, UPDATE (state, attempts, last_error, ignored_reason, processed_at)"
    ),
    "provider_records": "SELECT, INSERT, UPDATE",
    "reconciliation_runs": "SELECT, INSERT, UPDATE",
    "reconciliation_items": "SELECT, INSERT",
    "reconciliation_discrepancies": "SELECT, INSERT, UPDATE",
    "reconciliation_action_logs": "SELECT, INSERT",
}


def upgrade() -> None:
    op.execute(CREATE_ROLE)
    op.execute(f"GRANT USAGE ON SCHEMA public TO {WORKER_ROLE}")
    for table, privileges in GRANTS.items():
        op.execute(f"GRANT {privileges} ON {table} TO {WORKER_ROLE}")


def downgrade() -> None:
    # The role stays: it is cluster-wide, and other databases of the cluster may still
    # grant it privileges. Dropping it is the operator's call (DROP ROLE recon_worker).
    for table in GRANTS:
        op.execute(f"REVOKE ALL ON {table} FROM {WORKER_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {WORKER_ROLE}")
