"""Ledger safety, enforced by PostgreSQL: the worker's role cannot write payments, the action
log refuses rewrites from every role, and a whole day of reconciliation leaves payments as
they were.

The worker tests run a real Celery worker connected as ``recon_worker`` (migration 0004)
on a Redis server of their own, so no other worker of the session can do the work for it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import errors
from sqlalchemy import Engine, text

from api.app import create_app
from shared.access.api_keys import create_api_key
from shared.platform.db import unit_of_work
from tests.conftest import TEST_DATABASE, TEST_DATABASE_URL, WORKER_ID, WorkerProcess, wait_until
from tests.support.checksums import table_checksum
from tests.support.factories import make_account, make_org, make_payment
from tests.support.processes import RedisServer
from tests.support.signing import stripe_event, stripe_request

WORKER_ROLE = "recon_worker"


def database_url_as(role: str) -> str:
    """This worker's test database URL, connecting as ``role`` (trust authentication)."""
    parts = urlsplit(TEST_DATABASE_URL)
    return parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port or 5432}").geturl()


WORKER_URL = database_url_as(WORKER_ROLE)

# (statement, allowed?) as recon_worker. WHERE false: privileges are checked whatever the rows.
WORKER_PRIVILEGES = [
    ("SELECT count(*) FROM payments", True),
    ("UPDATE payments SET amount_minor = 0 WHERE false", False),
    ("DELETE FROM payments WHERE false", False),
    (
        "INSERT INTO payments (org_id, external_id, provider, amount_minor, currency, status, "
        "occurred_at) SELECT id, 'x', 'stripe', 1, 'EUR', 'succeeded', now() "
        "FROM organizations WHERE false",
        False,
    ),
    ("TRUNCATE payments", False),
    ("SELECT count(*) FROM organizations", True),
    ("UPDATE organizations SET paused = true WHERE false", False),
    ("SELECT count(*) FROM provider_accounts", True),
    ("UPDATE provider_accounts SET active = false WHERE false", False),
    ("SELECT count(*) FROM api_keys", False),
    ("SELECT count(*) FROM provider_events", True),
    ("UPDATE provider_events SET state = 'processed' WHERE false", True),
    ("UPDATE provider_events SET payload = '{}' WHERE false", False),
    ("DELETE FROM provider_events WHERE false", False),
    ("UPDATE provider_records SET status = 'failed' WHERE false", True),
    ("DELETE FROM provider_records WHERE false", False),
    ("UPDATE reconciliation_runs SET status = 'failed' WHERE false", True),
    ("DELETE FROM reconciliation_runs WHERE false", False),
    ("UPDATE reconciliation_items SET outcome = 'matched' WHERE false", False),
    ("DELETE FROM reconciliation_items WHERE false", False),
    ("UPDATE reconciliation_discrepancies SET status = 'open' WHERE false", True),
    ("DELETE FROM reconciliation_discrepancies WHERE false", False),
    ("SELECT count(*) FROM reconciliation_action_logs", True),
    ("UPDATE reconciliation_action_logs SET actor = 'x' WHERE false", False),
    ("DELETE FROM reconciliation_action_logs WHERE false", False),
    ("TRUNCATE reconciliation_action_logs", False),
    ("DELETE FROM pending_payment_matches WHERE false", True),
    ("UPDATE pending_payment_matches SET payment_id = org_id WHERE false", False),
    ("TRUNCATE pending_payment_matches", False),
    ("SELECT count(*) FROM bank_accounts", True),
    ("SELECT count(*) FROM bank_statements", True),
    ("SELECT count(*) FROM bank_entries", True),
    ("UPDATE bank_accounts SET name = 'x' WHERE false", False),
    ("UPDATE bank_entries SET amount_minor = 0 WHERE false", False),
    ("DELETE FROM bank_statements WHERE false", False),
    # Settlement matching links lines and records payouts (migration 0016), nothing else.
    ("UPDATE settlement_lines SET payment_id = NULL, provider_record_id = NULL WHERE false", True),
    ("UPDATE settlement_lines SET net_minor = 0 WHERE false", False),
    ("DELETE FROM settlement_lines WHERE false", False),
    ("UPDATE settlement_payouts SET status = 'paid', status_at = now() WHERE false", True),
    ("DELETE FROM settlement_payouts WHERE false", False),
    ("UPDATE settlement_files SET filename = 'x' WHERE false", False),
    ("SELECT count(*) FROM alembic_version", False),
    ("CREATE TABLE worker_owned (id int)", False),
]


@pytest.mark.parametrize(("statement", "allowed"), WORKER_PRIVILEGES)
def test_the_worker_role_has_exactly_the_privileges_it_needs(engine, statement, allowed):
    with psycopg.connect(WORKER_URL) as connection:
        assert connection.execute("SELECT current_user").fetchone() == (WORKER_ROLE,)
        if allowed:
            connection.execute(statement)
        else:
            with pytest.raises(errors.InsufficientPrivilege):
                connection.execute(statement)
        connection.rollback()


def test_the_worker_role_may_not_log_in_as_a_superuser_or_create_anything(engine):
    with psycopg.connect(TEST_DATABASE_URL) as connection:
        row = connection.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls "
            "FROM pg_roles WHERE rolname = %s",
            (WORKER_ROLE,),
        ).fetchone()
    assert row == (True, False, False, False, False)


# --- the action log, from every role -------------------------------------------------------


@pytest.fixture
def logged_action(committed: Engine) -> uuid.UUID:
    """One committed action-log entry (row triggers fire only on rows that exist)."""
    with unit_of_work() as session:
        org = make_org(session)
        payment = make_payment(session, org)
        discrepancy_id = session.execute(
            text(
                "INSERT INTO reconciliation_discrepancies (org_id, type, severity, payment_id, "
                "amount_minor, currency) VALUES (:org, 'MissingProviderRecord', 'medium', "
                ":payment, 2500, 'EUR') RETURNING id"
            ),
            {"org": org.id, "payment": payment.id},
        ).scalar_one()
        return session.execute(
            text(
                "INSERT INTO reconciliation_action_logs (org_id, discrepancy_id, action, actor) "
                "VALUES (:org, :discrepancy, 'opened', 'system') RETURNING id"
            ),
            {"org": org.id, "discrepancy": discrepancy_id},
        ).scalar_one()


@pytest.fixture
def table_owner_like_role(engine) -> Iterator[str]:
    """A non-superuser with every privilege on the action log, as an application role has."""
    role = f"recon_app_{WORKER_ID}"
    with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as connection:
        connection.execute(f"DROP ROLE IF EXISTS {role}")
        connection.execute(f"CREATE ROLE {role} LOGIN")
        connection.execute(f"GRANT ALL ON reconciliation_action_logs TO {role}")
    yield role
    with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as connection:
        connection.execute(f"REVOKE ALL ON reconciliation_action_logs FROM {role}")
        connection.execute(f"DROP ROLE {role}")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE reconciliation_action_logs SET actor = 'mallory' WHERE id = %s",
        "DELETE FROM reconciliation_action_logs WHERE id = %s",
    ],
)
@pytest.mark.parametrize("role", ["postgres", "application", WORKER_ROLE])
def test_the_action_log_refuses_update_and_delete_from_every_role(
    logged_action, table_owner_like_role, statement, role
):
    """The application's own role (the superuser owning the tables here, and a plain role
    granted everything) is stopped by the trigger; the worker's role by its privileges."""
    user = table_owner_like_role if role == "application" else role
    with psycopg.connect(database_url_as(user)) as connection:
        with pytest.raises(errors.InsufficientPrivilege):
            connection.execute(statement, (logged_action,))
        connection.rollback()
    with psycopg.connect(TEST_DATABASE_URL) as connection:
        actor = connection.execute(
            "SELECT actor FROM reconciliation_action_logs WHERE id = %s", (logged_action,)
        ).fetchone()
    assert actor == ("system",)


# --- a real worker connected as recon_worker -------------------------------------------------


@pytest.fixture(scope="module")
def restricted_worker(engine, tmp_path_factory) -> Iterator[str]:
    """A real Celery worker connected as recon_worker, on its own Redis server; its URL."""
    directory = tmp_path_factory.mktemp("restricted-worker")
    with RedisServer(directory) as redis_server:
        worker = WorkerProcess(
            directory / "worker.log",
            redis_url=redis_server.url(),
            environment={"DATABASE_URL": WORKER_URL},
        )
        try:
            worker.wait_for_log("ready.", timeout=60)
            yield redis_server.url()
            log = worker.log()
        finally:
            worker.stop()
    assert "permission denied" not in log
    assert "InsufficientPrivilege" not in log


def scalar(engine: Engine, sql: str, **params):
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar()


@pytest.fixture
def day(committed, restricted_worker, override_settings):
    """An organisation with a Stripe account and an owner key; the API queues to the worker."""
    override_settings(REDIS_URL=restricted_worker)
    with unit_of_work() as session:
        org = make_org(session)
        account = make_account(session, org)
        key = create_api_key(session=session, org_id=org.id, role="owner").secret
    return {
        "client": create_app().test_client(),
        "account": account.id,
        "headers": {"Authorization": f"Bearer {key}"},
        "occurred_at": datetime.now(UTC) - timedelta(minutes=5),
    }


def import_payments(day) -> None:
    occurred = day["occurred_at"].isoformat()
    payments = [
        {
            "external_id": external_id,
            "provider": "stripe",
            "provider_reference": reference,
            "amount_minor": 2500,
            "currency": "EUR",
            "status": "succeeded",
            "occurred_at": occurred,
        }
        for external_id, reference in (("inv_a", "pi_a"), ("inv_b", "pi_b"), ("inv_c", "pi_c"))
    ]
    response = day["client"].post("/billing/payments", json={"payments": payments}, **auth(day))
    assert response.status_code == 200, response.json
    assert response.json["rejected"] == []


def auth(day) -> dict:
    return {"headers": day["headers"]}


def send_webhooks(day) -> None:
    """pi_a as imported (matched), pi_b charged 24.00 instead of 25.00 (AmountMismatch)."""
    for reference, amount in (("pi_a", 2500), ("pi_b", 2400)):
        event = stripe_event(id=reference, amount=amount, amount_received=amount, metadata={})
        body, headers = stripe_request(json.dumps(event).encode())
        response = day["client"].post(
            f"/webhooks/stripe/{day['account']}",
            data=body,
            headers=headers,
            content_type="application/json",
        )
        assert response.status_code == 200, response.json


def processed(committed: Engine) -> bool:
    return (
        scalar(committed, "SELECT count(*) FROM provider_events WHERE state = 'processed'") == 2
        and scalar(committed, "SELECT count(*) FROM reconciliation_discrepancies") >= 1
    )


def test_a_worker_connected_as_recon_worker_processes_webhooks_to_completion(committed, day):
    import_payments(day)
    send_webhooks(day)
    wait_until(lambda: processed(committed), timeout=60)
    assert scalar(committed, "SELECT count(*) FROM provider_events WHERE state <> 'processed'") == 0
    matched = scalar(
        committed,
        "SELECT count(*) FROM reconciliation_items i JOIN payments p ON p.id = i.payment_id "
        "WHERE i.outcome = 'matched' AND p.external_id = 'inv_a'",
    )
    assert matched >= 1
    assert scalar(committed, "SELECT type FROM reconciliation_discrepancies") == "AmountMismatch"
    assert (
        scalar(
            committed,
            "SELECT actor FROM reconciliation_action_logs WHERE action = 'opened'",
        )
        == "system"
    )
    connected_as = scalar(
        committed,
        "SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity "
        "WHERE datname = :database AND application_name <> 'psql' AND usename <> 'postgres'",
        database=TEST_DATABASE,
    )
    assert connected_as == WORKER_ROLE


def test_a_worker_connected_as_recon_worker_matches_an_imported_settlement_file(committed, day):
    from tests.settlements.reading import multipart
    from tests.settlements.test_matching import adyen_file, row

    content = adyen_file(row("Settled", "PSP1", "ORDER-1", "10.00", "9.80"))
    upload = day["client"].post(
        "/billing/settlements/files", **auth(day), **multipart(content, "batch_7.csv")
    )
    assert upload.status_code == 201, upload.json
    found = wait_until(
        lambda: scalar(
            committed,
            "SELECT type FROM reconciliation_discrepancies WHERE settlement_line_id IS NOT NULL",
        ),
        timeout=60,
    )
    assert found == "MissingInternalRecord"


def run_status(committed: Engine, run_id: str) -> str | None:
    status = scalar(committed, "SELECT status FROM reconciliation_runs WHERE id = :id", id=run_id)
    return status if status in ("completed", "failed") else None


def test_payments_are_unchanged_by_matching_a_period_run_and_a_triage_session(committed, day):
    """The ledger checksum: imported once, then re-imported unchanged, matched by the
    worker, reconciled by a full period run, and triaged to resolution — byte for byte."""
    client = day["client"]
    import_payments(day)
    with committed.connect() as connection:
        before = table_checksum(connection, "payments")
    import_payments(day)  # the same batch again: unchanged
    send_webhooks(day)
    wait_until(lambda: processed(committed), timeout=60)

    period = {"date": day["occurred_at"].date().isoformat()}
    run = client.post("/billing/reconciliation/runs/trigger", json=period, **auth(day))
    assert run.status_code == 202, run.json
    status = wait_until(lambda: run_status(committed, run.json["id"]), timeout=120)
    error = scalar(
        committed, "SELECT error FROM reconciliation_runs WHERE id = :id", id=run.json["id"]
    )
    assert (status, error) == ("completed", None)

    listing = client.get(
        "/billing/reconciliation/discrepancies",
        query_string={"type": "AmountMismatch"},
        **auth(day),
    )
    [discrepancy] = listing.json["items"]
    base = f"/billing/reconciliation/discrepancies/{discrepancy['id']}"
    steps = [
        client.patch(f"{base}/acknowledge", **auth(day)),
        client.patch(f"{base}/assign", json={"assignee": "ana@finance"}, **auth(day)),
        client.post(f"{base}/notes", json={"note": "Stripe captured 24.00"}, **auth(day)),
        client.patch(
            f"{base}/resolve",
            json={
                "resolution": "internal_error_adjusted",
                "reason": "invoice corrected by an adjustment entry",
                "adjustment_reference": "ADJ-2026-11-001",
            },
            **auth(day),
        ),
    ]
    assert [step.status_code for step in steps] == [200, 200, 201, 200]
    actions = scalar(
        committed,
        "SELECT string_agg(action, ',' ORDER BY created_at) FROM reconciliation_action_logs "
        "WHERE discrepancy_id = :id",
        id=discrepancy["id"],
    )
    assert actions == "opened,acknowledged,assigned,note_added,resolved"

    with committed.connect() as connection:
        assert table_checksum(connection, "payments") == before
