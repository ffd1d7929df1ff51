"""The triage list's queries are served by its indexes: every filter checked inside one.

Timings are the bench's business (bench/triage.py); these tests pin the plan's shape. With
sequential scans, bitmap scans and sorts priced out, a list query can only be planned as
an ordered walk of an index; the walk must be the sort's list index, and each filter must
be an index condition (no ``Filter`` line: no row is read from the table to be rejected).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text

from shared.discrepancies.listing import SORTS, DiscrepancyFilters, list_discrepancies
from shared.models import ReconciliationDiscrepancy, ReconciliationRun
from tests.support.factories import make_org, make_payment

OPENED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LIST_INDEX = {
    "opened_at": "ix_reconciliation_discrepancies_list_by_opened",
    "amount": "ix_reconciliation_discrepancies_list_by_amount",
}
ONE_OF_EACH = {
    "status": "open",
    "unresolved": True,
    "type": "DisputeOpened",
    "severity": "high",
    "assignee": "ana@example.com",
    "run_id": uuid.uuid4(),
    "currency": "EUR",
    "min_amount": 1_000,
    "max_amount": 5_000,
    "since": OPENED - timedelta(days=7),
    "until": OPENED + timedelta(days=1),
    "dispute_status": "lost",
    "provider": "stripe",
}


def test_one_of_each_names_every_filter():
    assert set(ONE_OF_EACH) == {field.name for field in fields(DiscrepancyFilters)}


@contextmanager
def captured_statements(session) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (with their parameters) the session runs inside the block."""
    connection = session.connection()
    statements: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", capture)


def discrepancy_scan(session, **arguments) -> dict[str, Any]:
    """The plan node that reads reconciliation_discrepancies for ``list_discrepancies``."""
    with captured_statements(session) as statements:
        list_discrepancies(session=session, limit=50, **arguments)
    statement, parameters = statements[-1]
    for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
        session.execute(text(f"SET LOCAL {setting} = off"))
    plan = (
        session.connection()
        .exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
        .scalar()[0]["Plan"]
    )
    nodes = [plan]
    while nodes:
        node = nodes.pop()
        if node.get("Relation Name") == "reconciliation_discrepancies":
            return node
        nodes.extend(node.get("Plans", []))
    raise AssertionError(f"no scan of reconciliation_discrepancies in {plan}")


@pytest.fixture
def two_pages(session) -> tuple[uuid.UUID, uuid.UUID]:
    """(org id, run id): two discrepancies matching ONE_OF_EACH, so a page of one has a
    next cursor."""
    org = make_org(session)
    run = ReconciliationRun(
        org_id=org.id, period_start=OPENED.date(), period_end=OPENED.date(), triggered_by="cli"
    )
    session.add(run)
    session.flush()
    for amount in (1_500, 2_500):
        session.add(
            ReconciliationDiscrepancy(
                org_id=org.id,
                type="DisputeOpened",
                severity="high",
                dispute_status="lost",
                provider="stripe",
                status="open",
                payment_id=make_payment(session, org).id,
                run_id=run.id,
                amount_minor=amount,
                currency="EUR",
                assignee="ana@example.com",
                opened_at=OPENED,
            )
        )
    session.flush()
    return org.id, run.id


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("name", [None, *ONE_OF_EACH])
def test_each_filter_is_checked_inside_the_sorts_list_index(session, sort, name):
    filters = DiscrepancyFilters(**({name: ONE_OF_EACH[name]} if name else {}))
    node = discrepancy_scan(session, org_id=uuid.uuid4(), filters=filters, sort=sort)
    assert node["Node Type"] == "Index Scan"
    assert node["Index Name"] == LIST_INDEX[sort]
    assert node["Scan Direction"] == "Backward"  # newest or largest first, no sort step
    assert "Filter" not in node, node["Filter"]


@pytest.mark.parametrize("sort", SORTS)
def test_every_filter_at_once_on_a_later_page_stays_inside_the_index(session, two_pages, sort):
    org_id, run_id = two_pages
    filters = DiscrepancyFilters(**(ONE_OF_EACH | {"run_id": run_id}))
    first = list_discrepancies(session=session, org_id=org_id, filters=filters, sort=sort, limit=1)
    assert first.next_cursor is not None
    node = discrepancy_scan(
        session, org_id=org_id, filters=filters, sort=sort, cursor=first.next_cursor
    )
    assert node["Index Name"] == LIST_INDEX[sort]
    assert "Filter" not in node, node["Filter"]
    assert "ROW(" in node["Index Cond"]  # the cursor's (sort key, id) bound, in the index


def subtree_relations(node: dict[str, Any]) -> set[str]:
    """The relations scanned at or below ``node``."""
    relations, nodes = set(), [node]
    while nodes:
        current = nodes.pop()
        relations.update([current["Relation Name"]] if "Relation Name" in current else [])
        nodes.extend(current.get("Plans", []))
    return relations


def innermost_limit(plan: dict[str, Any]) -> dict[str, Any]:
    """The Limit node nearest above the scan of reconciliation_discrepancies."""
    path: list[dict[str, Any]] = []

    def find(node: dict[str, Any], above: list[dict[str, Any]]) -> bool:
        if node.get("Relation Name") == "reconciliation_discrepancies":
            path.extend(above)
            return True
        return any(find(child, [*above, node]) for child in node.get("Plans", []))

    assert find(plan, [])
    return next(node for node in reversed(path) if node["Node Type"] == "Limit")


@pytest.mark.parametrize("sort", SORTS)
def test_the_page_is_cut_before_payments_and_records_are_joined(session, two_pages, sort):
    # A run's rows come from a bitmap scan and a sort: joined before the limit, every row
    # of the run would have its payment and provider record looked up, not just the page's.
    org_id, run_id = two_pages
    with captured_statements(session) as statements:
        list_discrepancies(
            session=session,
            org_id=org_id,
            filters=DiscrepancyFilters(run_id=run_id),
            sort=sort,
            limit=1,
        )
    statement, parameters = statements[-1]
    plan = (
        session.connection()
        .exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
        .scalar()[0]["Plan"]
    )
    assert subtree_relations(innermost_limit(plan)) == {"reconciliation_discrepancies"}
    assert {"payments", "provider_records"} <= subtree_relations(plan)


def test_the_list_is_planned_for_its_own_values_even_once_prepared(session, two_pages):
    # psycopg prepares a statement after five runs; PostgreSQL could then keep one generic
    # plan for every value (a sort of a week's rows instead of a walk that stops at the page).
    org_id, _ = two_pages
    list_discrepancies(session=session, org_id=org_id, filters=DiscrepancyFilters(), limit=1)
    assert session.execute(text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
