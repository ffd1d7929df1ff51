"""Every route that requires a key refuses the wrong ones, generated from the URL map.

A route joins this matrix by being declared with ``endpoint(roles=…)``, so a new route
cannot skip authentication without this test noticing its absence from the set below.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func

from api.app import create_app
from shared.access.api_keys import create_api_key
from shared.models import ReconciliationRun
from tests.bank.payouts import import_rows
from tests.support.checksums import database_checksum
from tests.support.factories import (
    make_account,
    make_discrepancy,
    make_event,
    make_org,
    make_payment,
    make_settlement_payout,
)

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
        ("GET", "/billing/reconciliation/discrepancies/summary"),
        ("POST", "/billing/reconciliation/discrepancies/bulk"),
        ("GET", discrepancy),
        ("PATCH", f"{discrepancy}/acknowledge"),
        ("PATCH", f"{discrepancy}/assign"),
        ("POST", f"{discrepancy}/notes"),
        ("PATCH", f"{discrepancy}/resolve"),
        ("GET", "/billing/webhooks/events"),
        ("POST", "/billing/payments"),
        ("GET", "/billing/settings"),
        ("PATCH", "/billing/settings"),
        ("GET", "/billing/settings/history"),
        ("GET", "/billing/provider-accounts"),
        ("POST", "/billing/provider-accounts"),
        ("PATCH", "/billing/provider-accounts/<uuid:account_id>"),
        ("POST", "/billing/settlements/files"),
        ("GET", "/billing/settlements/files"),
        ("GET", "/billing/settlements/files/<uuid:file_id>/original"),
        ("GET", "/billing/settlements/payouts"),
        ("GET", "/billing/settlements/payouts/<uuid:payout_id>"),
        ("POST", "/billing/bank/statements"),
        ("GET", "/billing/bank/accounts"),
        ("GET", "/billing/bank/entries"),
        ("GET", "/billing/reconciliation/runs/<uuid:run_id>/items"),
        ("GET", "/billing/payments/<uuid:payment_id>/matches"),
        ("PATCH", "/billing/bank/accounts/<uuid:bank_account_id>"),
        ("GET", "/billing/bank/payouts"),
        ("GET", "/billing/bank/payouts/<uuid:payout_id>"),
        ("POST", "/billing/bank/payouts/<uuid:payout_id>/link"),
        ("POST", "/billing/bank/payouts/<uuid:payout_id>/unlink"),
    } <= protected


# Read-only evidence routes and summaries a viewer key may call; every other route refuses it.
VIEWER_READABLE = {
    ("GET", "/billing/reconciliation/runs/<uuid:run_id>/items"),
    ("GET", "/billing/payments/<uuid:payment_id>/matches"),
    ("GET", "/billing/reconciliation/discrepancies/summary"),
}


def test_a_viewer_may_call_exactly_the_routes_that_allow_viewers():
    allowing = {(method, rule) for method, rule in PROTECTED
                if "viewer" in required_roles(RULES[rule])}  # fmt: skip
    assert allowing == VIEWER_READABLE


OWNER_ONLY = [
    ("PATCH", "/billing/settings"),
    ("GET", "/billing/provider-accounts"),
    ("POST", "/billing/provider-accounts"),
    ("PATCH", "/billing/provider-accounts/<uuid:account_id>"),
]


@pytest.mark.parametrize(("method", "rule"), OWNER_ONLY)
def test_owner_only_routes_refuse_a_manager_and_change_nothing(client, session, method, rule):
    org = make_org(session)
    manager = create_api_key(session=session, org_id=org.id, role="manager").secret
    before = database_checksum(session)
    response = client.open(
        concrete_path(rule), method=method, headers={"Authorization": f"Bearer {manager}"}, json={}
    )
    assert response.status_code == 403, (method, rule)
    assert response.mimetype == "application/problem+json"
    assert database_checksum(session) == before


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
    if (method, rule) in VIEWER_READABLE:
        # A random id is not found; a route without one (a summary) answers.
        allowed = 404 if RULES[rule].arguments else 200
        cases["viewer"] = ({"Authorization": f"Bearer {keys['viewer']}"}, allowed)
    for name, (headers, expected) in cases.items():
        response = client.open(path, method=method, headers=headers, json={})
        assert response.status_code == expected, (name, method, rule)
        if expected == 200:
            continue
        assert response.mimetype == "application/problem+json", (name, method, rule)
        if expected == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), (name, rule)


# --- malformed credentials and other organisations' objects ------------------------------

# Each is refused whatever key it carries: ``{key}`` is a valid owner key, so only the
# header's form is wrong.
MALFORMED_AUTHORIZATION = {
    "no-scheme": "{key}",
    "basic": "Basic {key}",
    "token-scheme": "Token {key}",
    "bearer-alone": "Bearer",
    "bearer-and-space": "Bearer ",
    "two-spaces-unknown-key": "Bearer  rk_" + "y" * 43,
    "key-then-text": "Bearer {key} extra",
    "two-keys": "Bearer {key}, Bearer {key}",
    "non-ascii": "Bearer rk_\u00e9\u00e8\u00ea\u00eb",
    "ten-kilobytes": "Bearer rk_" + "k" * 10_240,
    "sql": "Bearer rk_' OR '1'='1",
}


@pytest.fixture
def owner_key(session):
    org = make_org(session)
    issued = create_api_key(session=session, org_id=org.id, role="owner")
    issued.api_key.last_used_at = func.now()  # so authenticating writes nothing either
    session.flush()
    return issued.secret


@pytest.mark.parametrize(("method", "rule"), PROTECTED)
def test_every_protected_route_refuses_malformed_authorization_and_changes_nothing(
    client, session, owner_key, method, rule
):
    path = concrete_path(rule)
    before = database_checksum(session)
    for name, template in MALFORMED_AUTHORIZATION.items():
        headers = {"Authorization": template.format(key=owner_key)}
        response = client.open(path, method=method, headers=headers, json={})
        assert response.status_code == 401, (name, method, rule)
        assert response.mimetype == "application/problem+json", (name, method, rule)
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), (name, rule)
        assert response.json["detail"], (name, rule)
    assert database_checksum(session) == before


@pytest.mark.parametrize("authorization", ["bearer {key}", "BEARER {key}", "Bearer  {key}"])
def test_the_bearer_scheme_is_case_insensitive_and_allows_more_than_one_space(
    client, owner_key, authorization
):
    """RFC 6750: ``"Bearer" 1*SP b64token``, and RFC 9110: schemes are case-insensitive."""
    headers = {"Authorization": authorization.format(key=owner_key)}
    assert client.get("/billing/reconciliation/runs", headers=headers).status_code == 200


@pytest.fixture
def foreign_objects(session) -> dict[str, uuid.UUID]:
    """One object of each kind a route names by id, all in an organisation not the caller's."""
    org = make_org(session)
    account = make_account(session, org)
    event = make_event(session, account)
    discrepancy = make_discrepancy(session, org)
    run = ReconciliationRun(
        org_id=org.id,
        period_start=date(2026, 11, 1),
        period_end=date(2026, 11, 1),
        status="completed",
        triggered_by="api",
        report_json={},
        report_markdown="",
    )
    session.add(run)
    payout = make_settlement_payout(session, org)
    payment = make_payment(session, org)
    bank_account = import_rows(session, org, [(date(2026, 3, 2), 100, "A", "B", "C")])
    session.flush()
    return {
        "payment_id": payment.id,
        "bank_account_id": bank_account.statements[0].account.id,
        "discrepancy_id": discrepancy.id,
        "run_id": run.id,
        "event_id": event.id,
        "account_id": account.id,
        "file_id": payout.file_id,
        "payout_id": payout.id,
    }


# A body each action would accept, so that only the object's organisation is wrong.
VALID_BODIES = {
    "assign": {"assignee": "mallory"},
    "notes": {"note": "seen"},
    "resolve": {"resolution": "other", "reason": "not ours"},
    "<uuid:account_id>": {"active": False},
    "<uuid:bank_account_id>": {"name": "Treasury"},
    "link": {"entry_id": str(uuid.uuid4()), "reason": "seen on the statement"},
    "unlink": {"reason": "another transfer"},
}
ROUTES_WITH_IDS = [(method, rule) for method, rule in PROTECTED if RULES[rule].arguments]


@pytest.mark.parametrize(("method", "rule"), ROUTES_WITH_IDS)
def test_another_organisations_object_is_404_on_every_route_and_nothing_changes(
    client, session, owner_key, foreign_objects, method, rule
):
    values = {argument: str(foreign_objects[argument]) for argument in RULES[rule].arguments}
    path = RULES[rule].build(values, append_unknown=False)[1]
    before = database_checksum(session)
    body = VALID_BODIES.get(rule.rsplit("/", 1)[-1])
    response = client.open(
        path, method=method, headers={"Authorization": f"Bearer {owner_key}"}, json=body
    )
    assert response.status_code == 404, (method, rule, response.json)
    assert response.mimetype == "application/problem+json"
    assert database_checksum(session) == before


# --- the console: every page for every role ------------------------------------------------

# Console pages anyone may open: signing in and out, setting a password, the stylesheet.
PUBLIC_CONSOLE_ENDPOINTS = {
    "console.login",
    "console.login_submit",
    "console.logout",
    "console.set_password_page",
    "console.set_password_submit",
    "console.static",
}


def console_roles(rule) -> tuple[str, ...] | None:
    return getattr(APP.view_functions[rule.endpoint], "console_roles", None)


CONSOLE_PAGES = sorted(
    (method, rule.rule, console_roles(rule))
    for rule in APP.url_map.iter_rules()
    if rule.endpoint.startswith("console.") and console_roles(rule) is not None
    for method in (rule.methods or set()) - IGNORED_METHODS
)


def test_every_console_page_declares_its_roles_unless_public():
    undeclared = {
        rule.endpoint
        for rule in APP.url_map.iter_rules()
        if rule.endpoint.startswith("console.") and console_roles(rule) is None
    }
    assert undeclared == PUBLIC_CONSOLE_ENDPOINTS
    assert {(method, rule) for method, rule, _ in CONSOLE_PAGES} >= {
        ("GET", "/console/"),
        ("GET", "/console/queue.csv"),
        ("GET", "/console/discrepancies/<uuid:discrepancy_id>"),
        ("POST", "/console/discrepancies/<uuid:discrepancy_id>/acknowledge"),
        ("POST", "/console/discrepancies/<uuid:discrepancy_id>/assign"),
        ("POST", "/console/discrepancies/<uuid:discrepancy_id>/notes"),
        ("POST", "/console/discrepancies/<uuid:discrepancy_id>/resolve"),
        ("POST", "/console/bulk"),
        ("GET", "/console/runs"),
        ("POST", "/console/runs"),
        ("GET", "/console/runs/<uuid:run_id>"),
        ("GET", "/console/events"),
        ("POST", "/console/events/<uuid:event_id>/replay"),
        ("GET", "/console/settlements"),
        ("POST", "/console/settlements"),
        ("GET", "/console/settlements/<uuid:file_id>/original"),
        ("GET", "/console/payouts"),
        ("GET", "/console/payouts/<uuid:payout_id>"),
        ("POST", "/console/payouts/<uuid:payout_id>/link"),
        ("POST", "/console/payouts/<uuid:payout_id>/unlink"),
        ("GET", "/console/bank"),
        ("POST", "/console/bank"),
        ("GET", "/console/settings"),
        ("POST", "/console/settings"),
        ("GET", "/console/provider-accounts"),
        ("POST", "/console/provider-accounts"),
        ("GET", "/console/provider-accounts/<uuid:account_id>"),
        ("POST", "/console/provider-accounts/<uuid:account_id>"),
        ("POST", "/console/provider-accounts/<uuid:account_id>/secrets"),
        ("POST", "/console/provider-accounts/<uuid:account_id>/secrets/retire"),
        ("GET", "/console/people"),
        ("POST", "/console/people"),
        ("POST", "/console/people/password-link"),
        ("POST", "/console/people/disable"),
    }


@pytest.mark.parametrize(("method", "rule", "roles"), CONSOLE_PAGES)
def test_every_console_page_for_every_role(client, session, method, rule, roles):
    from tests.console.conftest import csrf_of, sign_in
    from tests.support.people import make_person

    org = make_org(session)
    discrepancy = make_discrepancy(session, org)
    payout = make_settlement_payout(session, org)
    people = {role: make_person(session, org, role=role) for role in ("viewer", "manager", "owner")}
    # The organisation's own objects where the page takes one of these, so that an allowed
    # role sees the page itself; any other id is a random one (its 404 page).
    ids = {"discrepancy_id": discrepancy.id, "payout_id": payout.id, "file_id": payout.file_id}
    values = {argument: str(ids.get(argument, uuid.uuid4())) for argument in RULES[rule].arguments}
    path = RULES[rule].build(values, append_unknown=False)[1]
    before = database_checksum(session)
    signed_out = client.open(path, method=method)
    assert signed_out.status_code in (303, 403), (method, rule)  # sign in, or no CSRF token
    for role, person in people.items():
        assert sign_in(client, person.email).status_code == 303
        token = csrf_of(client.get("/console/").text)
        # A well-formed change (its CSRF token), so that only the role decides; the forms'
        # own fields are left out, so nothing is changed.
        response = client.open(path, method=method, data={"csrf_token": token})
        response.close()
        if role in roles:
            assert response.status_code not in (303, 401, 403), (role, method, rule)
        else:
            assert response.status_code == 403, (role, method, rule)
            assert response.mimetype == "text/html"
    assert database_checksum(session) == before
