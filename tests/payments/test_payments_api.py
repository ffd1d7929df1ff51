"""``POST /billing/payments``: batch upsert of internal payments, item by item."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from shared.access.api_keys import create_api_key
from shared.access.organizations import create_organization
from shared.models import Payment
from shared.payments.imports import MAX_BATCH, upsert_payments
from shared.platform.db import unit_of_work
from shared.platform.tasks import MATCH_PAYMENTS

URL = "/billing/payments"


@pytest.fixture(autouse=True)
def _empty_matching_queue(redis_client):
    # The payments of these tests roll back: their match messages must not linger.
    yield
    redis_client.delete("matching")


@pytest.fixture
def org(session):
    return create_organization(session=session, name="Acme")


@pytest.fixture
def owner_key(session, org):
    return create_api_key(session=session, org_id=org.id, role="owner").secret


def queued_for_matching(session, org_id) -> list:
    """The payment ids waiting in pending_payment_matches, sorted."""
    return sorted(
        session.scalars(
            text("SELECT payment_id FROM pending_payment_matches WHERE org_id = :org"),
            {"org": org_id},
        )
    )


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def payment(external_id: str = "inv_1", **fields) -> dict:
    return {
        "external_id": external_id,
        "provider": "stripe",
        "provider_reference": f"pi_{external_id}",
        "amount_minor": 12_345,
        "currency": "USD",
        "status": "succeeded",
        "amount_refunded_minor": 0,
        "customer_ref": "cus_1",
        "occurred_at": "2026-03-01T12:00:00+00:00",
        **fields,
    }


def post(client, key: str, payments: list) -> object:
    return client.post(URL, json={"payments": payments}, headers=auth(key))


def stored(session, org_id) -> dict[str, Payment]:
    session.expire_all()
    rows = session.scalars(select(Payment).where(Payment.org_id == org_id)).all()
    return {row.external_id: row for row in rows}


def row_version(session, payment_id) -> str:
    """The row's xmin: it changes whenever PostgreSQL writes a new version of the row."""
    return session.execute(
        text("SELECT xmin::text FROM payments WHERE id = :id"), {"id": payment_id}
    ).scalar_one()


def test_new_payments_are_created_and_queued_for_matching(
    client, session, org, owner_key, published_tasks
):
    response = post(client, owner_key, [payment("inv_1"), payment("inv_2", customer_ref=None)])
    assert response.status_code == 200
    assert response.json == {"created": 2, "updated": 0, "unchanged": 0, "rejected": []}
    rows = stored(session, org.id)
    first = rows["inv_1"]
    assert (
        first.provider,
        first.provider_reference,
        first.amount_minor,
        first.currency,
        first.status,
        first.amount_refunded_minor,
        first.customer_ref,
        first.occurred_at,
    ) == (
        "stripe",
        "pi_inv_1",
        12_345,
        "USD",
        "succeeded",
        0,
        "cus_1",
        datetime(2026, 3, 1, 12, tzinfo=UTC),
    )
    assert rows["inv_2"].customer_ref is None
    assert queued_for_matching(session, org.id) == sorted(row.id for row in rows.values())
    assert published_tasks == [(MATCH_PAYMENTS, [])]


def test_optional_fields_may_be_left_out(client, session, org, owner_key):
    minimal = {
        key: value
        for key, value in payment("inv_min").items()
        if key not in {"provider_reference", "customer_ref", "amount_refunded_minor"}
    }
    assert post(client, owner_key, [minimal]).json["created"] == 1
    row = stored(session, org.id)["inv_min"]
    assert (row.provider_reference, row.customer_ref, row.amount_refunded_minor) == (None, None, 0)


def test_resending_the_same_batch_changes_nothing_and_queues_nothing(
    client, session, org, owner_key, published_tasks
):
    batch = [payment("inv_1"), payment("inv_2", provider_reference=None)]
    post(client, owner_key, batch)
    versions = {key: row_version(session, row.id) for key, row in stored(session, org.id).items()}
    published_tasks.clear()
    queued = queued_for_matching(session, org.id)
    response = post(client, owner_key, batch)
    assert response.json == {"created": 0, "updated": 0, "unchanged": 2, "rejected": []}
    assert published_tasks == []
    assert queued_for_matching(session, org.id) == queued
    after = {key: row_version(session, row.id) for key, row in stored(session, org.id).items()}
    assert after == versions


def test_the_same_instant_in_another_offset_is_unchanged(client, session, org, owner_key):
    post(client, owner_key, [payment(occurred_at="2026-03-01T12:00:00Z")])
    again = post(client, owner_key, [payment(occurred_at="2026-03-01T14:00:00+02:00")])
    assert again.json["unchanged"] == 1


def test_a_changed_payment_is_updated_and_queued_once(
    client, session, org, owner_key, published_tasks
):
    post(client, owner_key, [payment("inv_1"), payment("inv_2"), payment("inv_3")])
    before = stored(session, org.id)
    untouched_version = row_version(session, before["inv_3"].id)
    published_tasks.clear()
    session.execute(text("DELETE FROM pending_payment_matches"))
    response = post(
        client,
        owner_key,
        [
            payment("inv_1", status="refunded", amount_refunded_minor=12_345),
            payment("inv_2", provider_reference=None),
            payment("inv_3"),
        ],
    )
    assert response.json == {"created": 0, "updated": 2, "unchanged": 1, "rejected": []}
    after = stored(session, org.id)
    assert (after["inv_1"].status, after["inv_1"].amount_refunded_minor) == ("refunded", 12_345)
    assert after["inv_2"].provider_reference is None
    assert after["inv_1"].id == before["inv_1"].id
    assert row_version(session, after["inv_3"].id) == untouched_version
    assert queued_for_matching(session, org.id) == sorted([before["inv_1"].id, before["inv_2"].id])
    assert published_tasks == [(MATCH_PAYMENTS, [])]


def test_created_and_updated_are_counted_apart_in_one_batch(client, session, org, owner_key):
    post(client, owner_key, [payment("inv_1"), payment("inv_2")])
    response = post(
        client, owner_key, [payment("inv_1", amount_minor=1), payment("inv_2"), payment("inv_3")]
    )
    assert response.json == {"created": 1, "updated": 1, "unchanged": 1, "rejected": []}


def test_good_items_land_and_bad_ones_are_reported_by_index_with_the_field(
    client, session, org, owner_key, published_tasks
):
    response = post(
        client,
        owner_key,
        [
            payment("inv_1"),
            payment("inv_2", amount_minor=-5),
            "not an object",
            payment("inv_4", currency="ZZZ", status="paid"),
            payment("inv_5"),
        ],
    )
    assert response.status_code == 200
    body = response.json
    assert (body["created"], body["updated"], body["unchanged"]) == (2, 0, 0)
    assert [item["index"] for item in body["rejected"]] == [1, 2, 3]
    assert [error["field"] for error in body["rejected"][0]["errors"]] == ["amount_minor"]
    assert body["rejected"][1]["errors"] == [
        {"field": None, "message": "each payment must be a JSON object"}
    ]
    assert {error["field"] for error in body["rejected"][2]["errors"]} == {"currency", "status"}
    rows = stored(session, org.id)
    assert set(rows) == {"inv_1", "inv_5"}
    assert queued_for_matching(session, org.id) == sorted(row.id for row in rows.values())
    assert published_tasks == [(MATCH_PAYMENTS, [])]


def test_rejections_never_echo_the_input(client, org, owner_key):
    secret_looking = "sk_live_" + "x" * 300
    response = post(
        client,
        owner_key,
        [
            payment(secret_looking, provider_reference="pi_1"),
            payment("inv_2", currency=secret_looking),
        ],
    )
    assert secret_looking not in response.get_data(as_text=True)
    assert [error["field"] for item in response.json["rejected"] for error in item["errors"]] == [
        "external_id",
        "currency",
    ]


def test_when_every_item_is_rejected_the_answer_is_still_200_with_the_reasons(
    client, session, org, owner_key, published_tasks
):
    response = post(client, owner_key, [payment("inv_1", amount_minor=1.5), {"external_id": 1}])
    assert response.status_code == 200
    body = response.json
    assert (body["created"], body["updated"], body["unchanged"]) == (0, 0, 0)
    assert [item["index"] for item in body["rejected"]] == [0, 1]
    assert stored(session, org.id) == {}
    assert published_tasks == []


def test_an_empty_batch_does_nothing(client, org, owner_key):
    response = post(client, owner_key, [])
    assert response.json == {"created": 0, "updated": 0, "unchanged": 0, "rejected": []}


def test_the_same_external_id_twice_in_a_batch_rejects_the_later_one(
    client, session, org, owner_key
):
    response = post(
        client,
        owner_key,
        [payment("inv_1", amount_minor=100), payment("inv_2"), payment("inv_1", amount_minor=200)],
    )
    body = response.json
    assert body["created"] == 2
    assert body["rejected"] == [
        {
            "index": 2,
            "errors": [
                {"field": "external_id", "message": "the same external_id is already at index 0"}
            ],
        }
    ]
    assert stored(session, org.id)["inv_1"].amount_minor == 100


def test_a_duplicate_of_a_rejected_item_is_rejected_too(client, session, org, owner_key):
    response = post(client, owner_key, [payment("inv_1", status="paid"), payment("inv_1")])
    assert [item["index"] for item in response.json["rejected"]] == [0, 1]
    assert stored(session, org.id) == {}


def test_a_full_batch_of_1000_is_accepted(client, session, org, owner_key):
    batch = [payment(f"inv_{number}") for number in range(MAX_BATCH)]
    assert post(client, owner_key, batch).json["created"] == MAX_BATCH


def test_more_than_1000_items_are_refused_whole(client, session, org, owner_key, published_tasks):
    batch = [payment(f"inv_{number}") for number in range(MAX_BATCH + 1)]
    response = post(client, owner_key, batch)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "at most 1000" in response.json["detail"]
    assert stored(session, org.id) == {}
    assert published_tasks == []


def test_importing_needs_an_owner_or_manager_key(client, session, org):
    body = {"payments": [payment()]}
    missing = client.post(URL, json=body)
    assert missing.status_code == 401
    assert missing.mimetype == "application/problem+json"
    viewer_key = create_api_key(session=session, org_id=org.id, role="viewer").secret
    viewer = client.post(URL, json=body, headers=auth(viewer_key))
    assert viewer.status_code == 403
    assert stored(session, org.id) == {}
    for number, role in enumerate(("owner", "manager")):
        key = create_api_key(session=session, org_id=org.id, role=role).secret
        response = client.post(
            URL, json={"payments": [payment(f"inv_{number}")]}, headers=auth(key)
        )
        assert response.status_code == 200
        assert response.json["created"] == 1


def test_another_organisations_payment_with_the_same_external_id_is_never_touched(
    client, session, org, owner_key
):
    other = create_organization(session=session, name="Globex")
    other_key = create_api_key(session=session, org_id=other.id, role="owner").secret
    post(client, owner_key, [payment("inv_1", amount_minor=100)])
    mine = stored(session, org.id)["inv_1"]
    version = row_version(session, mine.id)
    response = post(client, other_key, [payment("inv_1", amount_minor=999)])
    assert response.json["created"] == 1
    assert stored(session, org.id)["inv_1"].amount_minor == 100
    assert row_version(session, mine.id) == version
    theirs = stored(session, other.id)["inv_1"]
    assert (theirs.amount_minor, theirs.id != mine.id) == (999, True)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_is_refused_with_415(client, owner_key, content_type):
    response = client.post(
        URL,
        data=json.dumps({"payments": []}),
        headers={**auth(owner_key), "Content-Type": content_type},
    )
    assert response.status_code == 415
    assert response.mimetype == "application/problem+json"


def test_malformed_json_is_refused_with_400(client, owner_key):
    response = client.post(
        URL,
        data=b'{"payments": [',
        headers={**auth(owner_key), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="no payments"),
        pytest.param({"payments": "inv_1"}, id="payments not a list"),
        pytest.param({"payments": {"external_id": "inv_1"}}, id="payments an object"),
        pytest.param({"payments": None}, id="payments null"),
        pytest.param({"payments": [], "dry_run": True}, id="unknown top-level field"),
    ],
)
def test_a_body_of_the_wrong_shape_is_refused_with_422(client, owner_key, body):
    response = client.post(URL, json=body, headers=auth(owner_key))
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["errors"]


def test_the_currency_is_stored_upper_case(client, session, org, owner_key):
    post(client, owner_key, [payment(currency="eur")])
    assert stored(session, org.id)["inv_1"].currency == "EUR"
    assert post(client, owner_key, [payment(currency="EUR")]).json["unchanged"] == 1


@pytest.mark.parametrize(
    ("currency", "amount_minor"),
    [("JPY", 1_500), ("KWD", 1_234), ("USD", 1_234), ("BHD", 5)],
)
def test_amounts_are_stored_as_minor_units_whatever_the_exponent(
    client, session, org, owner_key, currency, amount_minor
):
    post(client, owner_key, [payment(currency=currency, amount_minor=amount_minor)])
    row = stored(session, org.id)["inv_1"]
    assert (row.currency, row.amount_minor) == (currency, amount_minor)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount_minor", -1),
        ("amount_minor", 1.5),
        ("amount_minor", 100.0),
        ("amount_minor", "100"),
        ("amount_minor", True),
        ("amount_minor", 10**15 + 1),
        ("amount_minor", 10**30),
        ("amount_refunded_minor", -1),
        ("amount_refunded_minor", 12_346),
        ("currency", "ZZZ"),
        ("currency", "XAU"),
        ("currency", "US"),
        ("currency", 840),
        ("occurred_at", "2026-03-01T12:00:00"),
        ("occurred_at", "2026-03-01"),
        ("occurred_at", 1_772_366_400),
        ("occurred_at", "yesterday"),
        ("occurred_at", "0001-01-01T00:00:00+01:00"),
        ("status", "paid"),
        ("status", "SUCCEEDED"),
        ("provider", "paypal"),
        ("external_id", ""),
        ("external_id", "x" * 256),
        ("external_id", " inv_1"),
        ("external_id", 42),
        ("provider_reference", ""),
        ("customer_ref", " cus_1"),
        ("created_at", "2026-03-01T12:00:00Z"),
        ("id", "2b8e1c9e-8d52-4f0e-9a4b-1f7d0f6f7d7a"),
    ],
)
def test_an_invalid_field_rejects_the_item_naming_the_field(
    client, session, org, owner_key, field, value
):
    response = post(client, owner_key, [payment(**{field: value})])
    assert response.status_code == 200
    [rejected] = response.json["rejected"]
    assert rejected["index"] == 0
    assert field in [error["field"] for error in rejected["errors"]]
    assert all(error["message"] for error in rejected["errors"])
    assert stored(session, org.id) == {}


@pytest.mark.parametrize(
    "field", ["external_id", "provider", "amount_minor", "currency", "status", "occurred_at"]
)
def test_a_missing_required_field_rejects_the_item(client, org, owner_key, field):
    item = payment()
    del item[field]
    [rejected] = post(client, owner_key, [item]).json["rejected"]
    assert rejected["errors"] == [{"field": field, "message": "Field required"}]


def test_no_task_is_queued_when_the_transaction_rolls_back(session, org, published_tasks):
    with pytest.raises(RuntimeError), unit_of_work() as work:
        result = upsert_payments(session=work, org_id=org.id, items=[payment()])
        assert result.created == 1
        raise RuntimeError("the caller failed after the upsert")
    assert published_tasks == []
    assert stored(session, org.id) == {}
