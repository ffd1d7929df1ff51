"""The figures of recent runs, read from their stored reports (the run pages' charts)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from shared.models import MATCHING_DISCREPANCY_TYPES, ReconciliationRun
from shared.runs.history import STAKES, money_at_stake, recent_run_figures
from tests.runs.test_runs import run_day, scenario
from tests.support.factories import make_org

START = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def stored_report(matched_percent: float, **fields) -> dict:
    """A report as build_report stores it, with the keys the figures read."""
    return {
        "matched_percent": matched_percent,
        "discrepancies_by_type": dict.fromkeys(MATCHING_DISCREPANCY_TYPES, 0),
        "mismatch_amount_by_currency": {},
        "unmatched_amount_by_currency": {"internal": {}, "provider": {}},
        "disputes": {"count": 0, "by_currency": {}},
        "run": {"counts": {"items": 10, "matched": 9}},
    } | fields


def add_run(session, org, day: int, status: str = "completed", **report) -> ReconciliationRun:
    period = date(2026, 11, 1) + timedelta(days=day)
    run = ReconciliationRun(
        org_id=org.id,
        period_start=period,
        period_end=period,
        status=status,
        triggered_by="schedule",
        created_at=START + timedelta(days=day),
        report_json=stored_report(**report) if status == "completed" else None,
    )
    session.add(run)
    session.flush()
    return run


def test_money_at_stake_sums_each_kind_per_currency_and_never_across():
    report = stored_report(
        99.5,
        mismatch_amount_by_currency={"EUR": 150, "JPY": 7},
        unmatched_amount_by_currency={"internal": {"EUR": 2_000}, "provider": {"KWD": 1_234}},
        disputes={
            "count": 3,
            "by_currency": {
                "EUR": {
                    "open": {"count": 1, "amount_minor": 500},
                    "lost": {"count": 2, "amount_minor": 75},
                }
            },
        },
    )
    assert money_at_stake(report) == {
        "EUR": {"amount_mismatch": 150, "missing_at_provider": 2_000, "missing_internally": 0,
                "disputed": 575},
        "JPY": {"amount_mismatch": 7, "missing_at_provider": 0, "missing_internally": 0,
                "disputed": 0},
        "KWD": {"amount_mismatch": 0, "missing_at_provider": 0, "missing_internally": 1_234,
                "disputed": 0},
    }  # fmt: skip


def test_the_last_30_completed_runs_of_the_organisation_oldest_first(session):
    org, other = make_org(session), make_org(session)
    for day in range(33):
        add_run(session, org, day, matched_percent=90 + day / 4)
    add_run(session, org, 40, status="failed")
    add_run(session, org, 41, status="running")
    add_run(session, other, 50, matched_percent=1.0)

    figures = recent_run_figures(session=session, org_id=org.id)

    assert len(figures) == 30
    assert [f.period_start.day for f in figures] == [*range(4, 31), 1, 2, 3]
    assert figures[0].period_start == date(2026, 11, 4)
    assert figures[-1].period_start == date(2026, 12, 3)
    assert figures[-1].matched_percent == Decimal("98.00")
    assert figures[0].matched_percent == Decimal("90.75")
    assert figures[0].items == 10


def test_the_figures_are_those_of_a_real_runs_report(session):
    org = scenario(session)
    run = run_day(session, org)
    (figures,) = recent_run_figures(session=session, org_id=org.id)
    report = run.report_json
    assert figures.run_id == run.id
    assert figures.matched_percent == Decimal(str(report["matched_percent"]))
    assert figures.discrepancies_by_type == report["discrepancies_by_type"]
    assert figures.items == report["run"]["counts"]["items"]
    for kinds in figures.money_at_stake.values():
        assert tuple(kinds) == STAKES
    eur = figures.money_at_stake["EUR"]
    # The scenario: 2,000 charged 2,500; a payment of 7,000 and a record of 8,000 unmatched.
    assert (eur["amount_mismatch"], eur["missing_at_provider"], eur["missing_internally"]) == (
        500,
        7_000,
        8_000,
    )
