"""Test harness: real PostgreSQL and Redis, isolated per xdist worker and per test.

- Each xdist worker gets its own database ``recon_test_<run>_<worker>`` (migrated once;
  ``<run>`` keeps two suites on one machine apart) and its own Redis database number.
- ``session`` (and everything built on it: the Flask client, in-process CLI calls) runs
  inside an outer transaction that is rolled back; the code's own commits become
  savepoint releases.
- ``committed`` is for tests whose data must really commit (subprocesses, the Celery
  worker): the tables are truncated afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tests.support.smtp import smtp_server, smtp_server_with_auth  # noqa: F401 - fixtures

ADMIN_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BASE_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WORKER_ID = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
WORKER_NUMBER = int(WORKER_ID.removeprefix("gw") or 0)
REPO_ROOT = Path(__file__).resolve().parent.parent


def database_url_named(name: str) -> str:
    """The admin URL with its database replaced by ``name``."""
    return urlsplit(ADMIN_DATABASE_URL)._replace(path=f"/{name}").geturl()


def redis_url_numbered(number: int) -> str:
    """The base Redis URL with its database number replaced."""
    return urlsplit(BASE_REDIS_URL)._replace(path=f"/{number}").geturl()


# Set once by the controlling process; xdist workers inherit it.
RUN_TAG = os.environ.setdefault("RECON_TEST_RUN", str(os.getpid()))
TEST_DATABASE = f"recon_test_{RUN_TAG}_{WORKER_ID}"
TEST_DATABASE_URL = database_url_named(TEST_DATABASE)
# Database 0 stays for development; xdist workers take 1, 2, ...
TEST_REDIS_URL = redis_url_numbered(1 + WORKER_NUMBER % 15)

# Before anything imports the settings: every process of the suite uses the test services.
os.environ["DATABASE_URL"] = TEST_DATABASE_URL
os.environ["REDIS_URL"] = TEST_REDIS_URL
os.environ.setdefault("LOG_LEVEL", "INFO")
# Wrong daily tokens from the test client's 127.0.0.1 would add up across tests (and runs)
# within the window; tests/access/test_daily_token.py sets the limit it tests.
os.environ.setdefault("DAILY_TOKEN_MAX_FAILURES", "1000")


def pytest_configure(config: pytest.Config) -> None:
    """No secret in any log line of the suite (tests/support/log_leaks.py)."""
    from tests.support import log_leaks

    config.pluginmanager.register(log_leaks, "recon-log-leaks")


def recreate_database(name: str) -> None:
    """Drop (terminating its sessions) and create an empty database ``name``."""
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    """Drop database ``name`` if it exists."""
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The migrated test database of this xdist worker, and the process-wide engine on it."""
    from shared.platform import db, migrations

    recreate_database(TEST_DATABASE)
    migrations.upgrade(database_url=TEST_DATABASE_URL)
    engine = db.get_engine()
    yield engine
    engine.dispose()
    drop_database(TEST_DATABASE)


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    """This worker's Redis database, emptied at the start of the session."""
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside an outer transaction that is rolled back after the test.

    ``shared.platform.db.unit_of_work`` binds to the same connection, so code under test commits
    into savepoints and every test starts from an empty database.
    """
    from shared.platform.db import SessionFactory

    connection = engine.connect()
    outer = connection.begin()
    configured = dict(SessionFactory.kw)
    SessionFactory.configure(bind=connection, join_transaction_mode="create_savepoint")
    test_session = SessionFactory()
    try:
        yield test_session
    finally:
        test_session.close()
        outer.rollback()
        connection.close()
        SessionFactory.kw = configured


def truncate_all(engine: Engine, attempts: int = 5) -> None:
    """Empty every table of the schema (TRUNCATE fires no row trigger).

    A worker still finishing a task of the test reads the tables in its own order, so the
    TRUNCATE can deadlock with it; PostgreSQL then aborts one side. If it aborted ours, the
    worker commits and the TRUNCATE is tried again, emptying what the worker wrote too.
    """
    from shared.models import Base

    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as connection:
                connection.execute(text(f"TRUNCATE {tables} CASCADE"))
            return
        except OperationalError as error:
            if not isinstance(error.orig, psycopg.errors.DeadlockDetected) or attempt == attempts:
                raise
            time.sleep(0.2 * attempt)


@pytest.fixture
def committed(engine: Engine) -> Iterator[Engine]:
    """Real commits, visible to other processes; every table is truncated afterwards."""
    yield engine
    truncate_all(engine)


class WorkerProcess:
    """A real ``celery worker`` subprocess consuming every queue, in its own process group.

    By default it uses this test session's Redis database with one pool process; fault
    tests point it at their own Redis server and kill it (:meth:`kill`).
    """

    def __init__(
        self,
        log_path: Path,
        *,
        redis_url: str = TEST_REDIS_URL,
        concurrency: int = 1,
        environment: dict[str, str] | None = None,
    ) -> None:
        from cli.processes import worker_argv
        from shared.platform.tasks import QUEUES

        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            worker_argv(",".join(QUEUES), concurrency),
            cwd=REPO_ROOT,
            env={
                **os.environ,
                "DATABASE_URL": TEST_DATABASE_URL,
                "REDIS_URL": redis_url,
                **(environment or {}),
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )

    def log(self) -> str:
        """Everything the worker printed so far."""
        return self.log_path.read_text()

    def wait_for_log(self, needle: str, timeout: float = 30) -> str:
        """Wait until ``needle`` appears in the worker's output; fail with the log if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            output = self.log()
            if needle in output:
                return output
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"worker never logged {needle!r}; its output:\n{self.log()}")

    def stop(self) -> None:
        """Warm shutdown; kill if it does not stop in time."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once: no shutdown, no acks."""
        with contextlib.suppress(ProcessLookupError):  # the whole group has exited already
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()


@pytest.fixture(scope="session")
def celery_worker(
    engine: Engine, redis_client: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """One real Celery worker process for the session, on this worker's Redis database."""
    worker = WorkerProcess(tmp_path_factory.mktemp("celery") / "worker.log")
    worker.wait_for_log("ready.", timeout=60)
    yield worker
    worker.stop()


@pytest.fixture
def app(session: Session):
    """The Flask app, its database work inside the test's rolled-back transaction."""
    from api.app import create_app

    return create_app()


@pytest.fixture
def client(app):
    """A test client of the Flask app."""
    return app.test_client()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``recon ARGS`` in a subprocess against the test services (stderr is scanned)."""
    from tests.support.log_leaks import record_output

    result = subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "DATABASE_URL": TEST_DATABASE_URL,
            "REDIS_URL": TEST_REDIS_URL,
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    record_output(f"recon {args[0] if args else ''}", result.stderr)
    return result


@pytest.fixture
def override_settings(monkeypatch):
    """Set environment variables for the settings of this test only (secrets registered)."""
    from shared.platform.settings import get_settings
    from tests.support.log_leaks import register_secret

    def override(**variables: str) -> None:
        for name, value in variables.items():
            if any(word in name for word in ("TOKEN", "SECRET", "PASSWORD")):
                register_secret(value)
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield override
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def committed_client(committed):
    """A Flask test client whose requests really commit (for worker round trips)."""
    from api.app import create_app

    return create_app().test_client()


@pytest.fixture
def published_tasks():
    """Every task message actually published to the broker during the test: (name, args)."""
    from celery.signals import after_task_publish

    published: list[tuple[str, list]] = []

    def record(sender=None, headers=None, body=None, **_):
        published.append((sender, list(body[0]) if body else []))

    after_task_publish.connect(record, weak=False)
    yield published
    after_task_publish.disconnect(record)


def wait_until(predicate, timeout: float = 30, interval: float = 0.1):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s")
