"""The discrepancy lifecycle: its transitions table, and triage's actions called directly."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.discrepancies.disputes import update_dispute
from shared.discrepancies.lifecycle import (
    AUTO_RESOLUTION,
    AUTO_RESOLUTION_REASON,
    DISPUTE_UPDATED,
    OPENED,
    REFUSED_AS,
    RESOLUTION_CODES,
    TRANSITIONS,
    UNRESOLVED,
    DiscrepancyChanges,
    DiscrepancyRow,
    acknowledge,
    add_note,
    assign,
    auto_resolve,
    record_transition,
    resolve,
)
from shared.matching.rules import Dispute, Finding
from shared.models import ACTIONS as LOGGED_ACTIONS
from shared.models import DISCREPANCY_STATUSES
from shared.platform.errors import InvalidTransition, NotFound, PreconditionFailed, ValidationFailed
from tests.discrepancies.factories import actions_of, in_state, make_discrepancy, reload

NOW = datetime(2025, 3, 2, 9, 30, tzinfo=UTC)
EVERY_ACTION = tuple(REFUSED_AS)
EVERY_CASE = [(status, action) for status in TRANSITIONS for action in EVERY_ACTION]


# --- the transitions table ------------------------------------------------------------


def test_the_table_has_every_status_and_only_actions_the_log_accepts():
    assert set(TRANSITIONS) == set(DISCREPANCY_STATUSES)
    assert set().union(*TRANSITIONS.values()) == set(EVERY_ACTION)
    assert {OPENED, *EVERY_ACTION} <= set(LOGGED_ACTIONS)
    assert {after for row in TRANSITIONS.values() for after in row.values()} <= set(TRANSITIONS)


def test_resolved_is_final_and_the_system_resolves_from_every_unresolved_status():
    assert TRANSITIONS["resolved"] == {}
    assert {status for status, row in TRANSITIONS.items() if AUTO_RESOLUTION in row} == set(
        UNRESOLVED
    )


def assert_refused_without_trace(session, discrepancy, status, entries_before):
    session.flush()
    current = reload(session, discrepancy)
    assert (current.status, current.version) == (status, 1)
    assert {entry.id for entry in actions_of(session, current)} == entries_before


def moved_with_one_entry(session, discrepancy, after, entries_before):
    """The discrepancy reloaded, after checking it moved to ``after`` at version 2, and
    the one entry the action added."""
    session.flush()
    current = reload(session, discrepancy)
    assert (current.status, current.version) == (after, 2)
    added = [entry for entry in actions_of(session, current) if entry.id not in entries_before]
    assert len(added) == 1
    return current, added[0]


@pytest.mark.parametrize(("status", "action"), EVERY_CASE)
def test_record_transition_moves_by_the_table_and_logs_exactly_one_entry(
    session, org, status, action
):
    discrepancy = in_state(session, org, status)
    before = {entry.id for entry in actions_of(session, discrepancy)}
    after = TRANSITIONS[status].get(action)
    transition = {
        "session": session,
        "discrepancy": discrepancy,
        "action": action,
        "actor": "key-7",
        "actor_name": "Ana",
        "now": NOW,
        "payload": {"why": "table"},
    }
    if after is None:
        with pytest.raises(InvalidTransition, match=f"that is {status}") as refused:
            record_transition(**transition)
        assert refused.value.extra == {"current_status": status}
        assert_refused_without_trace(session, discrepancy, status, before)
        return
    record_transition(**transition)
    current, entry = moved_with_one_entry(session, discrepancy, after, before)
    assert (entry.action, entry.actor, entry.actor_name) == (action, "key-7", "Ana")
    assert entry.payload == {"why": "table"}
    if after != status:
        stamp = "acknowledged_at" if after == "acknowledged" else "resolved_at"
        assert getattr(current, stamp) == NOW


# Each action a person takes, as the function that takes it and its arguments.
TRIAGE = {
    "acknowledged": (acknowledge, {}),
    "assigned": (assign, {"assignee": "bo"}),
    "note_added": (add_note, {"note": "n"}),
    "resolved": (resolve, {"resolution": "other", "reason": "checked"}),
}


LOST = Dispute("lost", "lost", "fraudulent", None)


def take(action, session, caller, discrepancy) -> None:
    """``action`` taken by the code that takes it: triage as ``caller``, or the system."""
    if action == AUTO_RESOLUTION:
        auto_resolve(session=session, discrepancy=discrepancy, now=NOW, evidence={"run": "r"})
        return
    if action == DISPUTE_UPDATED:
        finding = Finding(
            "DisputeOpened", discrepancy.payment_id, discrepancy.provider_record_id, 900, "EUR",
            dispute=LOST,
        )  # fmt: skip
        update_dispute(
            session=session, discrepancy=discrepancy, finding=finding, now=NOW,
            evidence={"run": "r"},
        )  # fmt: skip
        return
    function, arguments = TRIAGE[action]
    function(session=session, caller=caller, discrepancy_id=discrepancy.id, **arguments)


def test_every_action_of_the_table_is_taken_by_a_person_or_the_system():
    assert {*TRIAGE, AUTO_RESOLUTION, DISPUTE_UPDATED} == set(EVERY_ACTION)


@pytest.mark.parametrize(("status", "action"), EVERY_CASE)
def test_each_action_taken_follows_the_table_and_names_its_actor(
    session, org, caller, status, action
):
    discrepancy = in_state(session, org, status)
    before = {entry.id for entry in actions_of(session, discrepancy)}
    after = TRANSITIONS[status].get(action)
    if after is None:
        with pytest.raises(InvalidTransition, match=f"cannot {REFUSED_AS[action]} "):
            take(action, session, caller, discrepancy)
        assert_refused_without_trace(session, discrepancy, status, before)
        return
    take(action, session, caller, discrepancy)
    current, entry = moved_with_one_entry(session, discrepancy, after, before)
    assert entry.action == action
    if action == AUTO_RESOLUTION:
        assert (entry.actor, entry.actor_name) == ("system", None)
        assert (current.resolution, current.resolution_reason) == (
            AUTO_RESOLUTION,
            AUTO_RESOLUTION_REASON,
        )
        assert entry.payload == {"reason": AUTO_RESOLUTION_REASON, "evidence": {"run": "r"}}
    elif action == DISPUTE_UPDATED:
        assert (entry.actor, entry.actor_name) == ("system", None)
        assert (current.amount_minor, current.dispute_status, current.dispute_reason) == (
            900,
            "lost",
            "fraudulent",
        )
        assert entry.payload["source"] == {"run": "r"}
        assert entry.payload["before"]["amount_minor"] == 2500
        assert entry.payload["after"]["dispute_status"] == "lost"
    else:
        assert (entry.actor, entry.actor_name) == (caller.actor, "Ana (finance)")


def test_a_batch_auto_resolves_exactly_as_record_transition_does(session, org):
    by_batch, by_record_transition = (make_discrepancy(session, org) for _ in range(2))
    changes = DiscrepancyChanges()
    read = DiscrepancyRow(
        by_batch.id, org.id, by_batch.type, by_batch.payment_id, by_batch.provider_record_id
    )
    changes.auto_resolve(read, {"run": "r"})
    assert changes.write(session, NOW) == {by_batch.id}
    auto_resolve(session=session, discrepancy=by_record_transition, now=NOW, evidence={"run": "r"})
    session.flush()
    columns = ("status", "resolution", "resolution_reason", "resolved_at", "version")
    rows, last_entries = set(), set()
    for discrepancy in (by_batch, by_record_transition):
        current = reload(session, discrepancy)
        rows.add(tuple(getattr(current, column) for column in columns))
        last = actions_of(session, current)[-1]
        last_entries.add((last.action, last.actor, last.actor_name, repr(last.payload)))
    assert rows == {("resolved", AUTO_RESOLUTION, AUTO_RESOLUTION_REASON, NOW, 2)}
    payload = {"reason": AUTO_RESOLUTION_REASON, "evidence": {"run": "r"}}
    assert last_entries == {(AUTO_RESOLUTION, "system", None, repr(payload))}


# --- triage's actions called directly -------------------------------------------------


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
