"""Fixtures of the discrepancy tests: two organisations and a manager's key in the first."""

from __future__ import annotations

import pytest

from shared.access.api_keys import Caller, create_api_key
from tests.discrepancies.calls import auth
from tests.support.factories import make_org


@pytest.fixture
def org(session):
    return make_org(session)


@pytest.fixture
def other_org(session):
    return make_org(session)


@pytest.fixture
def manager(session, org):
    return create_api_key(session=session, org_id=org.id, role="manager", name="Ana (finance)")


@pytest.fixture
def headers(manager):
    return auth(manager.secret)


@pytest.fixture
def caller(manager, org):
    return Caller(
        actor=str(manager.api_key.id),
        actor_name=manager.api_key.name,
        org_id=org.id,
        role="manager",
    )
