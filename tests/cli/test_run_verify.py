"""``recon run verify RUN_ID``: a run's matched set checked against the bindings as they are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from shared.ingest.processing import process_provider_event
from shared.models import ProviderRecord
from shared.platform.db import SessionFactory
from shared.runs.lifecycle import execute_run, trigger_run
from tests.conftest import run_cli
from tests.support.factories import (
    make_account,
    make_event,
    make_org,
    make_payment,
    stripe_intent_event,
)

DAY = datetime.now(UTC).date() - timedelta(days=1)
NOON = datetime.combine(DAY, datetime.min.time(), UTC) + timedelta(hours=12)


def completed_run(committed) -> str:
    """A committed organisation with two matched payments and a completed run; its id."""
    with SessionFactory(bind=committed) as session, session.begin():
        org = make_org(session, timezone="UTC")
        account = make_account(session, org)
        for external_id in ("inv_1", "inv_2"):
            make_payment(session, org, external_id=external_id, amount_minor=1000,
                         occurred_at=NOON)  # fmt: skip
            payload = stripe_intent_event(intent_id=f"pi_{external_id}", external_id=external_id,
                                          amount=1000, created=NOON)  # fmt: skip
            event = make_event(session, account, payload["type"], payload)
            process_provider_event(session=session, event_id=event.id)
        run = trigger_run(session=session, org_id=org.id, period_start=DAY, period_end=DAY,
                          triggered_by="cli").run  # fmt: skip
        execute_run(session=session, run_id=run.id)
        return str(run.id)


def test_verify_holds_after_the_run_and_fails_once_a_binding_changed(committed):
    run_id = completed_run(committed)
    held = run_cli("run", "verify", run_id)
    assert held.returncode == 0, held.stderr
    assert held.stdout.splitlines()[-1] == f"run {run_id}: the matched set holds"
    with SessionFactory(bind=committed) as session, session.begin():
        session.execute(
            update(ProviderRecord)
            .where(ProviderRecord.provider_reference == "pi_inv_2")
            .values(payment_id=None, match_method=None)
        )
    changed = run_cli("run", "verify", run_id)
    assert changed.returncode == 1
    recorded, now = changed.stdout.splitlines()
    assert recorded.startswith("recorded: 2 pairs, digest ")
    assert now.startswith("now:      1 pairs, digest ")
    assert "the matched set changed since the run" in changed.stderr


def test_verify_refuses_an_unknown_run_and_run_still_needs_an_organisation(committed):
    unknown = run_cli("run", "verify", "01a23ae9-7197-74ce-a4ab-8dacac17266f")
    assert unknown.returncode == 1
    assert "does not exist" in unknown.stderr
    missing = run_cli("run", "--date", DAY.isoformat())
    assert missing.returncode == 2
    assert "give --org" in missing.stderr
