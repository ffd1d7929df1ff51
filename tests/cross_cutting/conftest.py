"""Fixtures of the cross-cutting hostile-input suites: a world of objects to aim at, and
``refused``, which checks a refusal changed and queued nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from shared.models import ReconciliationRun
from tests.support.checksums import database_checksum
from tests.support.factories import make_account, make_discrepancy, make_org
from tests.support.hostile import World, assert_problem, bearer

TODAY = datetime.now(UTC).date()


@pytest.fixture
def refused(session, published_tasks) -> Callable:
    """``refused(send, status)``: the answer is that problem, and nothing changed or queued."""

    def check(send: Callable[[], object], status: int) -> dict:
        session.flush()
        before = database_checksum(session)
        problem = assert_problem(send(), status)
        assert database_checksum(session) == before, "the database changed"
        assert published_tasks == []
        return problem

    return check


@pytest.fixture
def world(session) -> World:
    org, other = make_org(session), make_org(session)
    run = ReconciliationRun(
        org_id=org.id,
        period_start=TODAY - timedelta(days=1),
        period_end=TODAY - timedelta(days=1),
        status="completed",
        triggered_by="api",
        report_json={"matched_percent": 100},
        report_markdown="# report",
    )
    session.add(run)
    world = World(
        headers=bearer(session, org),
        accounts={
            provider: make_account(session, org, provider)
            for provider in ("stripe", "adyen", "standard")
        },
        discrepancy=make_discrepancy(session, org),
        other_discrepancy=make_discrepancy(session, other),
        run=run,
    )
    session.flush()
    return world
