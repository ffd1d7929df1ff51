"""The judging stage: the rules over rows already read, with no database."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from shared.discrepancies.lifecycle import DiscrepancyRow
from shared.matching.judging import (
    StoredDispute,
    Verdict,
    customer_duplicates,
    customer_span,
    discrepancy_changes,
    dispute_changes,
    item_of,
    judge_payment,
    judge_record,
)
from shared.matching.record_fields import record_facts
from shared.matching.rules import Dispute, Finding, MatchSettings
from tests.matching.test_matching import NOW, OLD, payment
from tests.matching.test_record_fields import row

SETTINGS = MatchSettings()
ORG = uuid.uuid4()


def record(**values):
    defaults = {
        "org_id": ORG,
        "amount_minor": 1000,
        "status": "succeeded",
        "amount_refunded_minor": 0,
        "refunds": {},
        "reported_refunded_minor": 0,
        "dispute_status": None,
        "dispute_amount_minor": None,
        "dispute_at": None,
        "occurred_at": OLD,
        "created_at": OLD,
        "updated_at": OLD,
        "payment_id": None,
        "match_method": None,
    }
    return row(**(defaults | values))


def discrepancy(kind: str, payment_id=None, record_id=None) -> DiscrepancyRow:
    return DiscrepancyRow(uuid.uuid4(), ORG, kind, payment_id, record_id)


def test_a_matched_pair_that_agrees_finds_nothing_and_records_a_matched_item():
    paid = payment()
    matched = record(payment_id=paid.id, match_method="provider_reference")
    verdict = judge_payment(paid, [matched], {}, SETTINGS, NOW)
    assert verdict == Verdict([], paid.id, [matched.id])
    assert item_of(verdict, [matched], paid) == (
        paid.id, matched.id, "matched", "provider_reference", None,
    )  # fmt: skip


def test_an_amount_mismatch_is_found_and_its_difference_recorded_on_the_item():
    paid = payment(amount_minor=500)
    matched = record(payment_id=paid.id, match_method="merchant_reference")
    verdict = judge_payment(paid, [matched], {}, SETTINGS, NOW)
    assert [f.type for f in verdict.findings] == ["AmountMismatch"]
    assert item_of(verdict, [matched], paid) == (
        paid.id, matched.id, "mismatched", "merchant_reference", 500,
    )  # fmt: skip


def test_a_settled_payment_without_records_is_missing_its_provider_record():
    paid = payment()
    verdict = judge_payment(paid, [], {}, SETTINGS, NOW)
    assert [f.type for f in verdict.findings] == ["MissingProviderRecord"]
    assert item_of(verdict, [], paid) == (paid.id, None, "missing_provider", None, None)


def test_a_settled_record_without_payment_is_missing_internally():
    unmatched = record()
    verdict = judge_record(unmatched, {}, SETTINGS, NOW)
    assert verdict.payment_id is None
    assert verdict.record_ids == [unmatched.id]
    assert [f.type for f in verdict.findings] == ["MissingInternalRecord"]
    assert item_of(verdict, [unmatched], None) == (
        None, unmatched.id, "missing_internal", None, None,
    )  # fmt: skip


def test_a_pending_record_without_payment_records_no_item():
    unmatched = record(status="pending")
    verdict = judge_record(unmatched, {}, SETTINGS, NOW)
    assert verdict.findings == []
    assert item_of(verdict, [unmatched], None) is None


def test_a_repeated_charge_of_the_customer_within_the_window_is_a_suspected_duplicate():
    first = record(provider_reference="pi_1", occurred_at=OLD)
    second = record(provider_reference="pi_2", occurred_at=OLD + timedelta(minutes=5))
    [finding] = customer_duplicates(second, [first, second], SETTINGS)
    assert (finding.type, finding.provider_record_id) == ("DuplicateChargeSuspected", second.id)
    assert finding.evidence == {"first_record_id": str(first.id), "rule": "same_customer"}
    assert customer_duplicates(first, [first, second], SETTINGS) == []


@pytest.mark.parametrize(
    "other",
    [
        {"occurred_at": OLD - timedelta(minutes=11)},  # outside the duplicate window
        {"amount_minor": 900},
        {"currency": "USD"},
    ],
)
def test_a_charge_that_differs_from_the_customers_earlier_one_is_no_duplicate(other):
    first = record(provider_reference="pi_1", **({"occurred_at": OLD} | other))
    second = record(provider_reference="pi_2", occurred_at=OLD + timedelta(seconds=1))
    assert customer_duplicates(second, [first], SETTINGS) == []


def test_only_a_record_with_a_customer_and_an_amount_needs_the_customers_records():
    assert customer_span(record(customer_ref=None), SETTINGS) is None
    assert customer_span(record(amount_minor=None), SETTINGS) is None
    assert customer_span(record(), SETTINGS) == (OLD - SETTINGS.duplicate_window, OLD)


def test_judging_a_payment_reads_each_records_customer_records_from_what_was_read():
    paid = payment()
    matched = record(provider_reference="pi_2", occurred_at=OLD, payment_id=paid.id)
    earlier = record(provider_reference="pi_1", occurred_at=OLD - timedelta(minutes=1))
    alone = judge_payment(paid, [matched], {}, SETTINGS, NOW)
    with_customer = judge_payment(paid, [matched], {matched.id: [earlier]}, SETTINGS, NOW)
    assert "DuplicateChargeSuspected" not in {f.type for f in alone.findings}
    assert "DuplicateChargeSuspected" in {f.type for f in with_customer.findings}


def test_a_new_finding_opens_and_one_held_already_does_not():
    paid = payment(amount_minor=500)
    matched = record(payment_id=paid.id, match_method="provider_reference")
    verdict = judge_payment(paid, [matched], {}, SETTINGS, NOW)
    to_open, to_resolve = discrepancy_changes(verdict, [], auto_fix=True)
    assert [f.type for f in to_open] == ["AmountMismatch"]
    assert to_resolve == []
    held = discrepancy("AmountMismatch", paid.id, matched.id)
    assert discrepancy_changes(verdict, [held], auto_fix=True) == ([], [])


@pytest.mark.parametrize(("auto_fix", "resolved"), [(True, True), (False, False)])
def test_a_discrepancy_no_longer_found_is_resolved_only_with_auto_fix(auto_fix, resolved):
    cleared = [discrepancy("StatusMismatch", uuid.uuid4()), discrepancy("AmountMismatch")]
    verdict = Verdict([], None, [])
    to_open, to_resolve = discrepancy_changes(verdict, cleared, auto_fix=auto_fix)
    assert to_open == []
    assert to_resolve == (sorted(cleared, key=lambda d: d.id) if resolved else [])


def test_a_finding_is_opened_once_however_often_the_rules_state_it():
    finding = Finding("MissingInternalRecord", None, uuid.uuid4(), 100, "EUR")
    verdict = Verdict([finding, finding], None, [finding.provider_record_id])
    to_open, _ = discrepancy_changes(verdict, [], auto_fix=False)
    assert to_open == [finding]


# --- disputes -------------------------------------------------------------------------

DUE = OLD + timedelta(days=14)


def disputed(dispute_status: str, **values):
    """A record disputed in ``dispute_status`` (600 of its 1000 disputed)."""
    dispute = {
        "dispute_status": dispute_status,
        "dispute_provider_status": f"stripe_{dispute_status}",
        "dispute_amount_minor": 600,
        "dispute_reason": "fraudulent",
        "dispute_evidence_due_at": DUE,
        "currency": "EUR",
    }
    return record(**(dispute | values))


@pytest.mark.parametrize(
    ("status", "found"), [("open", True), ("under_review", True), ("lost", True), ("won", False)]
)
def test_a_dispute_is_found_until_won_on_the_payment_and_on_a_record_without_one(status, found):
    paid = payment()
    bound = disputed(status, payment_id=paid.id, match_method="provider_reference")
    alone = disputed(status, status="pending")
    expected = Dispute(status, f"stripe_{status}", "fraudulent", DUE)
    for verdict, payment_id, subject in [
        (judge_payment(paid, [bound], {}, SETTINGS, NOW), paid.id, bound),
        (judge_record(alone, {}, SETTINGS, NOW), None, alone),
    ]:
        disputes = [f for f in verdict.findings if f.type == "DisputeOpened"]
        if not found:
            assert disputes == []
            continue
        assert disputes == [
            Finding("DisputeOpened", payment_id, subject.id, 600, "EUR", dispute=expected)
        ]
        assert disputes[0].severity == "high"
    # A dispute is no pair difference: the pair's item stays matched.
    assert item_of(judge_payment(paid, [bound], {}, SETTINGS, NOW), [bound], paid)[2] == "matched"


def test_dispute_discrepancies_are_left_to_their_own_rule():
    finding = Finding("DisputeOpened", None, uuid.uuid4(), 600, "EUR")
    held = discrepancy("DisputeOpened", None, uuid.uuid4())
    verdict = Verdict([finding], None, [finding.provider_record_id])
    assert discrepancy_changes(verdict, [held], auto_fix=True) == ([], [])


def stored(subject, *, unresolved=True, status="open", payment_id=None, amount=600, **dispute):
    facts = {"provider_status": f"stripe_{status}", "reason": "fraudulent", "due": DUE} | dispute
    return StoredDispute(
        uuid.uuid4(),
        unresolved,
        payment_id,
        amount,
        "EUR",
        Dispute(status, facts["provider_status"], facts["reason"], facts["due"]),
    )


def changes_of(subject, *held):
    changes = dispute_changes([record_facts(subject)], {subject.id: list(held)})
    return (
        [f.type for f in changes.to_open],
        [(d, f.dispute.status) for d, f in changes.to_update],
        [(d, dispute.status) for d, dispute in changes.to_resolve],
    )


def test_a_new_dispute_opens_and_one_stated_already_changes_nothing():
    subject = disputed("open")
    assert changes_of(subject) == (["DisputeOpened"], [], [])
    assert changes_of(subject, stored(subject)) == ([], [], [])


@pytest.mark.parametrize(
    "change",
    [
        {"dispute_status": "under_review", "dispute_provider_status": "stripe_under_review"},
        {"dispute_status": "lost", "dispute_provider_status": "stripe_lost"},
        {"dispute_amount_minor": 400},
        {"dispute_reason": "duplicate"},
        {"dispute_evidence_due_at": None},
    ],
)
def test_what_the_provider_says_next_updates_the_unresolved_discrepancy(change):
    held = stored(disputed("open"))
    subject = disputed(**({"dispute_status": "open"} | change))
    assert changes_of(subject, held) == ([], [(held, subject.dispute_status)], [])


def test_a_record_bound_since_moves_its_dispute_onto_the_payment():
    paid = payment()
    held = stored(disputed("open"))
    subject = disputed("open", payment_id=paid.id, match_method="merchant_reference")
    assert changes_of(subject, held) == ([], [(held, "open")], [])


def test_a_won_dispute_resolves_its_discrepancy_and_opens_none():
    held = stored(disputed("open"))
    subject = disputed("won")
    assert changes_of(subject, held) == ([], [], [(held, "won")])
    assert changes_of(subject) == ([], [], [])


def test_a_dispute_finance_resolved_is_not_opened_again_until_the_provider_says_more():
    subject = disputed("lost")
    closed = stored(subject, unresolved=False, status="lost")
    assert changes_of(subject, closed) == ([], [], [])
    # Won after the loss was booked, then lost again (pre-arbitration): a new finding.
    relost = disputed("lost", dispute_amount_minor=900)
    assert changes_of(relost, closed) == (["DisputeOpened"], [], [])


def test_a_record_never_disputed_changes_no_dispute():
    assert changes_of(record()) == ([], [], [])
