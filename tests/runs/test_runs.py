"""Period runs: set-based re-checks with the same verdicts, reports, triggers, daily runs."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from shared.access.api_keys import create_api_key
from shared.ingest.processing import process_provider_event
from shared.matching.engine import match_settings, reconcile_payment
from shared.matching.grace import sweep_expired_grace_periods
from shared.models import (
    MATCHING_DISCREPANCY_TYPES,
    Payment,
    ProviderRecord,
    ReconciliationDiscrepancy,
    ReconciliationItem,
    ReconciliationRun,
)
from shared.platform.errors import NotFound, ValidationFailed
from shared.runs.fingerprint import current_matched_set
from shared.runs.lifecycle import (
    execute_run,
    mail_run_report,
    period_bounds,
    trigger_run,
    verify_matched_set,
)
from shared.runs.period import reconcile_period
from tests.support.factories import (
    make_account,
    make_event,
    make_org,
    make_payment,
    stripe_dispute_event,
    stripe_intent_event,
    stripe_refund_event,
)

DAY = datetime.now(UTC).date() - timedelta(days=1)
NOON = datetime.combine(DAY, datetime.min.time(), UTC) + timedelta(hours=12)
LATER = datetime.now(UTC) + timedelta(hours=3)  # every grace period is over


def scenario(session):
    """A day with one case of every discrepancy type, and clean matches around them."""
    org = make_org(session, timezone="UTC")
    account = make_account(session, org)
    payments = [
        make_payment(session, org, external_id="ok_1", amount_minor=1000, occurred_at=NOON),
        make_payment(session, org, external_id="ok_jpy", currency="JPY", amount_minor=5000,
                     occurred_at=NOON),
        make_payment(session, org, external_id="amount", amount_minor=2000, occurred_at=NOON),
        make_payment(session, org, external_id="currency", amount_minor=3000, occurred_at=NOON),
        make_payment(session, org, external_id="status", status="failed", amount_minor=4000,
                     occurred_at=NOON),
        make_payment(session, org, external_id="ok_refund", status="refunded",
                     amount_minor=1500, amount_refunded_minor=1500, occurred_at=NOON),
        make_payment(session, org, external_id="twice", amount_minor=6000, occurred_at=NOON),
        make_payment(session, org, external_id="no_provider", amount_minor=7000, occurred_at=NOON),
    ]  # fmt: skip
    events = [
        stripe_intent_event(intent_id="pi_ok", external_id="ok_1", amount=1000, created=NOON),
        stripe_intent_event(intent_id="pi_jpy", external_id="ok_jpy", amount=5000, currency="jpy",
                            created=NOON),
        stripe_intent_event(intent_id="pi_amt", external_id="amount", amount=2500, created=NOON),
        stripe_intent_event(intent_id="pi_cur", external_id="currency", amount=3000,
                            currency="usd", created=NOON),
        stripe_intent_event(intent_id="pi_st", external_id="status", amount=4000, created=NOON),
        stripe_intent_event(intent_id="pi_t1", external_id="twice", amount=6000, created=NOON),
        stripe_intent_event(intent_id="pi_t2", external_id="twice", amount=6000,
                            created=NOON + timedelta(seconds=20)),
        stripe_intent_event(intent_id="pi_orphan", amount=8000, created=NOON),
        stripe_intent_event(intent_id="pi_rf", external_id="ok_refund", amount=1500, created=NOON),
        stripe_refund_event(intent_id="pi_rf", amount=1500, created=NOON + timedelta(hours=1)),
        stripe_dispute_event(intent_id="pi_ok", status="needs_response", amount=400,
                             created=NOON + timedelta(hours=1)),
        stripe_dispute_event("charge.dispute.closed", intent_id="pi_ok", status="lost",
                             amount=400, created=NOON + timedelta(hours=2)),
    ]  # fmt: skip
    for payload in events:
        event = make_event(session, account, payload["type"], payload)
        process_provider_event(session=session, event_id=event.id)
    for payment in payments:
        reconcile_payment(session=session, payment_id=payment.id, now=LATER, evidence={})
    session.flush()
    return org


def unresolved_keys(session) -> set:
    session.flush()
    return {
        (d.type, d.payment_id, d.provider_record_id)
        for d in session.scalars(
            select(ReconciliationDiscrepancy).where(ReconciliationDiscrepancy.status != "resolved")
        )
    }


def run_day(session, org, **options) -> ReconciliationRun:
    triggered = trigger_run(
        session=session, org_id=org.id, period_start=DAY, period_end=DAY, triggered_by="api",
        **options,
    )  # fmt: skip
    execute_run(session=session, run_id=triggered.run.id, now=LATER)
    session.flush()
    return triggered.run


def test_the_period_run_reaches_the_incremental_paths_verdicts(session):
    org = scenario(session)
    sweep_expired_grace_periods(session=session, now=LATER)
    incremental = unresolved_keys(session)
    assert {key[0] for key in incremental} == set(MATCHING_DISCREPANCY_TYPES)
    run = trigger_run(session=session, org_id=org.id, period_start=DAY, period_end=DAY,
                      triggered_by="api").run  # fmt: skip
    start, end = period_bounds(org, DAY, DAY)
    result = reconcile_period(
        session=session, run_id=run.id, org_id=org.id, start=start, end=end,
        settings=match_settings(session=session, org_id=org.id), now=LATER, verify_open=True,
    )  # fmt: skip
    # Nothing opened: the run found nothing the incremental path had not. Nothing resolved:
    # it found everything that path had (a verification run resolves what it does not find).
    assert (result.opened, result.auto_resolved) == (0, 0)
    assert unresolved_keys(session) == incremental
    by_type = Counter()
    for total in result.found:
        by_type[total.type] += total.count
    assert by_type == Counter(key[0] for key in incremental)


def test_rerunning_a_period_opens_no_duplicate(session):
    org = scenario(session)
    first = run_day(session, org)
    second = run_day(session, org)
    assert first.discrepancies_opened == 1  # the incremental path had opened the rest
    assert second.discrepancies_opened == 0
    report = second.report_json
    assert sum(report["discrepancies_by_type"].values()) == 7


def test_the_report_has_every_figure_of_the_design(session):
    org = scenario(session)
    run = run_day(session, org)
    report = run.report_json
    assert report["discrepancies_by_type"] == dict.fromkeys(MATCHING_DISCREPANCY_TYPES, 1)
    assert report["discrepancies_by_severity"] == {"high": 5, "medium": 2, "low": 0}
    assert report["mismatch_amount_by_currency"] == {"EUR": 500}
    assert report["unmatched_amount_by_currency"] == {
        "internal": {"EUR": 7000},
        "provider": {"EUR": 8000},
    }
    assert report["disputes"] == {
        "count": 1,
        "by_currency": {"EUR": {"lost": {"count": 1, "amount_minor": 400}}},
    }
    assert report["totals"]["internal"]["succeeded"]["JPY"] == {"count": 1, "amount_minor": 5000}
    for side in ("internal", "provider"):
        assert report["totals"][side]["refunded"] == {"EUR": {"count": 1, "amount_minor": 1500}}
    assert report["totals"]["provider"]["succeeded"]["EUR"]["count"] == 7
    assert report["matched_percent"] == 44.44  # 4 of 9 verdicts, as when every item was written
    assert report["run"]["counts"] == {"items": 9, "matched": 4}
    assert report["run"]["period_start"] == DAY.isoformat()
    markdown = run.report_markdown
    assert "| AmountMismatch | 1 |" in markdown
    assert "| internal | succeeded | JPY | 1 | 5,000 |" in markdown
    assert "5.00" in markdown  # EUR 500 minor units, formatted with its exponent
    assert "## Disputes (1)" in markdown
    assert "| EUR | lost | 1 | 4.00 |" in markdown
    assert (run.status, run.payments_checked, run.matched) == ("completed", 8, 4)


def test_a_run_writes_its_exceptions_and_the_fingerprint_of_its_matched_set(session):
    org = scenario(session)
    run = run_day(session, org)
    items = session.scalars(select(ReconciliationItem).where(ReconciliationItem.run_id == run.id))
    # Every verdict but the two clean matches (ok_jpy, ok_refund): the pair types, the
    # finding on a matched group (the dispute, the duplicate charge) and the Missing ones.
    outcomes = Counter(item.outcome for item in items)
    assert outcomes == {"mismatched": 3, "matched": 2, "missing_provider": 1,
                        "missing_internal": 1}  # fmt: skip
    start, end = period_bounds(org, DAY, DAY)
    fingerprint = current_matched_set(session=session, org_id=org.id, start=start, end=end)
    assert (run.matched_pairs, run.matched_digest) == (fingerprint.pairs, fingerprint.digest)
    assert run.matched_pairs == 8  # the seven matched payments' records, "twice" has two
    assert run.report_json["matched_set"] == {
        "recorded_as": "exceptions + fingerprint",
        "items_written": 7,
        "pairs": 8,
        "digest": fingerprint.digest,
    }
    assert (
        f"Matched set recorded as exceptions + fingerprint: 7 item rows written; 8 bound "
        f"pairs, digest `{fingerprint.digest}`"
    ) in run.report_markdown


def test_verification_holds_after_a_run_and_fails_once_a_binding_changed(session):
    org = scenario(session)
    run = run_day(session, org)
    assert verify_matched_set(session=session, run_id=run.id).holds
    record = session.scalars(
        select(ProviderRecord).where(ProviderRecord.provider_reference == "pi_jpy")
    ).one()
    other = session.scalars(select(Payment).where(Payment.external_id == "no_provider")).one()
    record.payment_id = other.id  # same count of pairs, another pair
    session.flush()
    checked = verify_matched_set(session=session, run_id=run.id)
    assert not checked.holds
    assert checked.current.pairs == checked.recorded.pairs
    assert checked.current.digest != checked.recorded.digest


def test_a_run_without_a_matched_set_cannot_be_verified(session):
    org = make_org(session, timezone="UTC")
    queued = trigger_run(session=session, org_id=org.id, period_start=DAY, period_end=DAY,
                         triggered_by="api").run  # fmt: skip
    with pytest.raises(ValidationFailed, match="recorded no matched set"):
        verify_matched_set(session=session, run_id=queued.id)
    with pytest.raises(NotFound):
        verify_matched_set(session=session, run_id=uuid.uuid4())


def test_a_second_trigger_answers_with_the_active_run(session, published_tasks):
    org = make_org(session)
    first = trigger_run(session=session, org_id=org.id, period_start=DAY, period_end=DAY,
                        triggered_by="api")  # fmt: skip
    second = trigger_run(session=session, org_id=org.id, period_start=DAY, period_end=DAY,
                         triggered_by="cli")  # fmt: skip
    assert first.created
    assert not second.created
    assert second.run.id == first.run.id


def test_a_verification_run_auto_resolves_what_cleared(session):
    org = scenario(session)
    org.auto_fix = True
    run_day(session, org)
    from shared.models import Payment

    payment = session.scalars(select(Payment).where(Payment.external_id == "amount")).one()
    payment.amount_minor = 2500
    session.flush()
    verification = run_day(session, org, is_verification_run=True)
    assert verification.discrepancies_auto_resolved == 1
    assert ("AmountMismatch", payment.id) not in {key[:2] for key in unresolved_keys(session)}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"date": "2026-11-01"}, 202),
        ({"period_start": "2026-11-01", "period_end": "2026-11-07"}, 202),
        ({"period_start": "2026-11-07", "period_end": "2026-11-01"}, 422),
        ({"date": "2026-11-01", "period_start": "2026-11-01"}, 422),
        ({}, 422),
        ({"date": "yesterday"}, 422),
        ({"period_start": "2025-01-01", "period_end": "2026-11-01"}, 422),
    ],
)
def test_trigger_endpoint(client, session, body, status):
    org = make_org(session)
    key = create_api_key(session=session, org_id=org.id, role="manager").secret
    response = client.post(
        "/billing/reconciliation/runs/trigger",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == status, response.json
    if status == 202:
        assert response.json["status"] == "queued"
        assert set(response.json["counts"]) == {
            "payments_checked", "provider_records_checked", "matched",
            "discrepancies_opened", "discrepancies_auto_resolved",
        }  # fmt: skip


def test_report_endpoint_serves_json_and_markdown_to_its_own_organisation(client, session):
    org = scenario(session)
    run = run_day(session, org)
    key = create_api_key(session=session, org_id=org.id, role="owner").secret
    headers = {"Authorization": f"Bearer {key}"}
    path = f"/billing/reconciliation/runs/{run.id}/report"
    assert client.get(path, headers=headers).json["discrepancies_by_type"]["AmountMismatch"] == 1
    markdown = client.get(f"{path}?format=markdown", headers=headers)
    assert markdown.mimetype == "text/markdown"
    assert markdown.get_data(as_text=True) == run.report_markdown
    accept = client.get(path, headers={**headers, "Accept": "text/markdown"})
    assert accept.mimetype == "text/markdown"
    other = make_org(session)
    stranger = create_api_key(session=session, org_id=other.id, role="owner").secret
    assert client.get(path, headers={"Authorization": f"Bearer {stranger}"}).status_code == 404
    listing = client.get("/billing/reconciliation/runs", headers=headers).json
    assert [item["id"] for item in listing["items"]] == [str(run.id)]


def test_daily_endpoint_needs_the_token(client, session, override_settings):
    assert client.post("/billing/reconciliation/runs/daily").status_code == 503
    override_settings(RECONCILIATION_DAILY_TOKEN="s3cret-token")
    assert client.post("/billing/reconciliation/runs/daily").status_code == 401
    wrong = {"x-reconciliation-token": "s3cret-tokeN"}
    assert client.post("/billing/reconciliation/runs/daily", headers=wrong).status_code == 401


def test_daily_endpoint_runs_yesterday_per_timezone_once_a_day(
    client, session, override_settings, published_tasks
):
    override_settings(RECONCILIATION_DAILY_TOKEN="s3cret-token")
    tokyo = make_org(session, timezone="Asia/Tokyo")
    make_org(session, timezone="America/Los_Angeles", paused=True)
    headers = {"x-reconciliation-token": "s3cret-token"}
    first = client.post("/billing/reconciliation/runs/daily", headers=headers)
    assert first.status_code == 202
    started = list(first.json["runs"])
    assert first.json["started"] == len(started) >= 1
    from zoneinfo import ZoneInfo

    tokyo_yesterday = datetime.now(ZoneInfo("Asia/Tokyo")).date() - timedelta(days=1)
    ours = session.scalars(
        select(ReconciliationRun).where(ReconciliationRun.org_id == tokyo.id)
    ).one()
    assert (ours.period_start, ours.triggered_by) == (tokyo_yesterday, "daily_endpoint")
    second = client.post("/billing/reconciliation/runs/daily", headers=headers)
    assert second.status_code == 200
    assert second.json["started"] == 0
    assert {run["id"] for run in second.json["runs"]} == {run["id"] for run in started}
    assert isinstance(date.fromisoformat(ours.period_start.isoformat()), date)
    assert uuid.UUID(started[0]["id"])


def test_a_completed_run_mails_its_report_when_mail_is_configured(
    session, smtp_server, override_settings
):
    org = scenario(session)
    run = run_day(session, org)
    assert mail_run_report(session=session, run_id=run.id) is False  # not configured
    override_settings(
        ADMIN_EMAIL="finance@example.com",
        SMTP_HOST=smtp_server.host,
        SMTP_PORT=str(smtp_server.port),
        SMTP_STARTTLS="false",
    )
    assert mail_run_report(session=session, run_id=run.id) is True
    [delivery] = smtp_server.inbox.deliveries
    assert delivery.envelope.rcpt_tos == ["finance@example.com"]
    message = delivery.message()
    assert "7 discrepancies" in message["Subject"]
    assert "| AmountMismatch | 1 |" in message.get_body(("plain",)).get_content()


def test_a_run_finishes_after_its_report_is_built(session, monkeypatch):
    """The duration a user reads covers the whole run, the report's totals included."""
    from shared.runs import lifecycle

    built_at = []
    build_report = lifecycle.build_report

    def build_then_note_the_time(**arguments):
        report = build_report(**arguments)
        built_at.append(datetime.now(UTC))
        return report

    monkeypatch.setattr(lifecycle, "build_report", build_then_note_the_time)
    run = run_day(session, scenario(session))

    assert run.finished_at >= built_at[0]
    timing = run.report_json["run"]
    assert timing["finished_at"] == run.finished_at.isoformat()
    expected = round((run.finished_at - run.started_at).total_seconds(), 3)
    assert timing["duration_seconds"] == expected
