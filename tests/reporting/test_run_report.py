"""A run's report as its page reads it: the run, and its charts once completed."""

from __future__ import annotations

import uuid

import pytest

from shared.platform.errors import NotFound
from shared.reporting.run_report import run_report
from tests.runs.test_history import add_run
from tests.support.factories import make_org


def test_a_completed_run_has_its_three_charts_with_the_recent_runs_line(session):
    org = make_org(session)
    add_run(session, org, 1, matched_percent=80.0)
    run = add_run(session, org, 2, matched_percent=95.0)
    report = run_report(session=session, org_id=org.id, run_id=run.id)
    assert report.run == run
    line, by_type, stakes = report.charts
    assert [row[1] for row in line.rows] == ["80.00 %", "95.00 %"]
    assert by_type.columns == ("Type", "Discrepancies")
    assert stakes.columns == ("Currency", "Kind", "Amount")


def test_a_run_not_completed_has_no_chart(session):
    org = make_org(session)
    run = add_run(session, org, 1, status="running")
    assert run_report(session=session, org_id=org.id, run_id=run.id).charts == ()


def test_another_organisation_s_run_is_not_found(session):
    run = add_run(session, make_org(session), 1, matched_percent=99.0)
    for run_id in (run.id, uuid.uuid4()):
        with pytest.raises(NotFound):
            run_report(session=session, org_id=make_org(session).id, run_id=run_id)
