"""Liveness and readiness probes, answered as JSON or problem+json."""

from __future__ import annotations

import pytest
from sqlalchemy import pool

from shared.platform.db import SessionFactory, make_engine
from tests.conftest import TEST_DATABASE_URL, database_url_named


def test_healthz_answers_without_touching_dependencies(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_reports_database_and_redis_ready(client, redis_client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_names_redis_when_it_is_unreachable(client, override_settings):
    override_settings(REDIS_URL="redis://127.0.0.1:1/0")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.json["checks"] == {"database": "ok", "redis": "unavailable"}
    assert "redis" in response.json["detail"]


@pytest.fixture
def unreachable_database(session):
    dead = make_engine(
        database_url_named("nowhere").replace("127.0.0.1:5432", "127.0.0.1:1"),
        poolclass=pool.NullPool,
        connect_args={"connect_timeout": 1},
    )
    bind = SessionFactory.kw["bind"]
    SessionFactory.configure(bind=dead)
    yield
    SessionFactory.configure(bind=bind)


def test_readyz_names_the_database_when_it_is_unreachable(client, unreachable_database):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"] == {"database": "unavailable", "redis": "ok"}
    assert response.json["detail"] == "unreachable: database"


def test_unknown_route_is_a_problem_document(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 404
    assert set(response.json) >= {"type", "title", "status", "detail"}


def test_wrong_method_is_a_problem_document_with_allow(client):
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"
    assert "GET" in response.headers["Allow"]


@pytest.fixture
def exhausted_pool(session):
    """Sessions bound to a real pool of one connection, which is checked out."""
    busy = make_engine(TEST_DATABASE_URL, pool_size=1, max_overflow=0, pool_timeout=0.2)
    held = busy.connect()
    bind = SessionFactory.kw["bind"]
    SessionFactory.configure(bind=busy)
    yield
    SessionFactory.configure(bind=bind)
    held.close()
    busy.dispose()


def test_an_exhausted_connection_pool_answers_503_to_retry(client, exhausted_pool):
    response = client.get(
        "/billing/reconciliation/discrepancies", headers={"Authorization": "Bearer rk_any"}
    )
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == "5"
    assert "busy" in response.json["detail"]
