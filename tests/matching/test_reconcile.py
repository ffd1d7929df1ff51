"""The incremental engine against the real database: events and payments, in any order."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from shared.ingest.processing import process_provider_event
from shared.matching.engine import reconcile_payment
from shared.matching.grace import sweep_expired_grace_periods
from shared.models import (
    ProviderEvent,
    ProviderRecord,
    ReconciliationActionLog,
    ReconciliationDiscrepancy,
    ReconciliationItem,
)
from tests.support.factories import (
    make_account,
    make_event,
    make_org,
    make_payment,
    stripe_intent_event,
    stripe_refund_event,
)
from tests.support.signing import adyen_item


def process(session, account, payload, event_type=None):
    event = make_event(session, account, event_type or payload["type"], payload)
    state = process_provider_event(session=session, event_id=event.id)
    session.flush()
    return event, state


def discrepancies(session, **filters):
    session.flush()
    session.expire_all()
    query = select(ReconciliationDiscrepancy)
    for name, value in filters.items():
        query = query.where(getattr(ReconciliationDiscrepancy, name) == value)
    return list(session.scalars(query))


def record_of(session, reference="pi_1"):
    session.flush()
    session.expire_all()
    return session.scalars(
        select(ProviderRecord).where(ProviderRecord.provider_reference == reference)
    ).one()


def payments_checksum(session) -> str:
    rows = session.execute(text("SELECT payments::text FROM payments ORDER BY id")).scalars()
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def test_an_event_for_a_known_payment_matches_by_provider_reference(session):
    org = make_org(session)
    account = make_account(session, org)
    payment = make_payment(session, org, provider_reference="pi_1")
    _, state = process(session, account, stripe_intent_event())
    assert state == "processed"
    record = record_of(session)
    assert (record.payment_id, record.match_method, record.status) == (
        payment.id,
        "provider_reference",
        "succeeded",
    )
    [item] = session.scalars(select(ReconciliationItem)).all()
    assert (item.outcome, item.payment_id, item.provider_record_id) == (
        "matched",
        payment.id,
        record.id,
    )
    assert discrepancies(session) == []


def test_a_payment_imported_after_its_webhook_matches_and_nothing_opens_meanwhile(session):
    org = make_org(session)
    account = make_account(session, org)
    process(session, account, stripe_intent_event(external_id="inv_42"))
    assert record_of(session).payment_id is None
    assert discrepancies(session) == []
    payment = make_payment(session, org, external_id="inv_42")
    reconcile_payment(session=session, payment_id=payment.id, now=datetime.now(UTC), evidence={})
    record = record_of(session)
    assert (record.payment_id, record.match_method) == (payment.id, "merchant_reference")
    assert discrepancies(session) == []


def test_heuristic_matches_a_unique_pair_only(session):
    org = make_org(session)
    account = make_account(session, org)
    now = datetime.now(UTC)
    payment = make_payment(session, org, amount_minor=777, occurred_at=now - timedelta(minutes=3))
    process(session, account, stripe_intent_event(amount=777, intent_id="pi_h", created=now))
    assert (record_of(session, "pi_h").payment_id, record_of(session, "pi_h").match_method) == (
        payment.id,
        "heuristic",
    )
    make_payment(session, org, amount_minor=555, occurred_at=now)
    make_payment(session, org, amount_minor=555, occurred_at=now)
    process(session, account, stripe_intent_event(amount=555, intent_id="pi_amb", created=now))
    assert record_of(session, "pi_amb").payment_id is None


def test_an_amount_mismatch_opens_once_with_an_opened_entry(session):
    org = make_org(session)
    account = make_account(session, org)
    payment = make_payment(session, org, provider_reference="pi_1", amount_minor=2000)
    process(session, account, stripe_intent_event(amount=2500))
    process(session, account, stripe_intent_event(amount=2500))
    [found] = discrepancies(session)
    assert (found.type, found.severity, found.status, found.difference_minor) == (
        "AmountMismatch",
        "high",
        "open",
        500,
    )
    assert found.payment_id == payment.id
    [entry] = session.scalars(select(ReconciliationActionLog)).all()
    assert (entry.action, entry.actor, entry.discrepancy_id) == ("opened", "system", found.id)


def test_auto_fix_resolves_a_cleared_condition_naming_the_evidence(session):
    org = make_org(session, auto_fix=True)
    account = make_account(session, org)
    payment = make_payment(session, org, provider_reference="pi_1", amount_minor=2000)
    process(session, account, stripe_intent_event(amount=2500))
    payment.amount_minor = 2500  # the billing side corrects its record
    session.flush()
    reconcile_payment(
        session=session, payment_id=payment.id, now=datetime.now(UTC),
        evidence={"payment_id": str(payment.id), "change": "payment import"},
    )  # fmt: skip
    [found] = discrepancies(session)
    assert (found.status, found.resolution) == ("resolved", "auto_resolved")
    actions = session.scalars(
        select(ReconciliationActionLog).order_by(ReconciliationActionLog.created_at)
    ).all()
    assert [(a.action, a.actor) for a in actions] == [
        ("opened", "system"),
        ("auto_resolved", "system"),
    ]
    assert actions[1].payload["evidence"]["change"] == "payment import"


def test_without_auto_fix_a_cleared_discrepancy_stays_for_finance(session):
    org = make_org(session, auto_fix=False)
    account = make_account(session, org)
    payment = make_payment(session, org, provider_reference="pi_1", amount_minor=2000)
    process(session, account, stripe_intent_event(amount=2500))
    payment.amount_minor = 2500
    session.flush()
    reconcile_payment(session=session, payment_id=payment.id, now=datetime.now(UTC), evidence={})
    assert [d.status for d in discrepancies(session)] == ["open"]


def test_refund_before_charge_converges(session):
    org = make_org(session)
    account = make_account(session, org)
    now = datetime.now(UTC)
    make_payment(
        session, org, provider_reference="pi_1", status="refunded", amount_refunded_minor=2500
    )
    process(session, account, stripe_refund_event(created=now))
    process(session, account, stripe_intent_event(created=now - timedelta(minutes=1)))
    record = record_of(session)
    assert (record.status, record.amount_minor, record.amount_refunded_minor) == (
        "refunded",
        2500,
        2500,
    )
    assert discrepancies(session) == []


def test_a_second_charge_for_one_payment_opens_duplicate_charge_suspected(session):
    org = make_org(session)
    account = make_account(session, org)
    payment = make_payment(session, org, external_id="inv_dup")
    now = datetime.now(UTC)
    process(
        session, account, stripe_intent_event(intent_id="pi_a", external_id="inv_dup", created=now)
    )
    later = now + timedelta(seconds=30)
    process(
        session,
        account,
        stripe_intent_event(intent_id="pi_b", external_id="inv_dup", created=later),
    )
    [found] = discrepancies(session)
    assert (found.type, found.payment_id, found.provider_record_id) == (
        "DuplicateChargeSuspected",
        payment.id,
        record_of(session, "pi_b").id,
    )


def test_an_adyen_shoppers_repeated_charge_opens_duplicate_charge_suspected(session):
    """Adyen names the shopper under ``recurring.`` or ``tokenization.``, not the plain key."""
    org = make_org(session)
    account = make_account(session, org, "adyen")
    now = datetime.now(UTC).replace(microsecond=0)
    for psp, key, at in (
        ("PSP_FIRST", "recurring.shopperReference", now),
        ("PSP_AGAIN", "tokenization.shopperReference", now + timedelta(minutes=2)),
    ):
        item = adyen_item(psp) | {"eventDate": at.isoformat(), "additionalData": {key: "S-1"}}
        payload = {"live": "false", "NotificationRequestItem": item}
        process(session, account, payload, "AUTHORISATION")
    [found] = discrepancies(session)
    assert (found.type, found.provider_record_id) == (
        "DuplicateChargeSuspected",
        record_of(session, "PSP_AGAIN").id,
    )


def test_missing_records_open_only_when_the_grace_period_is_over(session):
    org = make_org(session, grace_period_seconds=3600)
    account = make_account(session, org)
    process(session, account, stripe_intent_event(intent_id="pi_orphan", amount=1111))
    payment = make_payment(session, org, external_id="inv_lonely", amount_minor=2222)
    reconcile_payment(session=session, payment_id=payment.id, now=datetime.now(UTC), evidence={})
    assert sweep_expired_grace_periods(session=session, now=datetime.now(UTC)) == 0
    assert discrepancies(session) == []
    later = datetime.now(UTC) + timedelta(hours=1, minutes=1)
    assert sweep_expired_grace_periods(session=session, now=later) == 2
    found = {(d.type, d.severity) for d in discrepancies(session)}
    assert found == {("MissingInternalRecord", "high"), ("MissingProviderRecord", "medium")}
    assert sweep_expired_grace_periods(session=session, now=later) == 0
    outcomes = {i.outcome for i in session.scalars(select(ReconciliationItem))}
    assert outcomes == {"missing_internal", "missing_provider"}


def test_the_incremental_path_names_each_discrepancys_provider_from_its_subjects(session):
    # The record alone (Adyen), the payment alone (a Standard Webhooks sender), and both
    # (a Stripe duplicate: the same customer charged twice, within the window).
    org = make_org(session, grace_period_seconds=3600)
    adyen = make_account(session, org, "adyen")
    item = adyen_item("PSP_ORPHAN") | {"eventDate": datetime.now(UTC).isoformat()}
    process(session, adyen, {"live": "false", "NotificationRequestItem": item}, "AUTHORISATION")
    payment = make_payment(session, org, provider="standard", external_id="inv_lonely")
    reconcile_payment(session=session, payment_id=payment.id, now=datetime.now(UTC), evidence={})
    later = datetime.now(UTC) + timedelta(hours=1, minutes=1)
    assert sweep_expired_grace_periods(session=session, now=later) == 2
    stripe = make_account(session, org)
    make_payment(session, org, provider_reference="pi_1", amount_minor=2000)
    process(session, stripe, stripe_intent_event(amount=2500))
    found = {(d.type, d.provider) for d in discrepancies(session)}
    assert found == {
        ("MissingInternalRecord", "adyen"),
        ("MissingProviderRecord", "standard"),
        ("AmountMismatch", "stripe"),
    }


def test_unknown_events_are_processed_as_ignored_with_a_reason(session):
    org = make_org(session)
    account = make_account(session, org)
    event, state = process(
        session, account, {"id": "evt_x", "type": "customer.created", "data": {}}
    )
    assert state == "processed"
    assert session.get(ProviderEvent, event.id).ignored_reason


def test_an_unreadable_known_event_ends_failed_with_its_error_and_changes_nothing(session):
    org = make_org(session)
    account = make_account(session, org)
    payload = stripe_intent_event()
    payload["data"]["object"]["amount"] = "lots"
    event, state = process(session, account, payload)
    assert state == "failed"
    stored = session.get(ProviderEvent, event.id)
    assert stored.last_error
    assert stored.attempts == 1
    assert session.scalars(select(ProviderRecord)).all() == []


def test_matching_never_changes_a_payment(session):
    org = make_org(session, auto_fix=True)
    account = make_account(session, org)
    make_payment(session, org, provider_reference="pi_1", amount_minor=1)
    make_payment(session, org, external_id="inv_z", status="refunded", amount_refunded_minor=2500)
    before = payments_checksum(session)
    process(session, account, stripe_intent_event())
    process(session, account, stripe_intent_event(intent_id="pi_z", external_id="inv_z"))
    process(session, account, stripe_refund_event(intent_id="pi_z"))
    sweep_expired_grace_periods(session=session, now=datetime.now(UTC) + timedelta(days=0, hours=2))
    assert payments_checksum(session) == before


def test_a_status_difference_opens_only_once_both_sides_are_quiet(session):
    org = make_org(session, grace_period_seconds=3600)
    account = make_account(session, org)
    make_payment(session, org, provider_reference="pi_1")
    process(session, account, stripe_intent_event())
    process(session, account, stripe_refund_event())
    assert discrepancies(session) == []  # the billing side's refund may be on its way
    later = datetime.now(UTC) + timedelta(hours=1, minutes=1)
    assert sweep_expired_grace_periods(session=session, now=later) == 1
    assert {d.type for d in discrepancies(session)} == {"StatusMismatch", "AmountMismatch"}
    assert sweep_expired_grace_periods(session=session, now=later) == 0


def test_the_heuristic_index_holds_unbound_records_and_serves_the_heuristic(session):
    """Binding a record takes it out of the index rather than adding an entry; the
    heuristic's query for a payment's candidates asks for unbound records, so the partial
    index answers it."""
    from shared.matching.statements import RECORDS_NEAR as _RECORDS_NEAR

    predicate = session.scalar(
        text(
            "SELECT pg_get_expr(indpred, indrelid) FROM pg_index "
            "WHERE indexrelid = 'ix_provider_records_heuristic'::regclass"
        )
    )
    assert predicate == "(payment_id IS NULL)"
    org = make_org(session)
    now = datetime.now(UTC)
    near = {"org_id": org.id, "provider": "stripe", "currency": "EUR", "amount": 100,
            "earliest": now, "latest": now}  # fmt: skip
    session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(session.scalars(text(f"EXPLAIN {_RECORDS_NEAR.text}"), near))
    assert "ix_provider_records_heuristic" in plan


def test_auto_fix_resolves_a_payment_discrepancy_a_later_event_clears(session):
    org = make_org(session, auto_fix=True)
    account = make_account(session, org)
    make_payment(session, org, provider_reference="pi_1", amount_minor=2000)
    now = datetime.now(UTC)
    process(session, account, stripe_intent_event(amount=2500, created=now - timedelta(minutes=2)))
    assert [d.type for d in discrepancies(session, status="open")] == ["AmountMismatch"]
    process(session, account, stripe_intent_event(amount=2000, created=now - timedelta(minutes=1)))
    assert record_of(session).amount_minor == 2000  # the provider's side now agrees
    assert [(d.status, d.resolution) for d in discrepancies(session)] == [
        ("resolved", "auto_resolved")
    ]
