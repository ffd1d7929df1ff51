"""Liveness and readiness checks of the service's dependencies."""

from __future__ import annotations

import redis
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shared.platform.db import unit_of_work
from shared.platform.settings import get_settings


def check_database(*, session: Session) -> None:
    """Raise if the database does not answer a trivial query."""
    session.execute(text("SELECT 1"))


def check_redis(url: str | None = None) -> None:
    """Raise if Redis does not answer PING within two seconds."""
    client = redis.Redis.from_url(
        url or get_settings().redis_url, socket_connect_timeout=2, socket_timeout=2
    )
    try:
        client.ping()
    finally:
        client.close()


def readiness() -> dict[str, str]:
    """``{"database": "ok"|"unavailable", "redis": "ok"|"unavailable"}``."""
    status = {}
    try:
        with unit_of_work() as session:
            check_database(session=session)
        status["database"] = "ok"
    except SQLAlchemyError:
        status["database"] = "unavailable"
    try:
        check_redis()
        status["redis"] = "ok"
    except redis.RedisError:
        status["redis"] = "unavailable"
    return status
