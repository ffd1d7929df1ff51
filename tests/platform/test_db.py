"""The unit of work: one transaction, commit on success, rollback and no side effects on error."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from shared.models import Organization
from shared.platform.db import after_commit, is_transient, make_engine, unit_of_work


def count_organizations(session) -> int:
    return session.scalar(select(func.count()).select_from(Organization))


def test_work_is_committed_when_the_block_ends(session):
    with unit_of_work() as work:
        work.add(Organization(name="Acme"))
    assert count_organizations(session) == 1


def test_work_is_rolled_back_when_the_block_raises(session):
    with pytest.raises(RuntimeError), unit_of_work() as work:
        work.add(Organization(name="Acme"))
        work.flush()
        raise RuntimeError("boom")
    assert count_organizations(session) == 0


def test_after_commit_callbacks_run_once_committed(session):
    calls = []
    with unit_of_work() as work:
        work.add(Organization(name="Acme"))
        after_commit(work, lambda: calls.append(count_organizations(session)))
        assert calls == []
    assert calls == [1]


def test_after_commit_callbacks_never_run_on_rollback(session):
    calls = []
    with pytest.raises(RuntimeError), unit_of_work() as work:
        after_commit(work, lambda: calls.append("sent"))
        raise RuntimeError("boom")
    with unit_of_work():
        pass
    assert calls == []


def database_error(session, sql: str) -> DBAPIError:
    """The error PostgreSQL really raises for ``sql`` (inside a savepoint)."""
    with pytest.raises(DBAPIError) as caught, session.begin_nested():
        session.execute(text(sql))
    return caught.value


def test_a_lost_connection_or_a_deadlock_is_transient(session):
    unreachable = make_engine("postgresql://postgres@127.0.0.1:1/none", pool_timeout=1)
    with pytest.raises(DBAPIError) as caught, unreachable.connect():
        pass
    assert is_transient(caught.value)
    deadlock = database_error(
        session, "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40P01'; END $$"
    )
    assert is_transient(deadlock)
    shutdown = database_error(
        session, "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '57P01'; END $$"
    )
    assert is_transient(shutdown)


def test_a_data_dependent_error_is_not_transient(session):
    assert not is_transient(database_error(session, "SELECT 1 / 0"))
    limit = database_error(session, "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '54000'; END $$")
    assert not is_transient(limit)
    assert not is_transient(RuntimeError("not a database error"))
