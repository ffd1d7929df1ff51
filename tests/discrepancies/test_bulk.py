"""Bulk triage: one action and one reason for many discrepancies, each through the
lifecycle with its own entry; per-row refusals listed while the others change."""

from __future__ import annotations

import uuid

import pytest

from shared.access.api_keys import create_api_key
from shared.discrepancies.bulk import (
    MAX_BULK_DISCREPANCIES,
    BulkChange,
    BulkTarget,
    apply_bulk,
)
from shared.platform.errors import ValidationFailed
from tests.discrepancies.calls import BASE, auth
from tests.discrepancies.factories import actions_of, in_state, make_discrepancy, reload
from tests.support.checksums import database_checksum

BULK = f"{BASE}/bulk"
REASON = "month-end clean-up: settled by the bank on the 3rd"


def targets(*discrepancies, versions=None) -> list[BulkTarget]:
    return [BulkTarget(d.id, (versions or {}).get(d.id)) for d in discrepancies]


def test_each_row_is_resolved_with_its_own_entry_and_refusals_are_listed(
    session, org, other_org, caller
):
    first = make_discrepancy(session, org)
    acknowledged = in_state(session, org, "acknowledged")
    resolved = in_state(session, org, "resolved")
    foreign = make_discrepancy(session, other_org)
    stale = make_discrepancy(session, org)
    missing = uuid.uuid4()
    order = [resolved.id, first.id, missing, foreign.id, stale.id, acknowledged.id]
    before = {d.id: (d.version, len(actions_of(session, d))) for d in (resolved, foreign, stale)}

    outcome = apply_bulk(
        session=session,
        caller=caller,
        targets=[BulkTarget(key, 7 if key == stale.id else None) for key in order],
        change=BulkChange(action="resolve", reason=REASON, resolution="timing_difference"),
    )

    assert [view.id for view in outcome.changed] == [first.id, acknowledged.id]
    assert all(view.status == "resolved" for view in outcome.changed)
    assert [(f.id, f.problem, f.current_status, f.current_version) for f in outcome.failed] == [
        (resolved.id, "invalid-transition", "resolved", None),
        (missing, "not-found", None, None),
        (foreign.id, "not-found", None, None),
        (stale.id, "precondition-failed", None, 1),
    ]
    assert "resolved" in outcome.failed[0].detail
    for discrepancy in (first, acknowledged):
        entry = actions_of(session, discrepancy)[-1]
        assert entry.action == "resolved"
        assert entry.actor == caller.actor
        assert entry.actor_name == caller.actor_name
        assert entry.payload == {
            "resolution": "timing_difference",
            "reason": REASON,
            "adjustment_reference": None,
        }
        assert reload(session, discrepancy).resolution_reason == REASON
    for discrepancy in (resolved, foreign, stale):
        after = reload(session, discrepancy)
        assert (after.version, len(actions_of(session, after))) == before[discrepancy.id]


def test_acknowledge_logs_the_reason_and_refuses_what_is_already_acknowledged(session, org, caller):
    fresh = make_discrepancy(session, org)
    seen = in_state(session, org, "acknowledged")
    outcome = apply_bulk(
        session=session,
        caller=caller,
        targets=targets(fresh, seen),
        change=BulkChange(action="acknowledge", reason=REASON),
    )
    assert [view.status for view in outcome.changed] == ["acknowledged"]
    assert [(f.id, f.problem) for f in outcome.failed] == [(seen.id, "invalid-transition")]
    entry = actions_of(session, fresh)[-1]
    assert (entry.action, entry.payload) == ("acknowledged", {"reason": REASON})


def test_assign_logs_assignee_previous_and_reason(session, org, caller):
    one = make_discrepancy(session, org, assignee="ana")
    two = in_state(session, org, "acknowledged")
    outcome = apply_bulk(
        session=session,
        caller=caller,
        targets=targets(one, two, versions={one.id: one.version}),
        change=BulkChange(action="assign", reason=REASON, assignee="  bo  "),
    )
    assert [(view.assignee, view.status) for view in outcome.changed] == [
        ("bo", "open"),
        ("bo", "acknowledged"),
    ]
    assert outcome.failed == []
    assert actions_of(session, one)[-1].payload == {
        "assignee": "bo",
        "previous": "ana",
        "reason": REASON,
    }


def test_a_lost_dispute_needs_the_adjustment_reference_like_a_single_resolve(session, org, caller):
    lost = make_discrepancy(session, org, type="DisputeOpened", dispute_status="lost")
    plain = make_discrepancy(session, org)
    change = BulkChange(action="resolve", reason=REASON, resolution="written_off")
    outcome = apply_bulk(
        session=session, caller=caller, targets=targets(lost, plain), change=change
    )
    assert [view.id for view in outcome.changed] == [plain.id]
    assert [(f.id, f.problem) for f in outcome.failed] == [(lost.id, "validation-failed")]
    assert reload(session, lost).status == "open"

    with_reference = BulkChange(
        action="resolve", reason=REASON, resolution="written_off", adjustment_reference="JE-9"
    )
    outcome = apply_bulk(
        session=session, caller=caller, targets=targets(lost), change=with_reference
    )
    assert [view.adjustment_reference for view in outcome.changed] == ["JE-9"]


BAD_CHANGES = {
    "unknown action": BulkChange(action="delete", reason=REASON),
    "empty reason": BulkChange(action="acknowledge", reason="   "),
    "control character": BulkChange(action="acknowledge", reason="ok\x1b[2J"),
    "assign without assignee": BulkChange(action="assign", reason=REASON),
    "resolve without resolution": BulkChange(action="resolve", reason=REASON),
    "system resolution": BulkChange(action="resolve", reason=REASON, resolution="auto_resolved"),
    "assignee on resolve": BulkChange(
        action="resolve", reason=REASON, resolution="other", assignee="bo"
    ),
    "resolution on acknowledge": BulkChange(
        action="acknowledge", reason=REASON, resolution="other"
    ),
}


@pytest.mark.parametrize("name", BAD_CHANGES)
def test_input_wrong_for_every_row_is_refused_before_anything_changes(session, org, caller, name):
    discrepancy = make_discrepancy(session, org)
    before = database_checksum(session)
    with pytest.raises(ValidationFailed):
        apply_bulk(
            session=session, caller=caller, targets=targets(discrepancy), change=BAD_CHANGES[name]
        )
    assert database_checksum(session) == before


@pytest.mark.parametrize(
    "count_and_repeat", [(0, False), (MAX_BULK_DISCREPANCIES + 1, False), (2, True)]
)
def test_none_too_many_or_repeated_targets_are_refused(session, caller, count_and_repeat):
    count, repeat = count_and_repeat
    ids = [uuid.uuid4() for _ in range(count)]
    listed = [BulkTarget(key) for key in ids + ids[:1] * repeat]
    with pytest.raises(ValidationFailed):
        apply_bulk(
            session=session,
            caller=caller,
            targets=listed,
            change=BulkChange(action="acknowledge", reason=REASON),
        )


# --- the API --------------------------------------------------------------------------


def body(*ids, **fields) -> dict:
    return {
        "action": "resolve",
        "reason": REASON,
        "resolution": "false_positive",
        "discrepancies": [{"id": str(key)} for key in ids],
    } | fields


def test_the_api_resolves_what_it_can_and_lists_the_rest(client, session, org, headers):
    open_one = make_discrepancy(session, org)
    resolved = in_state(session, org, "resolved")
    missing = uuid.uuid4()
    response = client.post(BULK, json=body(open_one.id, resolved.id, missing), headers=headers)
    assert response.status_code == 200
    answer = response.json
    assert [(item["id"], item["status"], item["version"]) for item in answer["changed"]] == [
        (str(open_one.id), "resolved", 2)
    ]
    assert [(item["id"], item["problem"]) for item in answer["failed"]] == [
        (str(resolved.id), "invalid-transition"),
        (str(missing), "not-found"),
    ]
    assert reload(session, open_one).status == "resolved"


def test_a_version_in_the_body_makes_a_changed_row_stale(client, session, org, headers):
    discrepancy = make_discrepancy(session, org)
    stale = body(discrepancy.id)
    stale["discrepancies"][0]["version"] = discrepancy.version + 1
    answer = client.post(BULK, json=stale, headers=headers).json
    assert answer["changed"] == []
    assert answer["failed"][0]["problem"] == "precondition-failed"
    assert answer["failed"][0]["current_version"] == discrepancy.version


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"discrepancies": [{"id": str(uuid.uuid4())} for _ in range(501)]}, "discrepancies"),
        ({"discrepancies": []}, "discrepancies"),
        ({"action": "reopen"}, "action"),
        ({"resolution": "auto_resolved"}, "resolution"),
        ({"reason": ""}, "reason"),
        ({"ids": []}, "ids"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_changes_nothing(
    client, session, org, headers, fields, field
):
    discrepancy = make_discrepancy(session, org)
    before = database_checksum(session)
    response = client.post(BULK, json=body(discrepancy.id, **fields), headers=headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert field in {error["field"].split(".")[0] for error in response.json["errors"]}
    assert database_checksum(session) == before


def test_a_repeated_id_is_422_and_changes_nothing(client, session, org, headers):
    discrepancy = make_discrepancy(session, org)
    before = database_checksum(session)
    response = client.post(BULK, json=body(discrepancy.id, discrepancy.id), headers=headers)
    assert response.status_code == 422
    assert "twice" in response.json["detail"]
    assert database_checksum(session) == before


def test_a_viewer_may_not_act_in_bulk(client, session, org):
    viewer = create_api_key(session=session, org_id=org.id, role="viewer")
    discrepancy = make_discrepancy(session, org)
    response = client.post(BULK, json=body(discrepancy.id), headers=auth(viewer.secret))
    assert response.status_code == 403
    assert reload(session, discrepancy).status == "open"
