"""Triage of discrepancies: the workflow, its trail, listing, CSV export, over real HTTP."""

from __future__ import annotations

import csv
import hashlib
import io
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from api.routes.discrepancies import CSV_COLUMNS
from shared.access.api_keys import Caller, create_api_key
from shared.models import (
    ProviderRecord,
    ReconciliationActionLog,
    ReconciliationDiscrepancy,
    ReconciliationItem,
    ReconciliationRun,
)
from shared.platform.db import unit_of_work
from shared.platform.errors import InvalidTransition, NotFound, PreconditionFailed, ValidationFailed
from shared.platform.pagination import InvalidCursor, encode_cursor
from shared.triage.workflow import (
    MAX_NOTE_LENGTH,
    MAX_REASON_LENGTH,
    RESOLUTION_CODES,
    DiscrepancyFilters,
    acknowledge,
    add_note,
    assign,
    get_discrepancy,
    iter_discrepancies,
    list_discrepancies,
    resolve,
)
from tests.support import factories
from tests.support.factories import make_org

BASE = "/billing/reconciliation/discrepancies"
BASE_TIME = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RESOLVE_BODY = {"resolution": "timing_difference", "reason": "settled the next day"}


# --- fixtures and helpers -------------------------------------------------------------


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
        key_id=manager.api_key.id, key_name=manager.api_key.name, org_id=org.id, role="manager"
    )


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def make_record(session, org, **fields) -> ProviderRecord:
    values = {
        "org_id": org.id,
        "provider": "stripe",
        "provider_reference": f"pi_{uuid.uuid4().hex[:10]}",
        "amount_minor": 2500,
        "currency": "EUR",
        "status": "succeeded",
        "occurred_at": BASE_TIME,
        "last_event_at": BASE_TIME,
    } | fields
    record = ProviderRecord(**values)
    session.add(record)
    session.flush()
    return record


def make_discrepancy(session, org, *, with_record=False, **fields) -> ReconciliationDiscrepancy:
    """An open AmountMismatch (optionally with a provider record), opened at BASE_TIME."""
    record = make_record(session, org) if with_record else None
    values = {
        "type": "AmountMismatch",
        "severity": "high",
        "status": "open",
        "provider_record_id": record.id if record else None,
        "amount_minor": 2500,
        "currency": "EUR",
        "difference_minor": -100,
        "opened_at": BASE_TIME,
    } | fields
    return factories.make_discrepancy(session, org, **values)


def in_state(session, org, status: str) -> ReconciliationDiscrepancy:
    """A discrepancy that reached ``status`` the normal way (timestamps set)."""
    fields: dict = {"status": status}
    if status in ("acknowledged", "resolved"):
        fields["acknowledged_at"] = BASE_TIME
    if status == "resolved":
        fields |= {"resolved_at": BASE_TIME, "resolution": "other", "resolution_reason": "x"}
    return make_discrepancy(session, org, **fields)


def actions_of(session, discrepancy) -> list[ReconciliationActionLog]:
    return list(
        session.scalars(
            select(ReconciliationActionLog)
            .where(ReconciliationActionLog.discrepancy_id == discrepancy.id)
            .order_by(ReconciliationActionLog.created_at)
        )
    )


def reload(session, discrepancy) -> ReconciliationDiscrepancy:
    session.expire_all()
    return session.get(ReconciliationDiscrepancy, discrepancy.id)


def payments_checksum(session) -> str:
    rows = session.execute(text("SELECT payments::text FROM payments ORDER BY id")).scalars()
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


# --- the state machine, over HTTP -----------------------------------------------------

ACTIONS = {
    "acknowledge": ("patch", "acknowledge", None, "acknowledged", {}),
    "assign": ("patch", "assign", {"assignee": "bo"}, "assigned", {"assignee": "bo"}),
    "note": ("post", "notes", {"note": "called Stripe"}, "note_added", {"note": "called Stripe"}),
    "resolve": (
        "patch",
        "resolve",
        {**RESOLVE_BODY, "adjustment_reference": "ADJ-7"},
        "resolved",
        {**RESOLVE_BODY, "adjustment_reference": "ADJ-7"},
    ),
}

# (current status, action, status afterwards or None when refused with 409)
TRANSITIONS = [
    ("open", "acknowledge", "acknowledged"),
    ("open", "assign", "open"),
    ("open", "note", "open"),
    ("open", "resolve", "resolved"),
    ("acknowledged", "acknowledge", None),
    ("acknowledged", "assign", "acknowledged"),
    ("acknowledged", "note", "acknowledged"),
    ("acknowledged", "resolve", "resolved"),
    ("resolved", "acknowledge", None),
    ("resolved", "assign", None),
    ("resolved", "note", None),
    ("resolved", "resolve", None),
]


def act(client, discrepancy_id, action: str, headers: dict, body=None):
    method, suffix, default_body, _, _ = ACTIONS[action]
    return getattr(client, method)(
        f"{BASE}/{discrepancy_id}/{suffix}",
        json=default_body if body is None else body,
        headers=headers,
    )


@pytest.mark.parametrize(("status", "action", "after"), TRANSITIONS)
def test_each_action_moves_or_refuses_by_the_state_machine(
    client, session, org, headers, manager, status, action, after
):
    discrepancy = in_state(session, org, status)
    entries_before = len(actions_of(session, discrepancy))
    response = act(client, discrepancy.id, action, headers)
    current = reload(session, discrepancy)
    entries = actions_of(session, current)
    if after is None:
        assert response.status_code == 409
        assert response.mimetype == "application/problem+json"
        assert response.json["current_status"] == status
        assert status in response.json["detail"]
        assert current.version == 1
        assert len(entries) == entries_before
        return
    assert response.status_code == (201 if action == "note" else 200)
    assert response.json["status"] == after == current.status
    assert response.json["version"] == 2 == current.version
    assert response.headers["ETag"] == '"2"'
    assert len(entries) == entries_before + 1
    _, _, _, logged_action, payload = ACTIONS[action]
    entry = entries[-1]
    assert entry.action == logged_action
    assert entry.actor == str(manager.api_key.id)
    assert entry.actor_name == "Ana (finance)"
    assert payload.items() <= entry.payload.items()


def test_acknowledging_stamps_acknowledged_at_and_resolving_stamps_resolved_at(
    client, session, org, headers
):
    discrepancy = make_discrepancy(session, org)
    acknowledged = act(client, discrepancy.id, "acknowledge", headers).json
    assert acknowledged["acknowledged_at"] is not None
    assert acknowledged["resolved_at"] is None
    resolved = act(client, discrepancy.id, "resolve", headers).json
    assert resolved["resolved_at"] is not None
    assert resolved["resolution"] == "timing_difference"
    assert resolved["acknowledged_at"] == acknowledged["acknowledged_at"]
    current = reload(session, discrepancy)
    assert current.resolution_reason == "settled the next day"
    assert current.adjustment_reference == "ADJ-7"


def test_every_change_bumps_the_version_and_logs_one_entry(client, session, org, headers):
    discrepancy = make_discrepancy(session, org)
    steps = ["assign", "note", "acknowledge", "note", "assign", "resolve"]
    for number, action in enumerate(steps, start=2):
        response = act(client, discrepancy.id, action, headers)
        assert response.json["version"] == number
    logged = [entry.action for entry in actions_of(session, discrepancy)]
    assert logged == [
        "opened",
        "assigned",
        "note_added",
        "acknowledged",
        "note_added",
        "assigned",
        "resolved",
    ]


def test_triage_never_changes_a_payment(client, session, org, headers):
    discrepancy = make_discrepancy(session, org, with_record=True)
    before = payments_checksum(session)
    for action in ("assign", "note", "acknowledge", "resolve"):
        assert act(client, discrepancy.id, action, headers).status_code in (200, 201)
    assert payments_checksum(session) == before


# --- If-Match -------------------------------------------------------------------------


@pytest.mark.parametrize("if_match", ['"1"', "1", "*"])
def test_a_matching_if_match_is_accepted(client, session, org, headers, if_match):
    discrepancy = make_discrepancy(session, org)
    response = act(client, discrepancy.id, "acknowledge", {**headers, "If-Match": if_match})
    assert response.status_code == 200
    assert response.headers["ETag"] == '"2"'


@pytest.mark.parametrize("action", list(ACTIONS))
def test_a_stale_if_match_is_412_naming_the_current_version(client, session, org, headers, action):
    discrepancy = make_discrepancy(session, org)
    assert act(client, discrepancy.id, "note", headers).status_code == 201
    response = act(client, discrepancy.id, action, {**headers, "If-Match": '"1"'})
    assert response.status_code == 412
    assert response.mimetype == "application/problem+json"
    assert response.json["current_version"] == 2
    assert "version 2" in response.json["detail"]
    assert reload(session, discrepancy).version == 2
    assert len(actions_of(session, discrepancy)) == 2


@pytest.mark.parametrize("if_match", ["abc", 'W/"1"', '"1', "-1", "1, 2", "1.0", "²", ""])
def test_a_malformed_if_match_is_400(client, session, org, headers, if_match):
    discrepancy = make_discrepancy(session, org)
    response = act(client, discrepancy.id, "acknowledge", {**headers, "If-Match": if_match})
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert reload(session, discrepancy).status == "open"


def test_the_detail_etag_is_the_version_to_send_back(client, session, org, headers):
    discrepancy = make_discrepancy(session, org)
    etag = client.get(f"{BASE}/{discrepancy.id}", headers=headers).headers["ETag"]
    assert etag == '"1"'
    response = act(client, discrepancy.id, "acknowledge", {**headers, "If-Match": etag})
    assert response.status_code == 200


# --- input validation -----------------------------------------------------------------

INVALID_INPUTS = [
    ("resolve", {"resolution": "auto_resolved", "reason": "x"}),
    ("resolve", {"resolution": "bogus", "reason": "x"}),
    ("resolve", {"resolution": "other", "reason": "   "}),
    ("resolve", {"resolution": "other", "reason": ""}),
    ("resolve", {"resolution": "other"}),
    ("resolve", {"resolution": "other", "reason": "x" * (MAX_REASON_LENGTH + 1)}),
    ("resolve", {"resolution": "other", "reason": "x", "adjustment_reference": " "}),
    ("resolve", {"resolution": "other", "reason": "x", "extra": 1}),
    ("note", {"note": ""}),
    ("note", {"note": "x" * (MAX_NOTE_LENGTH + 1)}),
    ("note", {"note": 5}),
    ("assign", {"assignee": ""}),
    ("assign", {"assignee": " \t"}),
    ("assign", {"assignee": "x" * 256}),
    ("assign", {"assignee": None}),
    ("assign", {}),
]


@pytest.mark.parametrize(("action", "body"), INVALID_INPUTS)
def test_invalid_input_is_422_and_changes_nothing(client, session, org, headers, action, body):
    discrepancy = make_discrepancy(session, org)
    response = act(client, discrepancy.id, action, headers, body=body)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    current = reload(session, discrepancy)
    assert (current.status, current.version) == ("open", 1)
    assert len(actions_of(session, discrepancy)) == 1


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("resolve", {"resolution": "other", "reason": "a\x00b"}),
        ("note", {"note": "\x00"}),
        ("assign", {"assignee": "bo\x00"}),
    ],
)
def test_nul_characters_are_refused_at_the_door(client, session, org, headers, action, body):
    discrepancy = make_discrepancy(session, org)
    response = act(client, discrepancy.id, action, headers, body=body)
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert reload(session, discrepancy).version == 1


@pytest.mark.parametrize(
    ("action", "field"),
    [(assign, "assignee"), (add_note, "note"), (resolve, "reason")],
)
def test_the_domain_refuses_nul_characters_itself(session, org, caller, action, field):
    discrepancy = make_discrepancy(session, org)
    arguments = {"resolution": "other", "reason": "ok"} if action is resolve else {}
    with pytest.raises(ValidationFailed, match="NUL"):
        action(
            session=session,
            caller=caller,
            discrepancy_id=discrepancy.id,
            **(arguments | {field: "a\x00b"}),
        )


def test_a_body_that_is_not_json_is_refused(client, session, org, headers):
    discrepancy = make_discrepancy(session, org)
    url = f"{BASE}/{discrepancy.id}/resolve"
    assert client.patch(url, data="{", headers=headers).status_code == 415
    garbled = client.patch(url, data="{", headers=headers, content_type="application/json")
    assert garbled.status_code == 400


def test_every_documented_resolution_code_resolves(session, org, caller):
    for code in RESOLUTION_CODES:
        discrepancy = make_discrepancy(session, org)
        view = resolve(
            session=session,
            caller=caller,
            discrepancy_id=discrepancy.id,
            resolution=code,
            reason="checked",
        )
        assert (view.status, view.resolution) == ("resolved", code)


def test_text_is_stored_stripped(session, org, caller):
    discrepancy = make_discrepancy(session, org)
    assign(session=session, caller=caller, discrepancy_id=discrepancy.id, assignee="  bo ")
    resolve(
        session=session,
        caller=caller,
        discrepancy_id=discrepancy.id,
        resolution="other",
        reason="\n reason \n",
    )
    current = reload(session, discrepancy)
    assert (current.assignee, current.resolution_reason) == ("bo", "reason")


# --- the domain directly --------------------------------------------------------------


def test_domain_actions_raise_typed_errors(session, org, other_org, caller):
    discrepancy = make_discrepancy(session, org)
    foreign = make_discrepancy(session, other_org)
    with pytest.raises(NotFound):
        acknowledge(session=session, caller=caller, discrepancy_id=foreign.id)
    with pytest.raises(PreconditionFailed):
        acknowledge(
            session=session, caller=caller, discrepancy_id=discrepancy.id, expected_version=7
        )
    acknowledge(session=session, caller=caller, discrepancy_id=discrepancy.id, expected_version=1)
    with pytest.raises(InvalidTransition, match="acknowledged"):
        acknowledge(session=session, caller=caller, discrepancy_id=discrepancy.id)
    with pytest.raises(ValidationFailed, match="system"):
        resolve(
            session=session,
            caller=caller,
            discrepancy_id=discrepancy.id,
            resolution="auto_resolved",
            reason="x",
        )
    with pytest.raises(ValidationFailed):
        add_note(session=session, caller=caller, discrepancy_id=discrepancy.id, note=" ")


def test_get_discrepancy_of_another_organisation_is_not_found(session, org, other_org):
    foreign = make_discrepancy(session, other_org)
    with pytest.raises(NotFound):
        get_discrepancy(session=session, org_id=org.id, discrepancy_id=foreign.id)


def test_a_cursor_of_one_sort_is_refused_by_the_other(session, org):
    for _ in range(3):
        make_discrepancy(session, org)
    page = list_discrepancies(
        session=session, org_id=org.id, filters=DiscrepancyFilters(), sort="amount", limit=1
    )
    with pytest.raises(InvalidCursor):
        list_discrepancies(
            session=session,
            org_id=org.id,
            filters=DiscrepancyFilters(),
            sort="opened_at",
            cursor=page.next_cursor,
            limit=1,
        )


def test_the_export_iterator_yields_the_whole_filtered_list_in_order(session, org):
    made = [
        make_discrepancy(session, org, opened_at=BASE_TIME + timedelta(seconds=index))
        for index in range(7)
    ]
    make_discrepancy(session, org, severity="low")
    rows = iter_discrepancies(
        session=session,
        org_id=org.id,
        filters=DiscrepancyFilters(severity="high"),
        batch_size=3,
    )
    assert [view.id for view in rows] == [d.id for d in reversed(made)]


# --- detail ---------------------------------------------------------------------------


def test_the_detail_has_subjects_items_and_the_action_log_oldest_first(
    client, session, org, headers, manager
):
    discrepancy = make_discrepancy(session, org, with_record=True)
    mine = ReconciliationItem(
        org_id=org.id,
        payment_id=discrepancy.payment_id,
        provider_record_id=discrepancy.provider_record_id,
        outcome="mismatched",
        match_method="provider_reference",
        amount_difference_minor=-100,
    )
    unrelated = make_discrepancy(session, org)
    theirs = ReconciliationItem(
        org_id=org.id, payment_id=unrelated.payment_id, outcome="missing_provider"
    )
    session.add_all([mine, theirs])
    session.flush()
    act(client, discrepancy.id, "acknowledge", headers)
    act(client, discrepancy.id, "note", headers)

    response = client.get(f"{BASE}/{discrepancy.id}", headers=headers)
    assert response.status_code == 200
    body = response.json
    record = session.get(ProviderRecord, discrepancy.provider_record_id)
    assert body["payment"]["id"] == str(discrepancy.payment_id)
    assert body["payment"]["external_id"].startswith("inv_")
    assert body["provider_record"] == {
        "id": str(record.id),
        "provider": "stripe",
        "provider_reference": record.provider_reference,
    }
    assert [item["id"] for item in body["items"]] == [str(mine.id)]
    assert body["items"][0]["outcome"] == "mismatched"
    assert [entry["action"] for entry in body["actions"]] == [
        "opened",
        "acknowledged",
        "note_added",
    ]
    assert body["actions"][0]["actor"] == "system"
    assert body["actions"][2] == {
        "action": "note_added",
        "actor": str(manager.api_key.id),
        "actor_name": "Ana (finance)",
        "payload": {"note": "called Stripe"},
        "created_at": body["actions"][2]["created_at"],
    }
    assert set(body) == DISCREPANCY_FIELDS | {"items", "actions"}


DISCREPANCY_FIELDS = {
    "id",
    "type",
    "severity",
    "status",
    "payment",
    "provider_record",
    "amount_minor",
    "currency",
    "difference_minor",
    "assignee",
    "resolution",
    "version",
    "opened_at",
    "acknowledged_at",
    "resolved_at",
}


def test_a_discrepancy_without_a_payment_shows_null(client, session, org, headers):
    record = make_record(session, org)
    discrepancy = make_discrepancy(
        session, org, type="MissingInternalRecord", payment_id=None, provider_record_id=record.id
    )
    body = client.get(f"{BASE}/{discrepancy.id}", headers=headers).json
    assert body["payment"] is None
    assert body["provider_record"]["id"] == str(record.id)


# --- organisation isolation and auth --------------------------------------------------

ROUTES = [
    ("get", "", None),
    ("patch", "/acknowledge", None),
    ("patch", "/assign", {"assignee": "bo"}),
    ("post", "/notes", {"note": "n"}),
    ("patch", "/resolve", RESOLVE_BODY),
]


@pytest.mark.parametrize(("method", "suffix", "body"), ROUTES)
def test_another_organisations_discrepancy_is_404_on_every_route(
    client, session, other_org, headers, method, suffix, body
):
    foreign = make_discrepancy(session, other_org)
    response = getattr(client, method)(f"{BASE}/{foreign.id}{suffix}", json=body, headers=headers)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert reload(session, foreign).version == 1
    assert len(actions_of(session, foreign)) == 1


@pytest.mark.parametrize(("method", "suffix", "body"), ROUTES)
def test_an_unknown_discrepancy_is_404(client, headers, method, suffix, body):
    response = getattr(client, method)(f"{BASE}/{uuid.uuid4()}{suffix}", json=body, headers=headers)
    assert response.status_code == 404


def test_another_organisations_discrepancies_are_not_listed(
    client, session, org, other_org, headers
):
    mine = make_discrepancy(session, org)
    make_discrepancy(session, other_org)
    assert [item["id"] for item in client.get(BASE, headers=headers).json["items"]] == [
        str(mine.id)
    ]
    export = client.get(BASE, headers={**headers, "Accept": "text/csv"}).text
    assert len(list(csv.DictReader(io.StringIO(export)))) == 1


@pytest.mark.parametrize(("method", "suffix", "body"), ROUTES)
def test_a_viewer_is_403_and_no_key_is_401(client, session, org, method, suffix, body):
    discrepancy = make_discrepancy(session, org)
    viewer = create_api_key(session=session, org_id=org.id, role="viewer").secret
    url = f"{BASE}/{discrepancy.id}{suffix}"
    assert getattr(client, method)(url, json=body, headers=auth(viewer)).status_code == 403
    assert getattr(client, method)(url, json=body).status_code == 401
    assert reload(session, discrepancy).version == 1


@pytest.mark.parametrize("role", ["owner", "manager"])
def test_owners_and_managers_may_triage(client, session, org, role):
    discrepancy = make_discrepancy(session, org)
    secret = create_api_key(session=session, org_id=org.id, role=role).secret
    assert act(client, discrepancy.id, "acknowledge", auth(secret)).status_code == 200


# --- listing --------------------------------------------------------------------------


def test_the_list_is_newest_first_in_the_resource_shape(client, session, org, headers):
    older = make_discrepancy(session, org, opened_at=BASE_TIME)
    newer = make_discrepancy(session, org, opened_at=BASE_TIME + timedelta(minutes=1))
    body = client.get(BASE, headers=headers).json
    assert [item["id"] for item in body["items"]] == [str(newer.id), str(older.id)]
    assert set(body["items"][0]) == DISCREPANCY_FIELDS
    assert body["items"][0]["payment"]["id"] == str(newer.payment_id)
    assert body["items"][0]["provider_record"] is None
    assert body["items"][0]["difference_minor"] == -100
    assert body["next_cursor"] is None


def _run(session, org) -> ReconciliationRun:
    run = ReconciliationRun(
        org_id=org.id,
        period_start=BASE_TIME.date(),
        period_end=BASE_TIME.date(),
        triggered_by="api",
        status="completed",
    )
    session.add(run)
    session.flush()
    return run


# (query parameters, fields of the row that must be listed, fields of one that must not)
FILTERS = [
    ({"status": "acknowledged"}, {"status": "acknowledged"}, {"status": "open"}),
    ({"type": "CurrencyMismatch"}, {"type": "CurrencyMismatch"}, {"type": "AmountMismatch"}),
    ({"severity": "low"}, {"severity": "low"}, {"severity": "high"}),
    ({"assignee": "alice"}, {"assignee": "alice"}, {"assignee": "bob"}),
    ({"currency": "jpy"}, {"currency": "JPY"}, {"currency": "EUR"}),
    ({"min_amount": "1000"}, {"amount_minor": 1000}, {"amount_minor": 999}),
    (
        {"since": "2025-03-01T12:00:00+00:00"},
        {"opened_at": BASE_TIME},
        {"opened_at": BASE_TIME - timedelta(microseconds=1)},
    ),
    (
        {"until": "2025-03-01T13:00:00+01:00"},
        {"opened_at": BASE_TIME - timedelta(microseconds=1)},
        {"opened_at": BASE_TIME},
    ),
]


@pytest.mark.parametrize(("query", "listed", "hidden"), FILTERS)
def test_each_filter_narrows_the_list(client, session, org, headers, query, listed, hidden):
    wanted = make_discrepancy(session, org, **listed)
    make_discrepancy(session, org, **hidden)
    response = client.get(BASE, query_string=query, headers=headers)
    assert response.status_code == 200
    assert [item["id"] for item in response.json["items"]] == [str(wanted.id)]


def test_the_run_filter_lists_what_that_run_found(client, session, org, headers):
    run = _run(session, org)
    found = make_discrepancy(session, org, run_id=run.id)
    make_discrepancy(session, org)
    response = client.get(BASE, query_string={"run_id": str(run.id)}, headers=headers)
    assert [item["id"] for item in response.json["items"]] == [str(found.id)]


def test_filters_combine(client, session, org, headers):
    wanted = make_discrepancy(session, org, severity="low", currency="JPY", amount_minor=5000)
    make_discrepancy(session, org, severity="low", currency="JPY", amount_minor=10)
    make_discrepancy(session, org, severity="high", currency="JPY", amount_minor=5000)
    query = {"severity": "low", "currency": "JPY", "min_amount": 100}
    response = client.get(BASE, query_string=query, headers=headers)
    assert [item["id"] for item in response.json["items"]] == [str(wanted.id)]


@pytest.mark.parametrize(
    "query",
    [
        {"status": "closed"},
        {"type": "Nope"},
        {"severity": "urgent"},
        {"currency": "EURO"},
        {"min_amount": "-1"},
        {"min_amount": str(2**63)},
        {"since": "2025-03-01T12:00:00"},
        {"until": "yesterday"},
        {"run_id": "not-a-uuid"},
        {"assignee": "a\x00b"},
        {"assignee": ""},
        {"sort": "severity"},
        {"limit": "0"},
        {"limit": "501"},
        {"unknown": "1"},
    ],
)
def test_a_bad_query_is_422(client, headers, query):
    response = client.get(BASE, query_string=query, headers=headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


def test_limit_defaults_to_50_and_allows_500(client, session, org, headers):
    for index in range(51):
        make_discrepancy(session, org, opened_at=BASE_TIME + timedelta(seconds=index))
    default = client.get(BASE, headers=headers).json
    assert len(default["items"]) == 50
    assert default["next_cursor"] is not None
    everything = client.get(BASE, query_string={"limit": 500}, headers=headers).json
    assert len(everything["items"]) == 51
    assert everything["next_cursor"] is None


@pytest.mark.parametrize("sort", ["opened_at", "amount"])
def test_pages_cover_every_row_exactly_once_while_new_rows_arrive(
    client, session, org, headers, sort
):
    # Ties on both sort keys, so the id tie-break is exercised too.
    originals = {
        make_discrepancy(
            session,
            org,
            opened_at=BASE_TIME + timedelta(seconds=index // 3),
            amount_minor=(index % 4) * 100,
        ).id
        for index in range(23)
    }
    seen: list[dict] = []
    cursor = None
    for page_number in range(100):
        query = {"sort": sort, "limit": 4} | ({"cursor": cursor} if cursor else {})
        body = client.get(BASE, query_string=query, headers=headers).json
        seen.extend(body["items"])
        # New findings arrive between pages: newer than all, and of every size.
        make_discrepancy(
            session,
            org,
            opened_at=BASE_TIME + timedelta(hours=1, seconds=page_number),
            amount_minor=(page_number % 5) * 100,
        )
        cursor = body["next_cursor"]
        if cursor is None:
            break
    ids = [uuid.UUID(item["id"]) for item in seen]
    assert len(ids) == len(set(ids))
    assert originals <= set(ids)
    field = "opened_at" if sort == "opened_at" else "amount_minor"
    keys = [
        (datetime.fromisoformat(item[field]) if sort == "opened_at" else item[field], item["id"])
        for item in seen
    ]
    assert keys == sorted(keys, reverse=True)


def test_amount_sort_is_largest_first(client, session, org, headers):
    small = make_discrepancy(session, org, amount_minor=5)
    large = make_discrepancy(session, org, amount_minor=50_000)
    middle = make_discrepancy(session, org, amount_minor=700)
    body = client.get(BASE, query_string={"sort": "amount"}, headers=headers).json
    assert [item["id"] for item in body["items"]] == [str(large.id), str(middle.id), str(small.id)]


FIXED_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "x" * 600,
        encode_cursor(FIXED_ID),
        encode_cursor(BASE_TIME, FIXED_ID),  # the shape another listing issues
        encode_cursor(2, BASE_TIME, FIXED_ID),  # the amount sort's tag on a time
        encode_cursor(9, BASE_TIME, FIXED_ID),
    ],
    ids=["garbage", "too-long", "one-value", "other-listing", "wrong-tag-type", "unknown-tag"],
)
def test_a_forged_cursor_is_400(client, session, org, headers, cursor):
    make_discrepancy(session, org)
    response = client.get(BASE, query_string={"cursor": cursor}, headers=headers)
    assert response.status_code in (400, 422)
    assert response.mimetype == "application/problem+json"
    if len(cursor) <= 512:
        assert response.status_code == 400


def test_a_cursor_from_the_other_sort_is_400(client, session, org, headers):
    for index in range(3):
        make_discrepancy(session, org, amount_minor=index)
    page = client.get(BASE, query_string={"sort": "amount", "limit": 1}, headers=headers).json
    response = client.get(BASE, query_string={"cursor": page["next_cursor"]}, headers=headers)
    assert response.status_code == 400
    assert response.json["title"] == "Invalid cursor"


# --- CSV export -----------------------------------------------------------------------


def test_csv_export_streams_the_filtered_list_with_formatted_money(client, session, org, headers):
    yen = make_discrepancy(
        session,
        org,
        currency="JPY",
        amount_minor=1_234_567,
        difference_minor=None,
        type="MissingProviderRecord",
        opened_at=BASE_TIME + timedelta(seconds=2),
    )
    dinar = make_discrepancy(
        session,
        org,
        currency="KWD",
        amount_minor=1_234_567,
        difference_minor=-1_500,
        assignee='=HYPERLINK("http://evil")',
        opened_at=BASE_TIME + timedelta(seconds=1),
    )
    make_discrepancy(session, org, status="resolved", resolved_at=BASE_TIME)
    response = client.get(
        BASE, query_string={"status": "open"}, headers={**headers, "Accept": "text/csv"}
    )
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    reader = csv.DictReader(io.StringIO(response.text))
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    rows = list(reader)
    assert [row["id"] for row in rows] == [str(yen.id), str(dinar.id)]
    assert (rows[0]["amount"], rows[0]["amount_minor"]) == ("1,234,567", "1234567")
    assert (rows[0]["difference"], rows[0]["difference_minor"]) == ("", "")
    assert (rows[1]["amount"], rows[1]["amount_minor"]) == ("1,234.567", "1234567")
    assert (rows[1]["difference"], rows[1]["difference_minor"]) == ("-1.500", "-1500")
    assert rows[1]["currency"] == "KWD"
    assert rows[1]["assignee"] == '\'=HYPERLINK("http://evil")'
    assert rows[1]["payment_id"] == str(dinar.payment_id)
    assert rows[1]["payment_external_id"].startswith("inv_")
    assert rows[1]["opened_at"] == (BASE_TIME + timedelta(seconds=1)).isoformat()


def test_csv_export_is_not_limited_to_one_page(client, session, org, headers):
    for index in range(60):
        make_discrepancy(session, org, opened_at=BASE_TIME + timedelta(seconds=index))
    response = client.get(
        BASE, query_string={"limit": 5, "sort": "amount"}, headers={**headers, "Accept": "text/csv"}
    )
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 60
    assert len({row["id"] for row in rows}) == 60


def test_an_empty_csv_export_still_has_its_header(client, headers):
    response = client.get(BASE, headers={**headers, "Accept": "text/csv"})
    assert list(csv.reader(io.StringIO(response.text))) == [list(CSV_COLUMNS)]


def test_a_bad_filter_on_the_csv_export_is_a_problem_not_a_broken_file(client, headers):
    response = client.get(
        BASE, query_string={"severity": "urgent"}, headers={**headers, "Accept": "text/csv"}
    )
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


def test_json_is_preferred_unless_csv_is_asked_for(client, session, org, headers):
    make_discrepancy(session, org)
    for accept in ("*/*", "application/json", "text/csv;q=0.5, application/json"):
        response = client.get(BASE, headers={**headers, "Accept": accept})
        assert response.mimetype == "application/json"


# --- concurrency against real commits -------------------------------------------------


def test_two_concurrent_resolves_exactly_one_succeeds(committed_client, committed):
    with unit_of_work() as work:
        org = make_org(work)
        # Two people with their own keys, so nothing but the discrepancy row is shared.
        secrets = [
            create_api_key(session=work, org_id=org.id, role=role).secret
            for role in ("owner", "manager")
        ]
        targets = [make_discrepancy(work, org).id for _ in range(5)]

    for discrepancy_id in targets:
        barrier = threading.Barrier(2)

        def resolve_as(secret: str, discrepancy_id=discrepancy_id, barrier=barrier) -> int:
            client = committed_client.application.test_client()
            barrier.wait()
            return client.patch(
                f"{BASE}/{discrepancy_id}/resolve", json=RESOLVE_BODY, headers=auth(secret)
            ).status_code

        with ThreadPoolExecutor(max_workers=2) as pool:
            codes = sorted(pool.map(resolve_as, secrets))
        assert codes == [200, 409]

    with unit_of_work() as work:
        resolved_entries = work.scalar(
            select(func.count())
            .select_from(ReconciliationActionLog)
            .where(ReconciliationActionLog.action == "resolved")
        )
        versions = set(
            work.scalars(
                select(ReconciliationDiscrepancy.version).where(
                    ReconciliationDiscrepancy.id.in_(targets)
                )
            )
        )
    assert resolved_entries == len(targets)
    assert versions == {2}
