"""The failure policy: transient errors propagate and are retried, others are recorded."""

from __future__ import annotations

import logging

import pytest
from celery import Celery
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from shared.models import Organization
from shared.platform import failures
from shared.platform.failures import (
    MAX_REASON_LENGTH,
    MAX_RETRIES,
    RETRY_BACKOFF_MAX_SECONDS,
    PolicyTask,
    contain,
    contain_in_savepoint,
    failure_reason,
    retry_delay,
)
from tests.platform.test_db import database_error

DEADLOCK = "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40P01'; END $$"
INDEX_ROW_TOO_BIG = "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '54000'; END $$"


def raising(error: BaseException):
    def work():
        raise error

    return work


def test_the_reason_names_the_error_and_is_bounded():
    assert failure_reason(ValueError("no amount")) == "ValueError: no amount"
    assert len(failure_reason(ValueError("x" * 5000))) == MAX_REASON_LENGTH


def test_contained_work_returns_its_result():
    assert contain(lambda: "done", record_failure=lambda error: "failed", crashed="x") == "done"


def test_a_poison_failure_is_logged_and_recorded(caplog):
    recorded: list[BaseException] = []
    error = RuntimeError("bug")

    def record(failure: BaseException) -> str:
        recorded.append(failure)
        return "failed"

    with caplog.at_level(logging.ERROR):
        assert contain(raising(error), record_failure=record, crashed="thing.crashed") == "failed"
    assert recorded == [error]
    assert "thing.crashed" in caplog.text


def test_a_data_dependent_database_error_is_recorded_not_retried(session):
    error = database_error(session, INDEX_ROW_TOO_BIG)
    recorded: list[BaseException] = []
    contain(raising(error), record_failure=recorded.append, crashed="thing.crashed")
    assert recorded == [error]


def test_a_transient_error_propagates_and_records_nothing(session):
    deadlock = database_error(session, DEADLOCK)
    recorded: list[BaseException] = []
    with pytest.raises(DBAPIError) as caught:
        contain(raising(deadlock), record_failure=recorded.append, crashed="thing.crashed")
    assert caught.value is deadlock
    assert recorded == []


def count_organizations(session) -> int:
    return session.scalar(select(func.count()).select_from(Organization))


def test_a_failure_in_a_savepoint_undoes_only_its_own_writes(session):
    session.add(Organization(name="kept"))
    session.flush()

    def poison() -> None:
        session.add(Organization(name="undone"))
        session.flush()
        raise RuntimeError("bug")

    assert (
        contain_in_savepoint(session, poison, record_failure=lambda e: "failed", crashed="x")
        == "failed"
    )
    assert session.scalars(select(Organization.name)).all() == ["kept"]


def test_the_retry_delay_grows_exponentially_with_full_jitter_up_to_the_maximum():
    for retries in range(10):
        bound = min(RETRY_BACKOFF_MAX_SECONDS, 2**retries)
        delays = {retry_delay(retries) for _ in range(200)}
        assert max(delays) <= bound
        assert len(delays) > 1 or bound <= 1


def policy_app() -> Celery:
    app = Celery("policy-test", set_as_current=False, task_cls=PolicyTask)
    app.conf.task_always_eager = True
    return app


def test_a_policy_task_retries_a_transient_error_with_the_backoff(session, monkeypatch):
    deadlock = database_error(session, DEADLOCK)
    waits: list[int] = []
    monkeypatch.setattr(failures, "retry_delay", lambda retries: waits.append(retries) or 0)
    calls: list[int] = []

    @policy_app().task(shared=False, retries_transient_errors=True)
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise deadlock
        return "done"

    assert flaky.apply().get() == "done"
    assert len(calls) == 3
    assert waits == [0, 1]  # the delay before retry n+1 grows with n


def test_a_policy_task_gives_up_after_the_maximum_retries(session, monkeypatch):
    deadlock = database_error(session, DEADLOCK)
    monkeypatch.setattr(failures, "retry_delay", lambda retries: 0)
    calls: list[int] = []

    @policy_app().task(shared=False, retries_transient_errors=True)
    def always_deadlocked() -> None:
        calls.append(1)
        raise deadlock

    result = always_deadlocked.apply()
    assert result.failed()
    assert len(calls) == 1 + MAX_RETRIES


def test_a_policy_task_never_retries_other_errors(session):
    limit = database_error(session, INDEX_ROW_TOO_BIG)
    calls: list[int] = []

    @policy_app().task(shared=False, retries_transient_errors=True)
    def poison() -> None:
        calls.append(1)
        raise limit

    assert poison.apply().failed()
    assert calls == [1]


def test_a_task_that_does_not_opt_in_is_not_retried(session):
    deadlock = database_error(session, DEADLOCK)
    calls: list[int] = []

    @policy_app().task(shared=False)
    def sweep() -> None:
        calls.append(1)
        raise deadlock

    assert sweep.apply().failed()
    assert calls == [1]
