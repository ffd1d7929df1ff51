"""DisputeOpened: opened from the providers' dispute events, moved by them, resolved by them
(won) or by finance (lost, with an adjustment reference); over real PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shared.discrepancies.lifecycle import resolve
from shared.ingest.processing import process_provider_event
from shared.matching.engine import reconcile_payment
from shared.models import ReconciliationDiscrepancy
from shared.platform.errors import ValidationFailed
from tests.discrepancies.calls import BASE, act
from tests.discrepancies.factories import actions_of, reload
from tests.support.factories import (
    make_account,
    make_event,
    make_org,
    make_payment,
    stripe_dispute_event,
    stripe_intent_event,
)

CHARGED = datetime.now(UTC) - timedelta(hours=2)


def deliver(session, account, payload) -> None:
    event = make_event(session, account, payload["type"], payload)
    assert process_provider_event(session=session, event_id=event.id) == "processed"


def dispute_at(minutes: int, event_type: str = "charge.dispute.updated", **fields) -> dict:
    return stripe_dispute_event(event_type, created=CHARGED + timedelta(minutes=minutes), **fields)


def disputes(session, org) -> list[ReconciliationDiscrepancy]:
    session.flush()
    return list(
        session.scalars(
            select(ReconciliationDiscrepancy)
            .where(
                ReconciliationDiscrepancy.org_id == org.id,
                ReconciliationDiscrepancy.type == "DisputeOpened",
            )
            .order_by(ReconciliationDiscrepancy.opened_at)
            .execution_options(populate_existing=True)
        )
    )


@pytest.fixture
def paid(session, org):
    """A matched Stripe payment of 2500 EUR (auto-fix off: only the provider resolves)."""
    org.auto_fix = False
    account = make_account(session, org)
    payment = make_payment(session, org, external_id="inv_1", amount_minor=2500)
    deliver(session, account, stripe_intent_event(external_id="inv_1", created=CHARGED))
    return org, account, payment


def test_a_dispute_on_a_payment_opens_a_high_discrepancy_with_what_the_provider_says(session, paid):
    org, account, payment = paid
    due = CHARGED + timedelta(days=10)
    deliver(session, account, dispute_at(5, "charge.dispute.created", due_by=due))
    (opened,) = disputes(session, org)
    assert (opened.severity, opened.status, opened.payment_id) == ("high", "open", payment.id)
    assert (opened.amount_minor, opened.currency) == (1500, "EUR")
    assert (opened.dispute_status, opened.dispute_provider_status) == ("open", "needs_response")
    assert opened.dispute_reason == "fraudulent"
    assert opened.dispute_evidence_due_at == due.replace(microsecond=0)
    assert (opened.provider_record_id is not None, opened.provider) == (True, "stripe")
    (entry,) = actions_of(session, opened)
    assert entry.action == "opened"
    assert entry.payload["finding"]["provider_status"] == "needs_response"


def test_status_changes_update_the_discrepancy_and_a_win_resolves_it_without_auto_fix(
    session, paid
):
    org, account, _ = paid
    deliver(session, account, dispute_at(5, "charge.dispute.created"))
    deliver(session, account, dispute_at(6, status="under_review", amount=1200))
    (moved,) = disputes(session, org)
    assert (moved.status, moved.dispute_status, moved.amount_minor) == (
        "open",
        "under_review",
        1200,
    )
    won = dispute_at(9, "charge.dispute.closed", status="won")
    deliver(session, account, won)
    (closed,) = disputes(session, org)
    assert (closed.status, closed.resolution, closed.dispute_status) == (
        "resolved",
        "auto_resolved",
        "under_review",  # what it was while open; the win is in its last entry
    )
    opened, updated, resolved = actions_of(session, closed)
    assert [opened.action, updated.action, resolved.action] == [
        "opened",
        "dispute_updated",
        "auto_resolved",
    ]
    assert updated.actor == resolved.actor == "system"
    assert (
        updated.payload["before"]["amount_minor"],
        updated.payload["after"]["amount_minor"],
    ) == (
        1500,
        1200,
    )
    evidence = resolved.payload["evidence"]
    assert (evidence["event_type"], evidence["dispute_status"], evidence["provider_status"]) == (
        "charge.dispute.closed",
        "won",
        "won",
    )
    assert evidence["event_id"]


def test_an_older_dispute_event_arriving_late_changes_nothing(session, paid):
    org, account, _ = paid
    deliver(session, account, dispute_at(10, status="under_review"))
    deliver(session, account, dispute_at(5, "charge.dispute.created"))
    (held,) = disputes(session, org)
    assert (held.dispute_status, held.version) == ("under_review", 1)


def test_a_lost_dispute_stays_open_until_finance_books_the_loss(session, paid, caller):
    org, account, _ = paid
    due = CHARGED + timedelta(days=7)
    deliver(session, account, dispute_at(5, "charge.dispute.created", due_by=due))
    deliver(session, account, dispute_at(30, "charge.dispute.closed", status="lost", due_by=due))
    (lost,) = disputes(session, org)
    assert (lost.status, lost.dispute_status, lost.version) == ("open", "lost", 2)
    resolution = {"resolution": "written_off", "reason": "the issuer kept the chargeback"}
    with pytest.raises(ValidationFailed, match="adjustment_reference"):
        resolve(session=session, caller=caller, discrepancy_id=lost.id, **resolution)
    assert (reload(session, lost).status, reload(session, lost).version) == ("open", 2)
    resolve(
        session=session,
        caller=caller,
        discrepancy_id=lost.id,
        adjustment_reference="GL-2026-118",
        **resolution,
    )
    assert reload(session, lost).adjustment_reference == "GL-2026-118"
    # Judged again with nothing new from the provider: finance's resolution stands.
    deliver(session, account, dispute_at(31, "charge.dispute.closed", status="lost", due_by=due))
    assert [d.status for d in disputes(session, org)] == ["resolved"]


def test_resolving_a_lost_dispute_over_http_without_a_reference_is_422(
    client, session, paid, headers
):
    org, account, _ = paid
    deliver(session, account, dispute_at(5, "charge.dispute.funds_withdrawn", status="lost"))
    (lost,) = disputes(session, org)
    refused = act(client, lost.id, "resolve", headers, {"resolution": "other", "reason": "x"})
    assert refused.status_code == 422
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert "adjustment_reference" in refused.get_json()["detail"]
    assert reload(session, lost).version == 1
    assert act(client, lost.id, "resolve", headers).status_code == 200  # with ADJ-7


def test_a_dispute_on_a_payment_recon_cannot_find_is_attached_to_its_record_then_moved(session):
    org = make_org(session, auto_fix=False)
    account = make_account(session, org)
    deliver(session, account, stripe_intent_event(intent_id="pi_lost", created=CHARGED))
    deliver(session, account, dispute_at(5, "charge.dispute.created", intent_id="pi_lost"))
    (orphan,) = disputes(session, org)
    assert (orphan.payment_id, orphan.status) == (None, "open")
    # The billing side records the payment later: the same discrepancy moves onto it.
    payment = make_payment(
        session, org, external_id="inv_late", provider_reference="pi_lost", amount_minor=2500
    )
    reconcile_payment(session=session, payment_id=payment.id, now=datetime.now(UTC), evidence={})
    (moved,) = disputes(session, org)
    assert (moved.id, moved.payment_id, moved.status) == (orphan.id, payment.id, "open")
    assert [entry.action for entry in actions_of(session, moved)] == ["opened", "dispute_updated"]


def test_a_dispute_first_seen_won_opens_nothing(session, paid):
    org, account, _ = paid
    deliver(session, account, dispute_at(5, "charge.dispute.closed", status="warning_closed"))
    assert disputes(session, org) == []


def test_the_detail_and_the_list_show_the_dispute(client, session, paid, headers):
    org, account, _ = paid
    deliver(session, account, dispute_at(5, "charge.dispute.created"))
    (opened,) = disputes(session, org)
    detail = client.get(f"{BASE}/{opened.id}", headers=headers).get_json()
    assert (detail["dispute_status"], detail["dispute_provider_status"]) == (
        "open",
        "needs_response",
    )
    assert detail["dispute_reason"] == "fraudulent"
    assert detail["dispute_evidence_due_at"] is not None
    for query, expected in [
        ("type=DisputeOpened", [str(opened.id)]),
        ("dispute_status=open", [str(opened.id)]),
        ("dispute_status=lost", []),
    ]:
        listed = client.get(f"{BASE}?{query}", headers=headers).get_json()["items"]
        assert [item["id"] for item in listed] == expected


def test_the_csv_export_carries_the_dispute_columns(client, session, paid, headers):
    _, account, _ = paid
    deliver(session, account, dispute_at(5, "charge.dispute.created", reason="=cmd|calc"))
    exported = client.get(
        f"{BASE}?type=DisputeOpened", headers={**headers, "Accept": "text/csv"}
    ).get_data(as_text=True)
    (row,) = list(csv.DictReader(io.StringIO(exported)))
    assert (row["type"], row["amount"], row["dispute_status"]) == ("DisputeOpened", "15.00", "open")
    assert row["dispute_provider_status"] == "needs_response"
    assert row["dispute_reason"] == "'=cmd|calc"  # provider text is made inert for spreadsheets
    assert row["dispute_evidence_due_at"]


def test_an_unknown_dispute_status_filter_is_422_problem(client, headers):
    refused = client.get(f"{BASE}?dispute_status=chargeback", headers=headers)
    assert refused.status_code == 422
    assert refused.headers["Content-Type"] == "application/problem+json"
