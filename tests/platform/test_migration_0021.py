"""Migration 0021: one composite foreign key per settlement line and per bank entry."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from shared.platform import migrations
from tests.platform.conftest import schema_differences

LINE_KEY = "fk_settlement_lines_org_id_settlement_files"
ENTRY_KEY = "fk_bank_entries_org_id_bank_statements"

# An organisation with a settlement file of one line, and a bank account with a statement
# of one entry; a second organisation with a file and a statement of its own.
POPULATED = """
WITH orgs AS (
  INSERT INTO organizations (name) VALUES ('Acme'), ('Other') RETURNING id, name
), files AS (
  INSERT INTO settlement_files (org_id, provider, layout, filename, sha256, size_bytes)
  SELECT id, 'adyen', 'adyen_settlement_details', 'a.csv', name, 1 FROM orgs RETURNING id, org_id
), lines AS (
  INSERT INTO settlement_lines (org_id, file_id, line_key, row_number, provider, line_type,
    provider_type, commission_minor, markup_minor, scheme_fee_minor, interchange_minor,
    processing_minor, other_fee_minor, net_minor, net_currency, booked_at)
  SELECT files.org_id, files.id, 'k', 2, 'adyen', 'capture', 'Settled', 0, 0, 0, 0, 0, 0, 100,
         'EUR', now()
  FROM files JOIN orgs ON orgs.id = files.org_id WHERE orgs.name = 'Acme' RETURNING id
), accounts AS (
  INSERT INTO bank_accounts (org_id, name, masked_identifier, identifier_digest, currency)
  SELECT id, 'bank', 'NL91…4300', name, 'EUR' FROM orgs RETURNING id, org_id
), statements AS (
  INSERT INTO bank_statements (org_id, account_id, statement_id, format, currency,
                               entry_count, entries_total_minor, file_sha256, filename)
  SELECT org_id, id, 'S-1', 'csv', 'EUR', 1, 100, 'sha', 'x.csv' FROM accounts
  RETURNING id, org_id, account_id
)
INSERT INTO bank_entries (org_id, account_id, bank_statement_id, booking_date, amount_minor,
                          currency, entry_digest, occurrence)
SELECT s.org_id, s.account_id, s.id, current_date, 100, 'EUR', '\\x00', 1
FROM statements AS s JOIN orgs ON orgs.id = s.org_id WHERE orgs.name = 'Acme'
"""
# The first part of 0021 committed, the version still 0020: both keys NOT VALID.
INTERRUPTED = (
    "ALTER TABLE settlement_files ADD CONSTRAINT uq_settlement_files_org_id_id UNIQUE (org_id, id)",
    f"ALTER TABLE settlement_lines ADD CONSTRAINT {LINE_KEY} FOREIGN KEY (org_id, file_id) "
    "REFERENCES settlement_files (org_id, id) NOT VALID",
)


def foreign_keys(connection: Connection, table: str) -> dict[str, bool]:
    """Each foreign key of ``table``: whether it is validated."""
    found = connection.execute(
        text("SELECT conname, convalidated FROM pg_constraint "
             "WHERE conrelid = CAST(:t AS regclass) AND contype = 'f'"),
        {"t": table},
    )  # fmt: skip
    return dict(found.all())


def test_0021_replaces_each_rows_keys_by_one_validated_composite_key(scratch_database):
    url, engine = scratch_database
    migrations.upgrade("0020", database_url=url)  # 0021's parent
    with engine.begin() as connection:
        connection.execute(text(POPULATED))
        assert len(foreign_keys(connection, "settlement_lines")) == 2
        assert len(foreign_keys(connection, "bank_entries")) == 3
    migrations.upgrade("0021", database_url=url)
    with engine.connect() as connection:
        assert foreign_keys(connection, "settlement_lines") == {LINE_KEY: True}
        assert foreign_keys(connection, "bank_entries") == {ENTRY_KEY: True}
        counts = connection.execute(
            text(
                "SELECT (SELECT count(*) FROM settlement_lines), "
                "(SELECT count(*) FROM bank_entries)"
            )
        ).one()
    assert tuple(counts) == (1, 1)
    assert schema_differences(engine) == []


def test_an_interrupted_0021_runs_again_to_the_end(scratch_database):
    url, engine = scratch_database
    migrations.upgrade("0020", database_url=url)
    with engine.begin() as connection:
        connection.execute(text(POPULATED))
        for statement in INTERRUPTED:
            connection.execute(text(statement))
    migrations.upgrade("0021", database_url=url)
    with engine.connect() as connection:
        assert foreign_keys(connection, "settlement_lines") == {LINE_KEY: True}
    assert schema_differences(engine) == []


@pytest.mark.parametrize(
    ("swap", "key"),
    [
        # A line of one organisation in another organisation's file.
        (
            "INSERT INTO settlement_lines (org_id, file_id, line_key, row_number, provider, "
            "line_type, provider_type, commission_minor, markup_minor, scheme_fee_minor, "
            "interchange_minor, processing_minor, other_fee_minor, net_minor, net_currency, "
            "booked_at) SELECT l.org_id, f.id, 'other', 3, 'adyen', 'capture', 'Settled', "
            "0, 0, 0, 0, 0, 0, 1, 'EUR', now() FROM settlement_lines AS l "
            "JOIN settlement_files AS f ON f.org_id <> l.org_id",
            LINE_KEY,
        ),
        # An entry of one account in another account's statement (same organisation).
        (
            "INSERT INTO bank_entries (org_id, account_id, bank_statement_id, booking_date, "
            "amount_minor, currency, entry_digest, occurrence) SELECT e.org_id, a.id, "
            "e.bank_statement_id, current_date, 1, 'EUR', '\\x01', 1 FROM bank_entries AS e "
            "JOIN bank_accounts AS a ON a.org_id = e.org_id AND a.id <> e.account_id",
            ENTRY_KEY,
        ),
    ],
    ids=["line in another organisation's file", "entry in another account's statement"],
)
def test_a_row_whose_parent_belongs_elsewhere_is_refused(scratch_database, swap, key):
    url, engine = scratch_database
    migrations.upgrade(database_url=url)
    with engine.begin() as connection:
        connection.execute(text(POPULATED))
        connection.execute(
            text("INSERT INTO bank_accounts (org_id, name, masked_identifier, "
                 "identifier_digest, currency) SELECT id, 'second', '…0001', 'second', 'EUR' "
                 "FROM organizations WHERE name = 'Acme'")
        )  # fmt: skip
    with engine.begin() as connection, pytest.raises(IntegrityError, match=key):
        connection.execute(text(swap))
