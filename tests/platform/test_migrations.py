"""The schema: Alembic is complete, reversible, and the action log is append-only."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from shared.access.settings_log import OPERATOR
from shared.models import (
    Base,
    Organization,
    Payment,
    ReconciliationActionLog,
    ReconciliationDiscrepancy,
    SettingsLogEntry,
    SettlementPayout,
)
from shared.platform import migrations
from shared.settlements.imports import import_settlement_file
from tests.platform.conftest import schema_differences
from tests.settlements.reading import FIXTURES as SETTLEMENT_FIXTURES
from tests.support.factories import make_org


def test_upgrade_head_on_an_empty_database_creates_every_table(scratch_database):
    url, engine = scratch_database
    migrations.upgrade(database_url=url)
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_autogenerate_finds_no_difference_between_models_and_migrations(scratch_database):
    url, engine = scratch_database
    migrations.upgrade(database_url=url)
    assert schema_differences(engine) == []


def test_downgrade_to_base_removes_everything_and_upgrade_works_again(scratch_database):
    url, engine = scratch_database
    migrations.upgrade(database_url=url)
    migrations.downgrade("base", database_url=url)
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    with engine.connect() as connection:
        functions = connection.scalar(
            text("SELECT count(*) FROM pg_proc WHERE proname = 'reject_action_log_change'")
        )
    assert functions == 0
    migrations.upgrade(database_url=url)
    assert schema_differences(engine) == []


def make_discrepancy(session: Session, **overrides) -> ReconciliationDiscrepancy:
    organization = Organization(name="Acme")
    session.add(organization)
    session.flush()
    payment = Payment(
        org_id=organization.id,
        external_id=f"inv-{uuid.uuid4()}",
        provider="stripe",
        amount_minor=1000,
        currency="EUR",
        status="succeeded",
        occurred_at=text("now()"),
    )
    session.add(payment)
    session.flush()
    values = {
        "org_id": organization.id,
        "type": "MissingProviderRecord",
        "severity": "medium",
        "payment_id": payment.id,
        "amount_minor": 1000,
        "currency": "EUR",
    } | overrides
    discrepancy = ReconciliationDiscrepancy(**values)
    session.add(discrepancy)
    session.flush()
    return discrepancy


def add_log(session: Session, discrepancy: ReconciliationDiscrepancy) -> ReconciliationActionLog:
    entry = ReconciliationActionLog(
        org_id=discrepancy.org_id,
        discrepancy_id=discrepancy.id,
        action="opened",
        actor="system",
        payload={"reason": "test"},
    )
    session.add(entry)
    session.flush()
    return entry


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE reconciliation_action_logs SET actor = 'mallory' WHERE id = :id",
        "DELETE FROM reconciliation_action_logs WHERE id = :id",
    ],
)
def test_action_log_refuses_update_and_delete(session, statement):
    entry = add_log(session, make_discrepancy(session))
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text(statement), {"id": entry.id})
    assert (
        session.scalar(
            text("SELECT actor FROM reconciliation_action_logs WHERE id = :id"), {"id": entry.id}
        )
        == "system"
    )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE settings_log SET new_value = '1'::jsonb WHERE id = :id",
        "DELETE FROM settings_log WHERE id = :id",
    ],
)
def test_settings_log_refuses_update_and_delete(session, statement):
    organization = Organization(name="Acme")
    session.add(organization)
    session.flush()
    entry = SettingsLogEntry(
        org_id=organization.id,
        actor="cli",
        subject="organization",
        field="paused",
        old_value=False,
        new_value=True,
    )
    session.add(entry)
    session.flush()
    with pytest.raises(DBAPIError, match="settings_log is append-only"), session.begin_nested():
        session.execute(text(statement), {"id": entry.id})
    assert session.scalar(
        text("SELECT new_value FROM settings_log WHERE id = :id"), {"id": entry.id}
    )


def test_one_unresolved_discrepancy_per_org_type_and_subjects(session):
    first = make_discrepancy(session)
    duplicate = ReconciliationDiscrepancy(
        org_id=first.org_id,
        type=first.type,
        severity="medium",
        payment_id=first.payment_id,
        amount_minor=1000,
        currency="EUR",
    )
    with pytest.raises(IntegrityError, match="one_unresolved"), session.begin_nested():
        session.add(duplicate)
        session.flush()


def test_a_resolved_discrepancy_does_not_block_a_new_one(session):
    first = make_discrepancy(session, status="resolved")
    recurrence = ReconciliationDiscrepancy(
        org_id=first.org_id,
        type=first.type,
        severity="medium",
        payment_id=first.payment_id,
        amount_minor=1000,
        currency="EUR",
    )
    session.add(recurrence)
    session.flush()
    assert recurrence.status == "open"


def _imported_payouts(session: Session) -> list[SettlementPayout]:
    """The payouts of the project's Adyen settlement fixture, imported for a new org."""
    org = make_org(session)
    with (SETTLEMENT_FIXTURES / "adyen" / "settlement_details_every_type.csv").open("rb") as file:
        import_settlement_file(
            session=session,
            org_id=org.id,
            binary=file,
            filename="sdr.csv",
            imported_by=OPERATOR,
        )
    mine = select(SettlementPayout).where(SettlementPayout.org_id == org.id)
    payouts = list(session.scalars(mine))
    assert len(payouts) >= 2
    return payouts


def test_each_payout_has_its_own_unresolved_cash_discrepancy_and_no_more(session):
    first, second = _imported_payouts(session)[:2]

    def payout_mismatch(payout: SettlementPayout) -> ReconciliationDiscrepancy:
        return ReconciliationDiscrepancy(
            org_id=payout.org_id,
            type="PayoutMismatch",
            severity="high",
            settlement_payout_id=payout.id,
            amount_minor=payout.amount_minor,
            currency=payout.currency,
        )

    session.add_all([payout_mismatch(first), payout_mismatch(second)])
    session.flush()
    with pytest.raises(IntegrityError, match="one_unresolved"), session.begin_nested():
        session.add(payout_mismatch(first))
        session.flush()


def test_a_discrepancy_without_any_subject_is_refused(session):
    org = make_org(session)
    subjectless = ReconciliationDiscrepancy(
        org_id=org.id, type="PayoutMismatch", severity="high", amount_minor=1, currency="EUR"
    )
    with pytest.raises(IntegrityError, match="has_subject"), session.begin_nested():
        session.add(subjectless)
        session.flush()


# The rows 0020 backfills, written as its parent (0019) knew them: a payment's
# discrepancies (more than one batch of them), a record's, a payout's, and statements' of
# accounts that list one provider or two.
BEFORE_0020 = """
WITH org AS (INSERT INTO organizations (name) VALUES ('Acme') RETURNING id),
payments AS (
  INSERT INTO payments (org_id, external_id, provider, amount_minor, currency, status,
                        occurred_at)
  SELECT org.id, 'inv-' || n, 'stripe', 100, 'EUR', 'succeeded', now()
  FROM org, generate_series(1, :payments) AS n RETURNING id, org_id
), record AS (
  INSERT INTO provider_records (org_id, provider, provider_reference, currency, status,
                                occurred_at, last_event_at)
  SELECT id, 'adyen', 'PSP1', 'EUR', 'succeeded', now(), now() FROM org RETURNING id, org_id
), payout AS (
  INSERT INTO settlement_payouts (org_id, provider, payout_id, currency, amount_minor, status,
                                  booked_at)
  SELECT id, 'paypal', 'B-1', 'EUR', 100, 'paid', now() FROM org RETURNING id, org_id
), accounts AS (
  INSERT INTO bank_accounts (org_id, name, masked_identifier, identifier_digest, currency,
                             providers)
  SELECT org.id, 'bank', 'NL91…4300', digest, 'EUR', providers FROM org,
    (VALUES ('one', ARRAY['standard']), ('two', ARRAY['adyen', 'stripe'])) AS a(digest, providers)
  RETURNING id, org_id, identifier_digest
), statements AS (
  INSERT INTO bank_statements (org_id, account_id, statement_id, format, currency,
                               entry_count, entries_total_minor, file_sha256, filename)
  SELECT org_id, id, identifier_digest, 'csv', 'EUR', 0, 0, identifier_digest, 'x.csv'
  FROM accounts RETURNING id, org_id
)
INSERT INTO reconciliation_discrepancies (org_id, type, severity, amount_minor, currency,
  payment_id, provider_record_id, settlement_payout_id, bank_statement_id)
SELECT org_id, 'MissingProviderRecord', 'medium', 100, 'EUR', id, CAST(NULL AS uuid),
       CAST(NULL AS uuid), CAST(NULL AS uuid)
FROM payments
UNION ALL SELECT org_id, 'MissingInternalRecord', 'high', 100, 'EUR', NULL, id, NULL, NULL
FROM record
UNION ALL SELECT org_id, 'PayoutMismatch', 'high', 100, 'EUR', NULL, NULL, id, NULL FROM payout
UNION ALL SELECT org_id, 'StatementBalanceMismatch', 'high', 100, 'EUR', NULL, NULL, NULL, id
FROM statements
"""


def test_0020_backfills_each_discrepancys_provider_in_batches(scratch_database):
    url, engine = scratch_database
    migrations.upgrade("0019", database_url=url)  # 0020's parent
    payments = 5_000  # three batches of the migration's 2,000
    with engine.begin() as connection:
        connection.execute(text(BEFORE_0020), {"payments": payments})
    migrations.upgrade("0020", database_url=url)
    with engine.connect() as connection:
        found = connection.execute(
            text(
                "SELECT type, provider, count(*) FROM reconciliation_discrepancies "
                "GROUP BY type, provider"
            )
        ).all()
        indexes = connection.scalars(
            text(
                "SELECT indexdef FROM pg_indexes "
                "WHERE indexname LIKE 'ix_reconciliation_discrepancies_list_by_%'"
            )
        ).all()
        validated = connection.scalar(
            text(
                "SELECT convalidated FROM pg_constraint "
                "WHERE conname = 'ck_reconciliation_discrepancies_provider_known'"
            )
        )
    assert set(found) == {
        ("MissingProviderRecord", "stripe", payments),
        ("MissingInternalRecord", "adyen", 1),
        ("PayoutMismatch", "paypal", 1),
        ("StatementBalanceMismatch", "standard", 1),
        ("StatementBalanceMismatch", None, 1),
    }
    assert len(indexes) == 2
    assert all("dispute_status, provider," in index for index in indexes)
    assert validated is True


# What an interrupted 0020 leaves: its first part committed (a function, the column, the
# check NOT VALID), a few rows filled, an index build cut short; the version still 0019.
INTERRUPTED_0020 = (
    "CREATE FUNCTION recon_discrepancy_provider(uuid, uuid, uuid, uuid, uuid, uuid) "
    "RETURNS text LANGUAGE sql AS 'SELECT NULL::text'",
    "ALTER TABLE reconciliation_discrepancies ADD COLUMN provider varchar(16)",
    "ALTER TABLE reconciliation_discrepancies ADD CONSTRAINT "
    "ck_reconciliation_discrepancies_provider_known CHECK (provider IS NULL) NOT VALID",
    "CREATE INDEX ix_reconciliation_discrepancies_list_by_opened_0020 "
    "ON reconciliation_discrepancies (org_id)",
)


def test_an_interrupted_0020_runs_again_to_the_end(scratch_database):
    url, engine = scratch_database
    migrations.upgrade("0019", database_url=url)  # 0020's parent
    with engine.begin() as connection:
        connection.execute(text(BEFORE_0020), {"payments": 3})
        for statement in INTERRUPTED_0020:
            connection.execute(text(statement))
    migrations.upgrade("0020", database_url=url)
    with engine.connect() as connection:
        unnamed = connection.scalar(
            text("SELECT count(*) FROM reconciliation_discrepancies WHERE provider IS NULL")
        )
    assert unnamed == 1  # the statement of the account of two providers
    migrations.upgrade(database_url=url)  # nothing of the interrupted run is left over
    assert schema_differences(engine) == []
