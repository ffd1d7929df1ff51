"""A settings change through the API is used by the next event matched and the next run,
without a restart: this process drops its cached settings when the change commits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shared.access.api_keys import create_api_key
from shared.ingest.processing import forget_cached_settings, process_provider_event
from shared.models import ReconciliationDiscrepancy
from shared.runs.lifecycle import execute_run, trigger_run
from tests.support.factories import (
    make_account,
    make_event,
    make_org,
    make_payment,
    stripe_intent_event,
)

YESTERDAY = datetime.now(UTC) - timedelta(days=1)


@pytest.fixture
def org(session):
    return make_org(session, auto_fix=True, grace_period_seconds=0)


@pytest.fixture
def headers(session, org):
    owner = create_api_key(session=session, org_id=org.id, role="owner")
    return {"Authorization": f"Bearer {owner.secret}"}


def charge(session, account, external_id: str, amount: int) -> str:
    """A payment of 100.00 and the provider's charge of ``amount`` for it, processed."""
    make_payment(
        session, account.org, external_id=external_id, amount_minor=10_000, occurred_at=YESTERDAY
    )
    payload = stripe_intent_event(
        intent_id=f"pi_{external_id}", amount=amount, external_id=external_id, created=YESTERDAY
    )
    stored = make_event(session, account, payload["type"], payload)
    assert process_provider_event(session=session, event_id=stored.id) == "processed"
    return external_id


def amount_mismatches(session, org) -> dict[str, str]:
    """The AmountMismatch discrepancies of ``org`` by payment id, with their status."""
    session.expire_all()
    query = select(ReconciliationDiscrepancy).where(
        ReconciliationDiscrepancy.org_id == org.id,
        ReconciliationDiscrepancy.type == "AmountMismatch",
    )
    return {str(d.payment_id): d.status for d in session.scalars(query)}


def raise_tolerance(client, session, headers, version: int = 1) -> None:
    response = client.patch(
        "/billing/settings",
        json={"amount_tolerance_percent": 0.5},
        headers={**headers, "If-Match": f'"{version}"'},
    )
    assert response.status_code == 200, response.json
    session.expire_all()  # the test's session stands for the next task's, which reads afresh


def test_the_next_event_is_matched_with_a_tolerance_changed_through_the_api(
    client, session, org, headers
):
    account = make_account(session, org)
    account.org = org
    forget_cached_settings()
    charge(session, account, "inv_before", 10_040)  # tolerance 0: 40 over is a mismatch
    assert list(amount_mismatches(session, org).values()) == ["open"]
    raise_tolerance(client, session, headers)  # 0.5 % of 100.00 = 0.50: 40 over now agrees
    charge(session, account, "inv_after", 10_040)
    # The settings were cached by the first event; the change replaced them at once.
    assert list(amount_mismatches(session, org).values()) == ["open"]


def test_the_next_period_run_judges_with_a_tolerance_changed_through_the_api(
    client, session, org, headers
):
    account = make_account(session, org)
    account.org = org
    charge(session, account, "inv_1", 10_040)
    [payment_id] = amount_mismatches(session, org)
    raise_tolerance(client, session, headers)
    run = trigger_run(
        session=session,
        org_id=org.id,
        period_start=YESTERDAY.date(),
        period_end=YESTERDAY.date(),
        triggered_by="api",
        is_verification_run=True,
    ).run
    assert execute_run(session=session, run_id=run.id) == "completed"
    # Within the new tolerance the mismatch no longer holds: the run resolves it.
    assert amount_mismatches(session, org) == {payment_id: "resolved"}
