"""The unit of work: one transaction, commit on success, rollback and no side effects on error."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from shared.db import after_commit, unit_of_work
from shared.models import Organization


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
