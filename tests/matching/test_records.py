"""Folding provider events into a record: any order, the provider's latest state."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from shared.matching.records import derived_status, merge_update, new_state, refunded_total
from shared.providers import RecordUpdate

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def update(seconds: int, **fields) -> RecordUpdate:
    return RecordUpdate(provider_reference="pi_1", event_at=at(seconds), currency="EUR", **fields)


def fold(updates):
    state = new_state(updates[0], "EUR")
    for item in updates[1:]:
        state = merge_update(state, item)
    return state


CHARGE = update(0, amount_minor=1000, payment_status="succeeded", merchant_reference="inv_1")
PROCESSING = update(-5, amount_minor=1000, payment_status="pending")
PARTIAL_REFUND = update(60, refunds={"re_1": 300})
SECOND_REFUND = update(120, refunds={"re_2": 700})


@pytest.mark.parametrize(
    ("updates", "status", "refunded"),
    [
        pytest.param([CHARGE], "succeeded", 0, id="charge"),
        pytest.param([PROCESSING, CHARGE], "succeeded", 0, id="processing-then-succeeded"),
        pytest.param([CHARGE, PARTIAL_REFUND], "partially_refunded", 300, id="partial-refund"),
        pytest.param(
            [CHARGE, PARTIAL_REFUND, SECOND_REFUND], "refunded", 1000, id="refunds-add-up"
        ),
        pytest.param(
            [CHARGE, PARTIAL_REFUND, update(90, refunds={"re_1": 0})],
            "succeeded",
            0,
            id="failed-refund-withdrawn",
        ),
        pytest.param(
            [CHARGE, update(30, reported_refunded_minor=1000)], "refunded", 1000, id="stated-total"
        ),
        pytest.param(
            [
                update(0, amount_minor=1000, payment_status="failed"),
                update(40, payment_status="succeeded"),
            ],
            "succeeded",
            0,
            id="failed-then-succeeded-retry",
        ),
        pytest.param(
            [CHARGE, update(10, dispute_status="open", dispute_amount_minor=1000)],
            "succeeded",
            0,
            id="dispute-keeps-status",
        ),
    ],
)
def test_status_and_refunds_follow_the_provider(updates, status, refunded):
    state = fold(updates)
    assert derived_status(state) == status
    assert refunded_total(state) == refunded


@pytest.mark.parametrize(
    "updates",
    [
        [PROCESSING, CHARGE, PARTIAL_REFUND, SECOND_REFUND],
        [CHARGE, update(30, amount_minor=1000, payment_status="canceled")],
        [
            update(0, amount_minor=500, payment_status="failed"),
            update(1, payment_status="succeeded"),
        ],
    ],
    ids=["lifecycle-with-refunds", "canceled-after-success", "retry"],
)
def test_every_arrival_order_converges_to_the_same_state(updates):
    outcomes = {
        (derived_status(s := fold(list(order))), refunded_total(s), s.amount_minor, s.last_event_at)
        for order in itertools.permutations(updates)
    }
    assert len(outcomes) == 1


def test_an_older_event_never_moves_the_status_back():
    state = fold([CHARGE, PROCESSING])
    assert derived_status(state) == "succeeded"
    assert state.last_event_at == at(0)


def test_a_refund_seen_before_its_charge_counts_once_the_amount_is_known():
    refund_first = fold([update(60, refunds={"re_1": 1000}), CHARGE])
    assert derived_status(refund_first) == "refunded"
    assert refund_first.amount_minor == 1000
    assert refund_first.merchant_reference == "inv_1"


def test_equal_timestamps_prefer_the_further_status():
    state = fold(
        [
            update(0, amount_minor=10, payment_status="succeeded"),
            update(0, payment_status="pending"),
        ]
    )
    assert derived_status(state) == "succeeded"


def test_a_withdrawn_refund_stays_withdrawn():
    state = fold([CHARGE, update(90, refunds={"re_1": 0}), update(60, refunds={"re_1": 300})])
    assert refunded_total(state) == 0


DISPUTE_OPENED = update(
    100,
    dispute_status="open",
    dispute_provider_status="needs_response",
    dispute_amount_minor=1000,
    dispute_reason="fraudulent",
    dispute_evidence_due_at=at(14 * 86400),
)
DISPUTE_LOST = update(
    200,
    dispute_status="lost",
    dispute_provider_status="lost",
    dispute_amount_minor=1000,
    dispute_reason="fraudulent",
)


def dispute_of(state) -> tuple:
    return (
        state.dispute_status,
        state.dispute_provider_status,
        state.dispute_amount_minor,
        state.dispute_reason,
        state.dispute_evidence_due_at,
        state.dispute_at,
    )


@pytest.mark.parametrize(
    "order", list(itertools.permutations([CHARGE, DISPUTE_OPENED, DISPUTE_LOST]))
)
def test_the_newest_dispute_event_states_the_whole_dispute_in_any_order(order):
    state = fold(list(order))
    # The newest event's fields, its missing due date included: never a mix of two events.
    assert dispute_of(state) == ("lost", "lost", 1000, "fraudulent", None, at(200))
    assert derived_status(state) == "succeeded"


def test_an_older_dispute_event_changes_nothing_of_the_dispute():
    state = fold([CHARGE, DISPUTE_LOST, DISPUTE_OPENED])
    assert dispute_of(state) == dispute_of(fold([CHARGE, DISPUTE_LOST]))
