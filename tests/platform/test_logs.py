"""Structured logs: JSON lines carrying the request id through the API and into the worker."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
import structlog
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from cli.services import free_port
from shared.platform.db import unit_of_work
from shared.platform.dispatch import send_now
from shared.platform.logs import REQUEST_ID_HEADER
from shared.platform.tasks import PROCESS_EVENT
from tests.conftest import REPO_ROOT, TEST_DATABASE_URL, TEST_REDIS_URL, wait_until
from tests.support.factories import make_account, make_org
from tests.support.signing import stripe_event, stripe_request

GENERATED = re.compile(r"[0-9a-f]{32}")


class Lines:
    """The JSON lines the service's log handler wrote during a test."""

    def __init__(self, buffer: io.StringIO) -> None:
        self.buffer = buffer

    def all(self) -> list[dict]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines()]

    def text(self) -> str:
        return self.buffer.getvalue()


@pytest.fixture
def logs(app) -> Iterator[Lines]:
    """Point the service's JSON handler (installed by ``create_app``) at a buffer."""
    (handler,) = (h for h in logging.getLogger().handlers if h.get_name() == "recon-json")
    buffer = io.StringIO()
    original = handler.setStream(buffer)
    yield Lines(buffer)
    handler.setStream(original)


@pytest.fixture
def stripe_account(session):
    return make_account(session, make_org(session), "stripe")


def post_stripe(client, account_id, body: bytes, headers: dict[str, str]):
    return client.post(
        f"/webhooks/stripe/{account_id}",
        data=body,
        headers=headers,
        content_type="application/json",
    )


def test_the_request_id_is_echoed_and_on_every_line_the_request_logs(client, logs, stripe_account):
    body, headers = stripe_request(stripe_event())
    response = post_stripe(
        client, stripe_account.id, body, {**headers, REQUEST_ID_HEADER: "req-42"}
    )
    assert response.status_code == 200
    assert response.headers[REQUEST_ID_HEADER] == "req-42"
    lines = logs.all()
    assert "http.request" in {line["event"] for line in lines}
    assert all(line["request_id"] == "req-42" for line in lines)


def test_a_stored_webhook_is_one_access_line_naming_its_account_and_counts(
    client, logs, stripe_account
):
    body, headers = stripe_request(stripe_event())
    assert post_stripe(client, stripe_account.id, body, headers).status_code == 200
    assert post_stripe(client, stripe_account.id, body, headers).status_code == 200
    first, again = logs.all()
    for line, stored in ((first, 1), (again, 0)):
        assert line["event"] == "http.request"
        assert line["path"] == "/webhooks/stripe/<uuid:account_id>"
        assert line["provider"] == "stripe"
        assert line["account_id"] == str(stripe_account.id)
        assert (line["received"], line["stored"]) == (1, stored)


def test_error_responses_echo_the_request_id_too(client, logs, stripe_account):
    body, headers = stripe_request(stripe_event())
    forged = {"Stripe-Signature": headers["Stripe-Signature"].replace("v1=", "v1=00")}
    refused = post_stripe(client, stripe_account.id, body, {**forged, REQUEST_ID_HEADER: "req-7"})
    assert refused.status_code == 400
    assert refused.mimetype == "application/problem+json"
    assert refused.headers[REQUEST_ID_HEADER] == "req-7"
    missing = client.get("/nowhere", headers={REQUEST_ID_HEADER: "req-8"})
    assert missing.status_code == 404
    assert missing.headers[REQUEST_ID_HEADER] == "req-8"


@pytest.mark.parametrize(
    "sent",
    [None, "", "x" * 129, "é-accented", "tab\there"],
    ids=["missing", "empty", "too-long", "not-ascii", "control-character"],
)
def test_a_missing_or_unusable_request_id_is_replaced_by_a_new_one(client, logs, sent):
    headers = {} if sent is None else {REQUEST_ID_HEADER: sent}
    response = client.get("/healthz", headers=headers)
    generated = response.headers[REQUEST_ID_HEADER]
    assert GENERATED.fullmatch(generated)
    (line,) = logs.all()
    assert line["request_id"] == generated


def test_each_request_gets_its_own_id(client, logs):
    first = client.get("/healthz").headers[REQUEST_ID_HEADER]
    second = client.get("/healthz").headers[REQUEST_ID_HEADER]
    assert first != second
    assert [line["request_id"] for line in logs.all()] == [first, second]


def test_one_access_line_per_request_with_the_route_template_and_no_secrets(client, logs):
    run_id = uuid.uuid4()
    response = client.get(
        f"/billing/reconciliation/runs/{run_id}/report?format=markdown&token=query-secret",
        headers={"Authorization": "Bearer rk_header-secret", REQUEST_ID_HEADER: "req-9"},
    )
    assert response.status_code == 401
    (line,) = (line for line in logs.all() if line["event"] == "http.request")
    assert line["method"] == "GET"
    assert line["path"] == "/billing/reconciliation/runs/<uuid:run_id>/report"
    assert line["status"] == 401
    assert line["request_id"] == "req-9"
    assert line["duration_ms"] >= 0
    assert line["logger"] == "recon.access"
    for secret in ("query-secret", "rk_header-secret", str(run_id)):
        assert secret not in logs.text()


def test_task_lines_carry_the_task_and_the_request_that_queued_it(
    committed, committed_client, celery_worker
):
    with unit_of_work() as session:
        account = make_account(session, make_org(session), "stripe")
    event = stripe_event()
    body, headers = stripe_request(event)
    request_id = f"req-{uuid.uuid4().hex}"
    response = post_stripe(
        committed_client, account.id, body, {**headers, REQUEST_ID_HEADER: request_id}
    )
    assert response.status_code == 200

    def processed_line() -> dict | None:
        return next(
            (
                line
                for line in worker_lines(celery_worker.log())
                if line.get("request_id") == request_id and line["event"] == "event.processed"
            ),
            None,
        )

    line = wait_until(processed_line)
    assert line["task"] == "worker.tasks.process_event"
    with committed.connect() as connection:
        event_id = connection.scalar(
            text("SELECT id FROM provider_events WHERE provider_event_id = :id"),
            {"id": event["id"]},
        )
    assert line["event_id"] == str(event_id)
    task_lines = [
        item for item in worker_lines(celery_worker.log()) if item.get("task_id") == line["task_id"]
    ]
    assert all(item["request_id"] == request_id for item in task_lines)

    # A task queued outside any request carries none, and does not inherit the last one.
    structlog.contextvars.clear_contextvars()
    missing_id = str(uuid.uuid4())
    assert send_now(PROCESS_EVENT, [missing_id]) == 1

    def missing_line() -> dict | None:
        return next(
            (
                item
                for item in worker_lines(celery_worker.log())
                if item["event"] == "event.missing" and item.get("event_id") == missing_id
            ),
            None,
        )

    unrelated = wait_until(missing_line)
    assert unrelated["task"] == "worker.tasks.process_event"
    assert unrelated["task_id"] != line["task_id"]
    assert "request_id" not in unrelated


def test_a_logged_exception_is_one_json_line_with_its_traceback(logs):
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        structlog.get_logger("recon.test").exception("boom", error="ZeroDivisionError")
    logging.getLogger("recon.test").warning("foreign %s", "record")
    boom, foreign = logs.all()
    assert boom["event"] == "boom"
    assert boom["level"] == "error"
    assert boom["logger"] == "recon.test"
    assert "ZeroDivisionError: division by zero" in boom["exception"]
    assert foreign["event"] == "foreign record"
    assert foreign["level"] == "warning"


def test_database_errors_never_carry_statement_parameters(session):
    """A logged traceback or an event's last_error shows the SQL, never payloads or keys."""
    with pytest.raises(DBAPIError) as raised:
        session.execute(
            text("SELECT 1 / 0 WHERE CAST(:payload AS text) IS NOT NULL"),
            {"payload": "customer-secret-payload"},
        )
    assert "SELECT 1 / 0" in str(raised.value)
    assert "customer-secret-payload" not in str(raised.value)


def worker_lines(output: str) -> list[dict]:
    """The worker's JSON log lines (Celery's start-up banner is plain text on stdout)."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[str, subprocess.Popen, object]]:
    """``recon serve`` on a spare port, its output in a file."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env={
                "PATH": "/usr/bin:/bin",
                "DATABASE_URL": TEST_DATABASE_URL,
                "REDIS_URL": TEST_REDIS_URL,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"http://127.0.0.1:{port}", server, log_path
        finally:
            server.terminate()
            server.wait(timeout=30)


def test_every_line_gunicorn_and_the_app_write_is_json(served):
    base, server, log_path = served

    def answers() -> bool:
        try:
            request = urllib.request.Request(
                f"{base}/healthz", headers={REQUEST_ID_HEADER: "req-gunicorn"}
            )
            with urllib.request.urlopen(request, timeout=1) as response:
                return response.headers[REQUEST_ID_HEADER] == "req-gunicorn"
        except OSError:
            return False

    wait_until(answers, timeout=30)
    server.terminate()
    server.wait(timeout=30)
    output = log_path.read_text()
    lines = [json.loads(line) for line in output.splitlines()]  # fails on any plain line
    gunicorn = [line for line in lines if line["logger"] == "gunicorn.error"]
    assert any(line["event"].startswith("Booting worker") for line in gunicorn)
    assert any(line["event"] == "Shutting down: Master" for line in gunicorn)
    access = [line for line in lines if line["event"] == "http.request"]
    assert any(line["request_id"] == "req-gunicorn" for line in access)
    assert all(line["level"] for line in lines)
    # Nothing logged between requests names the last one.
    exiting = next(line for line in gunicorn if line["event"].startswith("Worker exiting"))
    assert "request_id" not in exiting
