"""The payout ↔ bank entry rules, without a database: references, links, deadlines, findings."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from shared.bank.payout_rules import (
    AMOUNT,
    REFERENCE,
    Candidate,
    PayoutFacts,
    arrival_deadline,
    decide_links,
    deposit_amount_mismatch,
    entry_text,
    mentions_payout,
    payout_not_received,
    statement_balance_mismatch,
)

P1, P2, E1, E2 = (uuid.UUID(int=n) for n in (1, 2, 11, 12))


@pytest.mark.parametrize(
    ("text", "provider", "payout_id", "mentioned"),
    [
        (
            "STRIPE PAYOUT po_1Pgc79B7WZ01zgkWu1KToYf4",
            "stripe",
            "po_1Pgc79B7WZ01zgkWu1KToYf4",
            True,
        ),
        (
            "STRIPE PAYOUT PO_1PGC79B7WZ01ZGKWU1KTOYF4",
            "stripe",
            "po_1Pgc79B7WZ01zgkWu1KToYf4",
            True,
        ),
        ("STRIPE po_1Pgc79B7WZ01zgkWu1KToYf4X", "stripe", "po_1Pgc79B7WZ01zgkWu1KToYf4", False),
        ("STRIPE PAYOUT", "stripe", "po_1Pgc79B7WZ01zgkWu1KToYf4", False),
        ("Adyen N.V. payout batch 1128 ExampleCOM", "adyen", "1128", True),
        ("ADYEN BATCH:1128", "adyen", "1128", True),
        ("ADYEN BATCH NR 1128", "adyen", "1128", True),
        ("ADYEN BATCH 11280", "adyen", "1128", False),
        ("ADYEN BATCH 380", "adyen", "0380", True),
        ("INVOICE 1128 PAID", "adyen", "1128", False),
        ("TRANSFER PAYPAL 1047428557493", "paypal", "1047428557493", True),
        ("TRANSFER PAYPAL 10474285574930", "paypal", "1047428557493", False),
        ("REF 12345 PAYPAL", "paypal", "12345", False),  # too short to tell from other numbers
    ],
)
def test_a_payout_is_named_by_its_providers_reference(text, provider, payout_id, mentioned):
    assert mentions_payout(entry_text(text), provider, payout_id) is mentioned


def test_the_reference_may_be_in_any_text_field_of_the_entry():
    text = entry_text(None, "BANKREF-1", "po_fixture_0005")
    assert mentions_payout(text, "stripe", "po_fixture_0005")


@pytest.mark.parametrize(
    ("candidates", "links", "suggestions"),
    [
        # one entry names one payout: linked
        ([(P1, E1, REFERENCE)], [(P1, E1, REFERENCE)], []),
        # one payout named by two entries: both suggested, neither linked
        ([(P1, E1, REFERENCE), (P1, E2, REFERENCE)], [],
         [(P1, E1, REFERENCE), (P1, E2, REFERENCE)]),
        # a unique amount both ways: linked
        ([(P1, E1, AMOUNT)], [(P1, E1, AMOUNT)], []),
        # two payouts of the same amount, one entry: suggestions
        ([(P1, E1, AMOUNT), (P2, E1, AMOUNT)], [], [(P1, E1, AMOUNT), (P2, E1, AMOUNT)]),
        # the reference wins; the entry it took is no amount candidate of another payout
        ([(P1, E1, REFERENCE), (P2, E1, AMOUNT), (P2, E2, AMOUNT)],
         [(P1, E1, REFERENCE), (P2, E2, AMOUNT)], []),
        # a payout named by reference is not linked by amount elsewhere
        ([(P1, E1, REFERENCE), (P1, E2, REFERENCE), (P1, E2, AMOUNT)], [],
         [(P1, E1, REFERENCE), (P1, E2, REFERENCE)]),
        # the same pair twice counts once
        ([(P1, E1, AMOUNT), (P1, E1, AMOUNT)], [(P1, E1, AMOUNT)], []),
    ],
)  # fmt: skip
def test_links_need_one_candidate_each_way_else_suggestions(candidates, links, suggestions):
    decision = decide_links(Candidate(*c) for c in candidates)
    assert decision.links == [Candidate(*c) for c in links]
    assert decision.suggestions == [Candidate(*c) for c in suggestions]


@pytest.mark.parametrize(
    ("expected", "days", "country", "deadline"),
    [
        (date(2026, 3, 2), 2, None, date(2026, 3, 4)),  # Monday → Wednesday
        (date(2026, 3, 6), 2, None, date(2026, 3, 10)),  # Friday → Tuesday
        (date(2026, 3, 7), 0, None, date(2026, 3, 9)),  # a Saturday arrival is Monday's
        (date(2026, 4, 2), 2, "DE", date(2026, 4, 8)),  # Good Friday, Easter Monday
        (date(2026, 4, 2), 2, None, date(2026, 4, 6)),
    ],
)
def test_the_deadline_counts_business_days_of_the_accounts_country(
    expected, days, country, deadline
):
    assert arrival_deadline(expected, days, country) == deadline


def _payout(**fields) -> PayoutFacts:
    values = {
        "id": P1, "provider": "stripe", "payout_id": "po_1", "amount_minor": 1100,
        "currency": "EUR", "expected_arrival": date(2026, 3, 6), "arrival_business_days": 2,
        "country": None,
    } | fields  # fmt: skip
    return PayoutFacts(**values)


def test_a_payout_is_not_received_only_after_its_deadline():
    assert payout_not_received(_payout(), date(2026, 3, 10)) is None
    finding = payout_not_received(_payout(), date(2026, 3, 11))
    assert (finding.type, finding.settlement_payout_id, finding.amount_minor) == (
        "PayoutNotReceived", P1, 1100,
    )  # fmt: skip
    assert finding.evidence["deadline"] == "2026-03-10"


def test_a_deposit_amount_mismatch_states_entry_minus_payout_exactly():
    args = {"payout_id": P1, "entry_id": E1, "currency": "EUR", "method": REFERENCE}
    assert deposit_amount_mismatch(payout_minor=1100, entry_minor=1100, **args) is None
    finding = deposit_amount_mismatch(payout_minor=1100, entry_minor=1085, **args)
    assert (finding.amount_minor, finding.difference_minor, finding.bank_entry_id) == (
        1100, -15, E1,
    )  # fmt: skip


def test_a_statement_balance_mismatch_states_closing_minus_opening_and_entries():
    args = {"statement_id": P1, "bank_statement_id": "S1", "currency": "EUR", "entry_count": 3}
    assert statement_balance_mismatch(
        opening_minor=1556827, closing_minor=1512112, entries_total_minor=-44715, **args
    ) is None  # fmt: skip
    finding = statement_balance_mismatch(
        opening_minor=1556827, closing_minor=1512112, entries_total_minor=-44000, **args
    )
    assert (finding.amount_minor, finding.difference_minor) == (1512112, -715)
