"""The matching rules, case by case (pure functions: no database)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shared.matching.rules import (
    SEVERITY,
    MatchSettings,
    PaymentFacts,
    RecordFacts,
    compare_pair,
    heuristic_fits,
    item_outcome,
    judge_customer_duplicate,
    judge_group,
    judge_unmatched_record,
    reference_method,
    unique_heuristic_pair,
)
from shared.models import DISCREPANCY_TYPES

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SETTINGS = MatchSettings(grace_period=timedelta(hours=1), amount_tolerance_minor=0)
OLD = NOW - timedelta(hours=2)
FRESH = NOW - timedelta(minutes=5)


def payment(**fields) -> PaymentFacts:
    values = {
        "id": uuid.uuid4(),
        "external_id": "inv_1",
        "provider": "stripe",
        "provider_reference": "pi_1",
        "amount_minor": 1000,
        "currency": "EUR",
        "status": "succeeded",
        "amount_refunded_minor": 0,
        "customer_ref": "cus_1",
        "occurred_at": OLD,
        "created_at": OLD,
        "updated_at": OLD,
    }
    return PaymentFacts(**(values | fields))


def record(**fields) -> RecordFacts:
    values = {
        "id": uuid.uuid4(),
        "provider": "stripe",
        "provider_reference": "pi_1",
        "merchant_reference": None,
        "amount_minor": 1000,
        "currency": "EUR",
        "status": "succeeded",
        "amount_refunded_minor": 0,
        "customer_ref": "cus_1",
        "occurred_at": OLD,
        "created_at": OLD,
        "updated_at": OLD,
        "match_method": "provider_reference",
    }
    return RecordFacts(**(values | fields))


@pytest.mark.parametrize(
    ("payment_fields", "record_fields", "method"),
    [
        ({}, {}, "provider_reference"),
        ({"provider_reference": None}, {"merchant_reference": "inv_1"}, "merchant_reference"),
        ({"provider_reference": "pi_9"}, {"merchant_reference": "inv_1"}, "merchant_reference"),
        ({"provider_reference": None}, {"merchant_reference": "inv_2"}, None),
        ({"provider": "adyen"}, {}, None),
    ],
    ids=["reference", "merchant-reference", "reference-differs", "nothing", "other-provider"],
)
def test_reference_matching_order(payment_fields, record_fields, method):
    assert reference_method(payment(**payment_fields), record(**record_fields)) == method


@pytest.mark.parametrize(
    ("record_fields", "fits"),
    [
        ({}, True),
        ({"occurred_at": OLD + timedelta(minutes=14)}, True),
        ({"occurred_at": OLD + timedelta(minutes=16)}, False),
        ({"amount_minor": 1001}, False),
        ({"currency": "USD"}, False),
        ({"provider": "adyen"}, False),
    ],
    ids=["same", "inside-window", "outside-window", "amount", "currency", "provider"],
)
def test_heuristic_needs_same_provider_currency_amount_within_window(record_fields, fits):
    assert heuristic_fits(payment(), record(**record_fields), timedelta(minutes=15)) is fits


def test_heuristic_never_matches_ambiguity():
    assert unique_heuristic_pair([payment()], [record()])
    assert not unique_heuristic_pair([payment(), payment()], [record()])
    assert not unique_heuristic_pair([payment()], [record(), record()])
    assert not unique_heuristic_pair([], [record()])


@pytest.mark.parametrize(
    ("payment_fields", "record_fields", "types", "difference"),
    [
        ({}, {}, set(), None),
        ({}, {"amount_minor": 900}, {"AmountMismatch"}, -100),
        (
            {"currency": "JPY", "amount_minor": 1000},
            {"currency": "JPY", "amount_minor": 1001},
            {"AmountMismatch"},
            1,
        ),
        (
            {"currency": "KWD", "amount_minor": 1500},
            {"currency": "KWD", "amount_minor": 1500},
            set(),
            None,
        ),
        ({}, {"currency": "USD"}, {"CurrencyMismatch"}, None),
        ({}, {"status": "failed"}, {"StatusMismatch"}, None),
        (
            {},
            {"status": "refunded", "amount_refunded_minor": 1000},
            {"StatusMismatch", "AmountMismatch"},
            1000,
        ),
        (
            {"status": "refunded", "amount_refunded_minor": 1000},
            {"status": "refunded", "amount_refunded_minor": 1000},
            set(),
            None,
        ),
        (
            {"status": "partially_refunded", "amount_refunded_minor": 300},
            {"status": "partially_refunded", "amount_refunded_minor": 200},
            {"AmountMismatch"},
            -100,
        ),
        ({"status": "pending"}, {"status": "succeeded"}, set(), None),
        ({}, {"amount_minor": None, "status": "partially_refunded"}, set(), None),
        ({}, {"amount_minor": None, "currency": "USD"}, {"CurrencyMismatch"}, None),
    ],
    ids=[
        "agree",
        "amount",
        "zero-decimal-one-yen",
        "three-decimal-agree",
        "currency",
        "status",
        "refunded-at-provider-only",
        "refunded-both",
        "partial-refund-amount",
        "pending-in-flight",
        "incomplete-record-not-judged",
        "incomplete-record-currency",
    ],
)
def test_compare_pair(payment_fields, record_fields, types, difference):
    findings = compare_pair(payment(**payment_fields), record(**record_fields), SETTINGS, NOW)
    assert {f.type for f in findings} == types
    amount = [f for f in findings if f.type == "AmountMismatch"]
    assert (amount[0].difference_minor if amount else None) == difference


def test_amount_tolerance_absorbs_small_differences():
    lenient = replace(SETTINGS, amount_tolerance_minor=2)
    assert compare_pair(payment(), record(amount_minor=998), lenient, NOW) == []
    assert (
        compare_pair(payment(), record(amount_minor=997), lenient, NOW)[0].type == "AmountMismatch"
    )


# (fixed tolerance, percent tolerance, payment amount, record amount, agrees)
TOLERANCES = [
    (0, "0.5", 10_000, 10_050, True),  # 0.5 % of 10,000 = 50: at the limit agrees
    (0, "0.5", 10_000, 10_051, False),
    (0, "0.5", 10_000, 9_950, True),  # below as above
    (0, "0.5", 10_000, 9_949, False),
    (100, "0.5", 10_000, 10_100, True),  # the fixed tolerance is larger here
    (100, "0.5", 10_000, 10_101, False),
    (10, "1", 100_000, 101_000, True),  # the percentage is larger here
    (10, "1", 100_000, 101_001, False),
    (0, "0.25", 999, 1_001, True),  # 0.25 % of 999 = 2.4975: a difference of 2 agrees
    (0, "0.25", 999, 1_002, False),  # 3 does not (never rounded up)
    (0, "100", 1_000, 2_000, True),
    (0, "0", 1_000, 1_001, False),
]


@pytest.mark.parametrize(("fixed", "percent", "paid", "charged", "agrees"), TOLERANCES)
def test_the_larger_of_the_fixed_and_the_percentage_tolerance_applies(
    fixed, percent, paid, charged, agrees
):
    settings = replace(
        SETTINGS, amount_tolerance_minor=fixed, amount_tolerance_percent=Decimal(percent)
    )
    findings = compare_pair(payment(amount_minor=paid), record(amount_minor=charged), settings, NOW)
    assert (findings == []) is agrees
    assert all(f.type == "AmountMismatch" for f in findings)


def test_the_percentage_tolerance_applies_to_refunded_amounts_too():
    settings = replace(SETTINGS, amount_tolerance_percent=Decimal("1"))
    paid = payment(amount_minor=10_000, status="partially_refunded", amount_refunded_minor=500)
    close = record(amount_minor=10_000, status="partially_refunded", amount_refunded_minor=600)
    far = record(amount_minor=10_000, status="partially_refunded", amount_refunded_minor=601)
    assert compare_pair(paid, close, settings, NOW) == []
    assert [f.type for f in compare_pair(paid, far, settings, NOW)] == ["AmountMismatch"]


def test_missing_provider_record_waits_for_the_grace_period():
    assert judge_group(payment(created_at=FRESH), [], SETTINGS, NOW) == []
    [finding] = judge_group(payment(), [], SETTINGS, NOW)
    assert finding.type == "MissingProviderRecord"
    assert finding.severity == "medium"


@pytest.mark.parametrize("status", ["failed", "pending", "canceled"])
def test_unsettled_payments_are_never_missing(status):
    assert judge_group(payment(status=status), [], SETTINGS, NOW) == []


def test_missing_internal_record_waits_for_the_grace_period():
    assert judge_unmatched_record(record(created_at=FRESH), SETTINGS, NOW) == []
    [finding] = judge_unmatched_record(record(), SETTINGS, NOW)
    assert (finding.type, finding.severity, finding.payment_id) == (
        "MissingInternalRecord",
        "high",
        None,
    )
    assert judge_unmatched_record(record(status="failed"), SETTINGS, NOW) == []


def test_a_second_charge_for_one_payment_is_a_suspected_duplicate():
    first = record(occurred_at=OLD)
    second = record(
        provider_reference="pi_2",
        match_method="merchant_reference",
        occurred_at=OLD + timedelta(minutes=1),
    )
    findings = judge_group(payment(), [second, first], SETTINGS, NOW)
    assert [(f.type, f.provider_record_id) for f in findings] == [
        ("DuplicateChargeSuspected", second.id)
    ]
    refunded = replace(second, status="refunded")
    assert judge_group(payment(), [first, refunded], SETTINGS, NOW) == []


def test_same_customer_amount_and_currency_within_the_window_is_a_suspected_duplicate():
    first = record(payment_id=uuid.uuid4())
    second = record(occurred_at=OLD + timedelta(minutes=5), payment_id=None)
    [finding] = judge_customer_duplicate(second, [first], SETTINGS)
    assert finding.type == "DuplicateChargeSuspected"
    assert finding.evidence["first_record_id"] == str(first.id)
    assert judge_customer_duplicate(first, [second], SETTINGS) == []
    late = replace(second, occurred_at=OLD + timedelta(minutes=11))
    assert judge_customer_duplicate(late, [first], SETTINGS) == []
    other_amount = replace(second, amount_minor=999)
    assert judge_customer_duplicate(other_amount, [first], SETTINGS) == []


def test_every_type_has_its_default_severity():
    assert SEVERITY == {
        "MissingInternalRecord": "high",
        "MissingProviderRecord": "medium",
        "AmountMismatch": "high",
        "CurrencyMismatch": "high",
        "StatusMismatch": "medium",
        "DuplicateChargeSuspected": "high",
        "DisputeOpened": "high",
        "PayoutMismatch": "high",
        "SettlementAmountMismatch": "high",
        "UnsettledPayment": "medium",
        "FeeMismatch": "low",
        "StatementBalanceMismatch": "high",
        "PayoutNotReceived": "high",
        "DepositAmountMismatch": "high",
        "UnexpectedDeposit": "medium",
    }
    assert set(SEVERITY) == set(DISCREPANCY_TYPES)


def test_item_outcome():
    assert item_outcome([]) == "matched"
    assert (
        item_outcome(compare_pair(payment(), record(amount_minor=1), SETTINGS, NOW)) == "mismatched"
    )


def test_status_and_refund_differences_wait_until_both_sides_are_quiet():
    fresh_record = record(status="refunded", amount_refunded_minor=1000, updated_at=FRESH)
    assert compare_pair(payment(), fresh_record, SETTINGS, NOW) == []
    stale_record = replace(fresh_record, updated_at=OLD)
    assert {f.type for f in compare_pair(payment(), stale_record, SETTINGS, NOW)} == {
        "StatusMismatch",
        "AmountMismatch",
    }
    charged_differently = record(amount_minor=900, updated_at=FRESH)
    assert [f.type for f in compare_pair(payment(), charged_differently, SETTINGS, NOW)] == [
        "AmountMismatch"
    ]
