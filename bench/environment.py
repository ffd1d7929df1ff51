"""The machine a bench runs on: its own database and Redis database, and ``recon serve``.

Every bench creates a fresh database on the machine's PostgreSQL (the admin URL of
``BENCH_ADMIN_DATABASE_URL``, a superuser's) and uses a Redis database of its own on
``BENCH_REDIS_URL``; both are emptied again at the end, also on Ctrl-C or an error.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
ADMIN_DATABASE_URL = os.environ.get(
    "BENCH_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")


def database_url_named(name: str) -> str:
    """The admin URL with its database replaced by ``name``."""
    return urlsplit(ADMIN_DATABASE_URL)._replace(path=f"/{name}").geturl()


def redis_url(database: int) -> str:
    """The bench Redis server's URL for its database number ``database``."""
    return urlsplit(REDIS_BASE_URL)._replace(path=f"/{database}").geturl()


def recreate_database(name: str) -> None:
    """Drop (ending its sessions) and create the bench database ``name``."""
    import psycopg

    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    """Drop the bench database ``name``."""
    import psycopg

    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_redis(url: str) -> int:
    """Empty the bench's Redis database at ``url``; return how many keys it held."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        held = int(client.dbsize())
        client.flushdb()
        return held
    finally:
        client.close()


def start_afresh(database: str, redis_database: int) -> None:
    """Recreate the bench database and empty its Redis database, warning when that held
    keys: another process using it would take or flush this bench's tasks."""
    recreate_database(database)
    if held := flush_redis(redis_url(redis_database)):
        print(
            f"warning: Redis database {redis_database} held {held} keys (flushed): if another "
            "process uses it, it will take or flush this bench's tasks"
        )


def clean_up(database: str, redis: str) -> None:
    """Empty the bench's Redis database (if it still answers) and drop its database."""
    with contextlib.suppress(Exception):
        flush_redis(redis)
    drop_database(database)


def connect(**options):
    """A psycopg connection to the bench database (``DATABASE_URL``)."""
    import psycopg

    return psycopg.connect(os.environ["DATABASE_URL"], **options)


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def use_own_services(database: str, redis: str, log_level: str = "INFO") -> None:
    """Point this process and its children at the bench's own database and Redis database
    (before anything imports shared.platform.settings), make Ctrl-C and SIGTERM end in the
    caller's cleanup (a shell may start a background job with SIGINT ignored), and allow as
    many open files as the hard limit (an overloaded server makes an open-loop run hold
    many connections at once)."""
    os.environ["DATABASE_URL"] = database_url_named(database)
    os.environ["REDIS_URL"] = redis
    os.environ.setdefault("LOG_LEVEL", log_level)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class LoggedProcess:
    """A child process of the bench whose output goes to a log file."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=os.environ.copy(), stdout=self._log, stderr=subprocess.STDOUT
        )

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of its log."""
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then up to 30 s for a graceful stop, then SIGKILL."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class Server(LoggedProcess):
    """``recon serve`` on a loopback ``port``.

    ``worker_class`` (gevent, sync, gthread) overrides ``recon serve``'s default.
    """

    def __init__(
        self, port: int, workers: int, log_path: Path, worker_class: str | None = None
    ) -> None:
        self.port = port
        chosen = ["--worker-class", worker_class] if worker_class else []
        super().__init__(
            [
                sys.executable, "-m", "cli", "serve",
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                *chosen,
            ],
            log_path,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 60) -> None:
        """Return once ``/readyz`` answers 200; raise if the server exits or never does."""
        url = f"http://127.0.0.1:{self.port}/readyz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"recon serve exited early:\n{self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{url} never answered 200:\n{self.tail()}")
