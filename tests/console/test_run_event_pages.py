"""The console's runs and webhook-events pages through the test client: listing,
reports, triggering, replaying, roles and other organisations."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from shared.models import ReconciliationRun
from tests.console.conftest import csrf_of
from tests.runs.test_history import add_run as add_stored_run
from tests.support.factories import make_account, make_event, make_org

QUEUE = "/console/"

# --- runs ----------------------------------------------------------------------------------


def add_run(session, org, day: int, status: str = "completed", matched_percent=99.0, **report):
    """A run of day ``day`` of November 2026, with a stored report once completed."""
    return add_stored_run(session, org, day, status, matched_percent=matched_percent, **report)


def test_the_runs_page_lists_the_organisation_s_runs_newest_first(client, session, org, signed_in):
    signed_in()
    older = add_run(session, org, 1)
    newer = add_run(session, org, 2, status="running")
    add_run(session, make_org(session), 3)  # another organisation's
    page = client.get("/console/runs")
    assert page.status_code == 200
    links = [line for line in page.text.split('href="') if line.startswith("/console/runs/")]
    assert [link.split('"')[0] for link in links] == [
        f"/console/runs/{newer.id}", f"/console/runs/{older.id}"
    ]  # fmt: skip
    assert 'action="/console/runs"' in page.text


def test_a_run_s_report_page_draws_its_three_charts_inline_without_script_or_style(
    client, session, org, signed_in
):
    signed_in()
    add_run(session, org, 1, matched_percent=90.0)
    run = add_run(
        session, org, 2, matched_percent=97.5,
        mismatch_amount_by_currency={"EUR": 1_250},
        discrepancies_by_type={"AmountMismatch": 3, "MissingProviderRecord": 1},
    )  # fmt: skip
    page = client.get(f"/console/runs/{run.id}")
    assert page.status_code == 200
    charts = page.text.split('id="charts-title"')[1]
    assert charts.count("<svg ") == 3
    assert 'role="img"' in charts
    assert "12.50 EUR" in charts
    assert "97.5" in charts
    for forbidden in ("<script", "style=", "<style", " on", "href="):
        svg = "".join(part.split("</svg>")[0] for part in charts.split("<svg ")[1:])
        assert forbidden not in svg, forbidden
    assert "as a table" in charts  # each chart's figures as text too


def test_a_queued_run_says_its_report_comes_later(client, session, org, signed_in):
    signed_in()
    run = add_run(session, org, 1, status="queued")
    page = client.get(f"/console/runs/{run.id}")
    assert "its report appears here once it completes" in page.text
    assert "<svg" not in page.text


def test_a_manager_triggers_a_run_of_a_period(client, session, org, signed_in, published_tasks):
    signed_in()
    page = client.get("/console/runs")
    data = {"csrf_token": csrf_of(page.text), "period_start": "2026-11-02",
            "period_end": "2026-11-03"}  # fmt: skip
    response = client.post("/console/runs", data=data)
    assert response.status_code == 303
    run = session.scalars(select(ReconciliationRun).where(ReconciliationRun.org_id == org.id)).one()
    assert response.location == f"/console/runs/{run.id}"
    assert (run.period_start.isoformat(), run.period_end.isoformat(), run.status) == (
        "2026-11-02", "2026-11-03", "queued",
    )  # fmt: skip
    assert published_tasks == [("worker.tasks.run_period", [str(run.id)])]
    again = client.post("/console/runs", data=data)  # the same period: the active run
    assert again.location == f"/console/runs/{run.id}"


def test_a_period_backwards_is_a_message_and_queues_nothing(client, session, org, signed_in):
    signed_in()
    page = client.get("/console/runs")
    data = {"csrf_token": csrf_of(page.text), "period_start": "2026-11-03",
            "period_end": "2026-11-02"}  # fmt: skip
    response = client.post("/console/runs", data=data)
    assert response.status_code == 422
    assert "Nothing was queued: period_start must not be after period_end" in response.text
    assert session.scalars(select(ReconciliationRun)).all() == []


def test_a_viewer_may_not_open_the_runs_or_the_events(client, session, org, signed_in):
    signed_in(role="viewer")
    run = add_run(session, org, 1)
    assert "/console/runs" not in client.get(QUEUE).text
    for path in ("/console/runs", f"/console/runs/{run.id}", "/console/events"):
        response = client.get(path)
        assert response.status_code == 403
        assert response.mimetype == "text/html"


def test_another_organisation_s_run_is_a_404_page(client, session, org, signed_in):
    signed_in()
    foreign = add_run(session, make_org(session), 1)
    for path in (f"/console/runs/{foreign.id}", f"/console/runs/{uuid.uuid4()}"):
        response = client.get(path)
        assert response.status_code == 404
        assert "There is nothing here in your organisation." in response.text


# --- webhook events ------------------------------------------------------------------------


def test_the_events_page_lists_what_needs_attention(client, session, org, signed_in):
    signed_in()
    account = make_account(session, org)
    failed = make_event(session, account, state="failed", last_error="no such payment")
    pending = make_event(session, account, state="pending")
    processed = make_event(session, account, state="processed")
    foreign = make_event(session, make_account(session, make_org(session)), state="failed")
    page = client.get("/console/events")
    assert page.status_code == 200
    for event in (failed, pending):
        assert event.provider_event_id in page.text
    for event in (processed, foreign):
        assert event.provider_event_id not in page.text
    assert "no such payment" in page.text
    only_failed = client.get("/console/events?view=failed")
    assert pending.provider_event_id not in only_failed.text
    assert failed.provider_event_id in only_failed.text


def test_a_manager_replays_a_failed_event(client, session, org, signed_in, published_tasks):
    signed_in()
    event = make_event(session, make_account(session, org), state="failed", last_error="boom")
    page = client.get("/console/events")
    response = client.post(
        f"/console/events/{event.id}/replay", data={"csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 303
    assert response.location == f"/console/events?replayed={event.id}"
    session.refresh(event)
    assert (event.state, event.last_error) == ("pending", None)
    assert published_tasks == [("worker.tasks.process_event", [str(event.id)])]
    assert "is queued to be processed again" in client.get(response.location).text


def test_replaying_another_organisation_s_event_is_a_404_page(
    client, session, org, signed_in, published_tasks
):
    signed_in()
    foreign = make_event(session, make_account(session, make_org(session)), state="failed")
    page = client.get("/console/events")
    response = client.post(
        f"/console/events/{foreign.id}/replay", data={"csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    session.refresh(foreign)
    assert foreign.state == "failed"
    assert published_tasks == []


def test_a_replay_without_its_csrf_token_is_refused(client, session, org, signed_in):
    signed_in()
    event = make_event(session, make_account(session, org), state="failed")
    assert client.post(f"/console/events/{event.id}/replay").status_code == 403
    session.refresh(event)
    assert event.state == "failed"
