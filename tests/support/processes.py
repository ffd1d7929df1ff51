"""Servers that fault tests own, start, kill and restart: never the machine's shared ones.

- :class:`RedisServer`: a private ``redis-server`` on a free loopback port, in memory only
  (``--save "" --appendonly no``), so a kill loses whatever it held, as a crash would.
- :class:`ApiServer`: ``recon serve`` (gunicorn) on a free port, with the given services.

The Celery worker is ``tests.conftest.WorkerProcess``. Fixtures stop what they started
in their teardown, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Self

import redis

from cli.services import free_port
from tests.conftest import REPO_ROOT

START_TIMEOUT = 30.0


def _wait_for(ready, process: subprocess.Popen, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if ready():
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start; its output:\n{log_path.read_text()}")


class RedisServer:
    """A ``redis-server`` of the test's own, without persistence, that can die and return."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.start()

    def url(self, database: int = 0) -> str:
        """The server's URL for ``database``."""
        return f"redis://127.0.0.1:{self.port}/{database}"

    def answers(self) -> bool:
        """True if the server answers PING."""
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> None:
        """Start (or start again) on the same port, empty, and wait until it answers."""
        log_path = self.directory / f"redis-{self.port}.log"
        argv = [
            "redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no",
            "--dir", str(self.directory), "--logfile", str(log_path),
        ]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            _wait_for(self.answers, self.process, "redis-server", log_path)
        except BaseException:
            self.stop()
            raise

    def kill(self) -> None:
        """SIGKILL the server: its connections drop and everything it held is lost."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        """Stop the server if it runs."""
        if self.process.poll() is None:
            self.kill()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class ApiServer:
    """``recon serve`` on a free loopback port, using ``database_url`` and ``redis_url``.

    ``threads`` above 1 serves with gthread workers: more requests truly at once;
    ``environment`` adds or overrides variables (settings) of the server.
    """

    def __init__(
        self,
        log_path: Path,
        *,
        database_url: str,
        redis_url: str,
        workers: int = 2,
        threads: int = 1,
        environment: dict[str, str] | None = None,
    ) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self._log = log_path.open("w")
        argv = [
            sys.executable, "-m", "cli", "serve",
            "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--threads", str(threads),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env={
                **os.environ,
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                **(environment or {}),
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        try:
            _wait_for(self._alive, self.process, "recon serve", log_path)
        except BaseException:
            self.stop()
            raise

    def _alive(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """SIGKILL gunicorn and its workers at once: the test is over, and a graceful (even
        a quick) shutdown of the master takes seconds."""
        with contextlib.suppress(ProcessLookupError):  # the whole group has exited already
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()
