"""One declaration of a provider record's fields: every shape and column list follows the model."""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import UTC, datetime, timedelta

from shared.matching.record_fields import (
    BINDING_COLUMNS,
    DERIVED_COLUMNS,
    FACT_FIELDS,
    FOLDED_FIELDS,
    IDENTITY_COLUMNS,
    RECORD_COLUMNS,
    ROW_FLAGS,
    STATE_COLUMNS,
    STATED_FIELDS,
    RecordFacts,
    RecordRow,
    RecordState,
    RecordUpdate,
    copy_state,
    record_facts,
    state_of,
)
from shared.matching.statements import INSERT_RECORDS, UPDATE_BINDINGS
from shared.models import ProviderRecord

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TABLE_COLUMNS = [column.name for column in ProviderRecord.__table__.columns]


def names(shape) -> list[str]:
    return [f.name for f in fields(shape)]


def row(**values) -> RecordRow:
    defaults = {
        "id": uuid.uuid4(),
        "org_id": uuid.uuid4(),
        "provider": "stripe",
        "provider_reference": "pi_1",
        "merchant_reference": "inv_1",
        "amount_minor": 2500,
        "currency": "EUR",
        "status": "partially_refunded",
        "amount_refunded_minor": 500,
        "customer_ref": "cus_1",
        "dispute_status": "open",
        "dispute_amount_minor": 2500,
        "occurred_at": AT,
        "last_event_at": AT + timedelta(minutes=3),
        "payment_status": "succeeded",
        "status_at": AT + timedelta(minutes=1),
        "refunds": {"re_1": 500},
        "reported_refunded_minor": 500,
        "dispute_at": AT + timedelta(minutes=3),
        "dispute_reason": "fraudulent",
        "dispute_provider_status": "needs_response",
        "dispute_evidence_due_at": AT + timedelta(days=14),
        "payment_id": uuid.uuid4(),
        "match_method": "provider_reference",
        "matched_at": AT + timedelta(minutes=1),
        "created_at": AT,
        "updated_at": AT + timedelta(minutes=3),
    }
    return RecordRow(**(defaults | values))


def test_the_row_holds_every_column_of_the_model_in_table_order_and_its_flags():
    assert list(RECORD_COLUMNS) == TABLE_COLUMNS
    assert names(RecordRow) == [*TABLE_COLUMNS, *ROW_FLAGS]


def test_every_column_is_identity_or_state_and_each_role_is_made_of_columns():
    assert set(IDENTITY_COLUMNS).isdisjoint(STATE_COLUMNS)
    assert set(IDENTITY_COLUMNS) | set(STATE_COLUMNS) == set(TABLE_COLUMNS)
    assert {*BINDING_COLUMNS, *DERIVED_COLUMNS} <= set(STATE_COLUMNS)
    assert set(FOLDED_FIELDS) <= set(TABLE_COLUMNS)
    assert set(FACT_FIELDS) <= set(TABLE_COLUMNS)


def test_the_shapes_are_projections_of_the_columns():
    assert names(RecordState) == list(FOLDED_FIELDS)
    assert names(RecordFacts) == list(FACT_FIELDS)
    # The period run selects these columns in this order: its statements' text is pinned.
    assert FACT_FIELDS == (
        "id", "provider", "provider_reference", "merchant_reference", "amount_minor",
        "currency", "status", "amount_refunded_minor", "customer_ref", "occurred_at",
        "created_at", "updated_at", "dispute_status", "dispute_amount_minor", "dispute_reason",
        "dispute_provider_status", "dispute_evidence_due_at", "payment_id", "match_method",
    )  # fmt: skip
    assert names(RecordUpdate) == ["provider_reference", "event_at", *STATED_FIELDS]
    assert set(STATED_FIELDS) == {
        "currency", "amount_minor", "merchant_reference", "customer_ref", "occurred_at",
        "payment_status", "refunds", "reported_refunded_minor", "dispute_status",
        "dispute_amount_minor", "dispute_reason", "dispute_provider_status",
        "dispute_evidence_due_at",
    }  # fmt: skip


def test_postgres_types_follow_the_model():
    assert RECORD_COLUMNS["id"] == RECORD_COLUMNS["payment_id"] == "uuid"
    assert RECORD_COLUMNS["provider"] == RECORD_COLUMNS["currency"] == "text"
    assert RECORD_COLUMNS["amount_minor"] == "bigint"
    assert RECORD_COLUMNS["occurred_at"] == RECORD_COLUMNS["matched_at"] == "timestamptz"
    assert RECORD_COLUMNS["refunds"] == "jsonb"


def test_statements_name_the_declared_columns():
    assert str(INSERT_RECORDS.text).startswith(
        f"INSERT INTO provider_records ({', '.join(TABLE_COLUMNS)}) SELECT * FROM unnest("
    )
    assert str(UPDATE_BINDINGS.text).startswith(
        "UPDATE provider_records AS r SET payment_id = v.payment_id, "
        "match_method = v.match_method, matched_at = v.matched_at FROM unnest("
    )


def test_an_update_states_nothing_by_default():
    update = RecordUpdate(provider_reference="pi_1", event_at=AT)
    assert update.refunds == {}
    assert all(getattr(update, name) is None for name in STATED_FIELDS if name != "refunds")
    assert RecordUpdate(provider_reference="pi_1", event_at=AT) == update


def test_state_round_trips_through_a_row():
    source = row()
    state = state_of(source)
    target = row(**(dict.fromkeys(FOLDED_FIELDS[1:]) | {"refunds": {}}))  # nothing folded
    copy_state(state, target)
    assert state_of(target) == state
    assert all(getattr(target, name) == getattr(source, name) for name in FOLDED_FIELDS)


def test_a_state_keeps_its_refunds_when_the_row_changes_them():
    source = row()
    state = state_of(source)
    source.refunds["re_2"] = 100
    assert state.refunds == {"re_1": 500}


def test_facts_of_a_row_and_of_the_model_carry_the_same_values():
    source = row()
    facts = record_facts(source)
    assert all(getattr(facts, name) == getattr(source, name) for name in FACT_FIELDS)
    model = ProviderRecord(**{name: getattr(source, name) for name in TABLE_COLUMNS})
    assert record_facts(model) == facts
