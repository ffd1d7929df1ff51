"""The triage workflow over real HTTP: the state machine, If-Match, input, isolation, races."""

from __future__ import annotations

import csv
import io
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from shared.access.api_keys import create_api_key
from shared.discrepancies.lifecycle import MAX_NOTE_LENGTH, MAX_REASON_LENGTH
from shared.models import ReconciliationActionLog, ReconciliationDiscrepancy
from shared.platform.db import unit_of_work
from tests.discrepancies.calls import ACTIONS, BASE, RESOLVE_BODY, act, auth
from tests.discrepancies.factories import (
    actions_of,
    in_state,
    make_discrepancy,
    payments_checksum,
    reload,
)
from tests.support.factories import make_org

# --- the state machine, over HTTP -----------------------------------------------------

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


def test_a_body_that_is_not_json_is_refused(client, session, org, headers):
    discrepancy = make_discrepancy(session, org)
    url = f"{BASE}/{discrepancy.id}/resolve"
    assert client.patch(url, data="{", headers=headers).status_code == 415
    garbled = client.patch(url, data="{", headers=headers, content_type="application/json")
    assert garbled.status_code == 400


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
