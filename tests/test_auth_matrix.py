"""Every route that requires a key refuses the wrong ones, generated from the URL map.

A route joins this matrix by being declared with ``endpoint(roles=…)``, so a new route
cannot skip authentication without this test noticing its absence from the set below.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from api.app import create_app
from shared.api_keys import create_api_key
from tests.support.factories import make_org

IGNORED_METHODS = {"HEAD", "OPTIONS"}
# Routes under /billing that authenticate otherwise, each for a stated reason.
KEYLESS_BILLING_ROUTES = {
    "/billing/reconciliation/runs/daily",  # x-reconciliation-token, for the scheduler
}

APP = create_app()
RULES = {rule.rule: rule for rule in APP.url_map.iter_rules()}


def required_roles(rule) -> tuple[str, ...] | None:
    return getattr(APP.view_functions[rule.endpoint], "required_roles", None)


def protected_routes() -> list[tuple[str, str]]:
    """(method, rule) of every rule whose view declares the roles it requires."""
    return sorted(
        (method, rule.rule)
        for rule in APP.url_map.iter_rules()
        if required_roles(rule) is not None
        for method in (rule.methods or set()) - IGNORED_METHODS
    )


PROTECTED = protected_routes()


def concrete_path(rule: str) -> str:
    """The rule with every ``<converter:name>`` replaced by a random UUID."""
    values = {argument: str(uuid.uuid4()) for argument in RULES[rule].arguments}
    return RULES[rule].build(values, append_unknown=False)[1]


def test_every_billing_route_requires_a_key_unless_listed_as_keyless():
    unprotected = {
        rule.rule
        for rule in APP.url_map.iter_rules()
        if rule.rule.startswith("/billing/") and required_roles(rule) is None
    }
    assert unprotected <= KEYLESS_BILLING_ROUTES


def test_the_protected_set_includes_the_known_routes():
    protected = set(PROTECTED)
    discrepancy = "/billing/reconciliation/discrepancies/<uuid:discrepancy_id>"
    assert {
        ("GET", "/billing/reconciliation/discrepancies"),
        ("GET", discrepancy),
        ("PATCH", f"{discrepancy}/acknowledge"),
        ("PATCH", f"{discrepancy}/assign"),
        ("POST", f"{discrepancy}/notes"),
        ("PATCH", f"{discrepancy}/resolve"),
        ("GET", "/billing/webhooks/events"),
        ("POST", "/billing/payments"),
    } <= protected


@pytest.fixture
def keys(session):
    org = make_org(session)
    viewer = create_api_key(session=session, org_id=org.id, role="viewer").secret
    revoked = create_api_key(session=session, org_id=org.id, role="owner")
    revoked.api_key.revoked_at = datetime.now(UTC)
    session.flush()
    return {"viewer": viewer, "revoked": revoked.secret}


@pytest.mark.parametrize(("method", "rule"), PROTECTED)
def test_every_protected_route_refuses_missing_bad_revoked_and_viewer_keys(
    client, keys, method, rule
):
    path = concrete_path(rule)
    cases = {
        "missing": ({}, 401),
        "malformed": ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        "unknown": ({"Authorization": "Bearer rk_" + "x" * 43}, 401),
        "revoked": ({"Authorization": f"Bearer {keys['revoked']}"}, 401),
        "viewer": ({"Authorization": f"Bearer {keys['viewer']}"}, 403),
    }
    for name, (headers, expected) in cases.items():
        response = client.open(path, method=method, headers=headers, json={})
        assert response.status_code == expected, (name, method, rule)
        assert response.mimetype == "application/problem+json", (name, method, rule)
        if expected == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), (name, rule)
