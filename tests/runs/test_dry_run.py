"""Dry runs: the run a finance lead could start, under other settings, with nothing written."""

from __future__ import annotations

from sqlalchemy import func, select

from shared.access.api_keys import create_api_key
from shared.access.settings import SettingsChange
from shared.ingest.processing import process_provider_event
from shared.matching.engine import reconcile_payment
from shared.models import ReconciliationDiscrepancy, ReconciliationRun
from shared.runs.dry_run import Rehearsal, dry_run
from tests.runs.test_runs import DAY, LATER, NOON, run_day
from tests.support.checksums import database_checksum
from tests.support.factories import (
    make_account,
    make_event,
    make_org,
    make_payment,
    stripe_intent_event,
)


def day_of(session, **settings):
    """A day with a clean pair, a pair 5.00 apart and a payment the provider never saw,
    matched by the incremental path under ``settings`` within the grace period (so the
    missing record is not open yet)."""
    org = make_org(session, timezone="UTC", **settings)
    account = make_account(session, org)
    payments = [
        make_payment(session, org, external_id="ok", amount_minor=1000, occurred_at=NOON),
        make_payment(session, org, external_id="off", amount_minor=2000, occurred_at=NOON),
        make_payment(session, org, external_id="unseen", amount_minor=7000, occurred_at=NOON),
    ]
    for intent, external_id, amount in (("pi_ok", "ok", 1000), ("pi_off", "off", 2500)):
        payload = stripe_intent_event(
            intent_id=intent, external_id=external_id, amount=amount, created=NOON
        )
        event = make_event(session, account, payload["type"], payload)
        process_provider_event(session=session, event_id=event.id)
    for payment in payments:
        reconcile_payment(session=session, payment_id=payment.id, now=NOON, evidence={})
    session.flush()
    return org


def subjects(discrepancies) -> set:
    return {(d.type, d.payment_id, d.provider_record_id) for d in discrepancies}


def test_a_dry_run_answers_what_the_run_would_open_and_writes_nothing(session):
    org = day_of(session, amount_tolerance_minor=1000)  # 5.00 apart is within it
    stricter = SettingsChange(amount_tolerance_minor=0)
    before = database_checksum(session)

    rehearsal = dry_run(Rehearsal(org.id, DAY, DAY, stricter), now=LATER)

    assert database_checksum(session) == before
    assert {d.type for d in rehearsal.would_open} == {"AmountMismatch", "MissingProviderRecord"}
    assert rehearsal.would_auto_resolve == []
    assert rehearsal.report["discrepancies_by_type"]["AmountMismatch"] == 1
    assert rehearsal.report["run"]["id"] is None
    # The same settings for real: the run opens exactly what the dry run said.
    org.amount_tolerance_minor = 0
    run = run_day(session, org)
    opened = session.scalars(
        select(ReconciliationDiscrepancy).where(ReconciliationDiscrepancy.run_id == run.id)
    )
    assert subjects(opened) == subjects(rehearsal.would_open)


def test_a_verification_dry_run_names_the_discrepancies_it_would_auto_resolve(session):
    org = day_of(session, amount_tolerance_minor=0)
    [mismatch] = session.scalars(
        select(ReconciliationDiscrepancy).where(ReconciliationDiscrepancy.type == "AmountMismatch")
    )
    looser = SettingsChange(amount_tolerance_minor=1000, auto_fix=True)
    before = database_checksum(session)

    rehearsal = dry_run(Rehearsal(org.id, DAY, DAY, looser, is_verification_run=True), now=LATER)

    assert [(d.id, d.type) for d in rehearsal.would_auto_resolve] == [
        (mismatch.id, "AmountMismatch")
    ]
    assert database_checksum(session) == before
    session.refresh(mismatch)
    assert mismatch.status == "open"


def test_the_api_answers_a_dry_run_with_200_and_writes_nothing(client, session):
    org = day_of(session, amount_tolerance_minor=1000, grace_period_seconds=0)
    key = create_api_key(session=session, org_id=org.id, role="manager").secret
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/billing/reconciliation/runs", headers=headers).status_code == 200
    before = database_checksum(session)  # the key's last use is now written, to the minute

    response = client.post(
        "/billing/reconciliation/runs/trigger",
        json={"date": DAY.isoformat(), "dry_run": True},
        headers=headers,
    )

    assert response.status_code == 200, response.json
    body = response.json
    assert body["dry_run"] is True
    assert body["report"]["totals"]["internal"]
    assert {d["type"] for d in body["would_open"]} == {"MissingProviderRecord"}
    assert body["would_auto_resolve"] == []
    assert database_checksum(session) == before
    assert session.scalar(select(func.count()).select_from(ReconciliationRun)) == 0


def test_a_dry_run_tries_the_settings_sent_with_it_and_changes_none(client, session):
    """ "Tolerance 5.00 on yesterday" before turning it on: the mismatch 5.00 apart would
    no longer open; the organisation keeps its own settings."""
    org = day_of(session, amount_tolerance_minor=0, grace_period_seconds=0)
    key = create_api_key(session=session, org_id=org.id, role="owner").secret
    headers = {"Authorization": f"Bearer {key}"}
    trigger = "/billing/reconciliation/runs/trigger"
    as_is = client.post(trigger, json={"date": DAY.isoformat(), "dry_run": True}, headers=headers)
    before = database_checksum(session)

    tried = client.post(
        trigger,
        json={"date": DAY.isoformat(), "dry_run": True,
              "settings": {"amount_tolerance_minor": 500, "auto_fix": True},
              "is_verification_run": True},
        headers=headers,
    )  # fmt: skip

    assert as_is.json["report"]["discrepancies_by_type"]["AmountMismatch"] == 1
    assert tried.status_code == 200, tried.json
    assert tried.json["report"]["discrepancies_by_type"]["AmountMismatch"] == 0
    assert [d["type"] for d in tried.json["would_auto_resolve"]] == ["AmountMismatch"]
    assert database_checksum(session) == before
    session.refresh(org)
    assert (org.amount_tolerance_minor, org.auto_fix) == (0, None)


def test_a_dry_runs_settings_are_validated_and_only_for_a_dry_run(client, session):
    org = day_of(session)
    key = create_api_key(session=session, org_id=org.id, role="owner").secret
    headers = {"Authorization": f"Bearer {key}"}
    trigger = "/billing/reconciliation/runs/trigger"
    bad = client.post(
        trigger,
        json={"date": DAY.isoformat(), "dry_run": True, "settings": {"grace_period_seconds": -1}},
        headers=headers,
    )
    without = client.post(
        trigger,
        json={"date": DAY.isoformat(), "settings": {"amount_tolerance_minor": 500}},
        headers=headers,
    )
    assert bad.status_code == without.status_code == 422
    assert bad.mimetype == without.mimetype == "application/problem+json"
    assert "grace_period_seconds" in str(bad.json)
    assert "dry run" in str(without.json)
    assert session.scalar(select(func.count()).select_from(ReconciliationRun)) == 0
