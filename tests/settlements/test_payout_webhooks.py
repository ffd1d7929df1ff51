"""Stripe ``payout.*`` webhooks: stored and processed like other events, each one upserting
the payout it states, whose status follows the provider's latest word."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from shared.access.settings_log import OPERATOR
from shared.ingest.processing import process_provider_event
from shared.models import PAYOUT_STATUSES, SettlementPayout
from shared.platform.errors import ValidationFailed
from shared.providers import PayoutUpdate
from shared.providers.stripe import normalise_stripe_event
from shared.settlements.imports import import_settlement_file
from shared.settlements.payouts import STATUS_RANK
from tests.support.factories import make_account, make_event, make_org

CREATED = 1_778_000_000  # 2026-05-05 17:33:20 UTC


def payout_event(event_type: str, status: str, at: int, **fields) -> dict:
    payout = {
        "id": "po_1", "object": "payout", "amount": 96500, "currency": "eur",
        "arrival_date": 1_778_112_000, "status": status, "created": CREATED,
    } | fields  # fmt: skip
    return {"id": f"evt_{at}", "type": event_type, "created": at, "data": {"object": payout}}


def deliver(session, account, event: dict) -> str:
    stored = make_event(session, account, event["type"], event)
    return process_provider_event(session=session, event_id=stored.id)


def payout_row(session, org) -> SettlementPayout:
    session.expire_all()
    return session.scalars(select(SettlementPayout).where(SettlementPayout.org_id == org.id)).one()


@pytest.fixture
def org(session):
    return make_org(session)


@pytest.fixture
def account(session, org):
    return make_account(session, org, "stripe")


def test_every_payout_status_has_a_rank():
    assert set(STATUS_RANK) == set(PAYOUT_STATUSES)


def test_a_payout_event_states_the_payout_as_of_the_event():
    update = normalise_stripe_event("payout.paid", payout_event("payout.paid", "paid", CREATED))
    assert isinstance(update, PayoutUpdate)
    payout = update.payout
    assert (payout.payout_id, payout.currency, payout.amount_minor, payout.status) == (
        "po_1", "EUR", 96500, "paid",
    )  # fmt: skip
    assert payout.arrival_date == date(2026, 5, 7)
    assert update.event_at == datetime.fromtimestamp(CREATED, UTC)


@pytest.mark.parametrize(
    ("fields", "named"),
    [({"currency": "xx"}, "data.object.currency"), ({"amount": 1.5}, "data.object.amount"),
     ({"id": None}, "data.object.id")],
)  # fmt: skip
def test_a_payout_event_that_cannot_be_read_names_the_field(fields, named):
    event = payout_event("payout.updated", "paid", CREATED, **fields)
    with pytest.raises(ValidationFailed, match=named):
        normalise_stripe_event("payout.updated", event)


def test_a_payout_webhook_before_any_file_records_the_payout(session, org, account):
    assert deliver(session, account, payout_event("payout.created", "pending", CREATED)) == (
        "processed"
    )
    payout = payout_row(session, org)
    assert (payout.file_id, payout.provider, payout.payout_id, payout.status) == (
        None, "stripe", "po_1", "pending",
    )  # fmt: skip
    assert (payout.amount_minor, payout.arrival_date) == (96500, date(2026, 5, 7))


def test_payout_events_in_any_order_converge_to_the_latest_status(session, org, account):
    deliver(session, account, payout_event("payout.paid", "paid", CREATED + 20))
    deliver(session, account, payout_event("payout.updated", "in_transit", CREATED + 10))
    assert payout_row(session, org).status == "paid"
    deliver(session, account, payout_event("payout.failed", "failed", CREATED + 30))
    assert payout_row(session, org).status == "failed"


def test_a_file_read_later_moves_the_status_on_and_becomes_the_payouts_file(session, org, account):
    deliver(session, account, payout_event("payout.created", "in_transit", CREATED + 10))
    document = payout_event("payout.paid", "paid", CREATED)["data"]["object"]
    imported = import_settlement_file(
        session=session, org_id=org.id, binary=io.BytesIO(json.dumps(document).encode()),
        filename="po_1.json",
        imported_by=OPERATOR,
    ).file  # fmt: skip
    payout = payout_row(session, org)
    assert (payout.status, payout.file_id) == ("paid", imported.id)
    assert imported.summary["already_known"]["payouts"] == 1
    # A webhook older than the file's word and less far along changes nothing.
    deliver(session, account, payout_event("payout.updated", "in_transit", CREATED + 5))
    assert payout_row(session, org).status == "paid"
