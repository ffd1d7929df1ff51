"""The payment and the provider record side by side, differing fields marked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.discrepancies.evidence import FIELDS, compare_subjects, subjects_of
from shared.discrepancies.listing import get_discrepancy
from shared.models import Payment, ProviderRecord
from tests.discrepancies.factories import make_discrepancy, make_record
from tests.support.factories import make_payment

AT = datetime(2026, 11, 30, 12, tzinfo=UTC)


def payment(**fields) -> Payment:
    values = {"external_id": "inv_1", "provider_reference": None, "amount_minor": 2_000,
              "currency": "EUR", "status": "succeeded", "amount_refunded_minor": 0,
              "customer_ref": "cus_1", "occurred_at": AT}  # fmt: skip
    return Payment(**(values | fields))


def record(**fields) -> ProviderRecord:
    values = {"merchant_reference": "inv_1", "provider_reference": "pi_1", "amount_minor": 2_000,
              "currency": "EUR", "status": "succeeded", "amount_refunded_minor": 0,
              "customer_ref": "cus_1", "occurred_at": AT + timedelta(seconds=3)}  # fmt: skip
    return ProviderRecord(**(values | fields))


def marked(fields) -> set[str]:
    return {field.name for field in fields if field.differs}


def test_equal_sides_mark_nothing_and_times_are_shown_not_compared():
    fields = compare_subjects(payment(), record())
    assert [field.name for field in fields] == [name for name, *_ in FIELDS]
    assert marked(fields) == set()
    (occurred,) = [field for field in fields if field.name == "occurred_at"]
    assert (occurred.internal, occurred.provider) == (AT, AT + timedelta(seconds=3))


@pytest.mark.parametrize(
    ("internal", "provider", "expected"),
    [
        ({"amount_minor": 2_000}, {"amount_minor": 2_500}, {"amount_minor"}),
        ({"currency": "EUR"}, {"currency": "USD"}, {"currency"}),
        ({"status": "failed"}, {"status": "succeeded"}, {"status"}),
        ({"amount_refunded_minor": 0}, {"amount_refunded_minor": 500}, {"amount_refunded_minor"}),
        ({"customer_ref": "cus_1"}, {"customer_ref": "cus_2"}, {"customer_ref"}),
        ({"external_id": "inv_1"}, {"merchant_reference": "inv_9"}, {"reference"}),
        ({"provider_reference": "pi_0"}, {}, {"provider_reference"}),
        # A side that does not know is not a difference.
        ({}, {"amount_minor": None}, set()),
        ({"provider_reference": None}, {}, set()),
        ({"customer_ref": None}, {"customer_ref": "cus_2"}, set()),
    ],
)
def test_a_field_is_marked_only_when_both_sides_state_different_values(
    internal, provider, expected
):
    assert marked(compare_subjects(payment(**internal), record(**provider))) == expected


def test_a_missing_side_shows_none_and_marks_nothing():
    fields = compare_subjects(payment(), None)
    assert all(field.provider is None for field in fields)
    assert marked(fields) == set()
    assert {field.name: field.internal for field in fields}["amount_minor"] == 2_000


def test_subjects_of_loads_both_sides_of_a_discrepancy(session, org, other_org):
    paid = make_payment(session, org, amount_minor=2_000)
    charged = make_record(session, org, amount_minor=2_500)
    discrepancy = make_discrepancy(session, org, payment_id=paid.id, provider_record_id=charged.id)
    view = get_discrepancy(session=session, org_id=org.id, discrepancy_id=discrepancy.id)
    loaded = subjects_of(session=session, org_id=org.id, view=view.discrepancy)
    assert loaded == (paid, charged)
    assert "amount_minor" in marked(compare_subjects(*loaded))
    # Read within the organisation only.
    assert subjects_of(session=session, org_id=other_org.id, view=view.discrepancy) == (None, None)
