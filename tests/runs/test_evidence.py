"""The evidence APIs: a run's items (its exceptions) as pages and CSV, a payment's matches."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from shared.access.api_keys import create_api_key
from shared.models import Payment, ReconciliationItem
from tests.runs.test_runs import run_day, scenario
from tests.support.factories import make_org

ITEMS = "/billing/reconciliation/runs/{run_id}/items"


@pytest.fixture
def evidence(session):
    """A day with every kind of verdict, run; a viewer's headers, the run and its items."""
    org = scenario(session)
    run = run_day(session, org)
    viewer = create_api_key(session=session, org_id=org.id, role="viewer").secret
    items = session.scalars(
        select(ReconciliationItem)
        .where(ReconciliationItem.run_id == run.id)
        .order_by(ReconciliationItem.id)
    ).all()
    return {"Authorization": f"Bearer {viewer}"}, run, items


def test_a_viewer_pages_through_the_runs_exceptions_in_the_order_they_were_written(
    client, evidence
):
    headers, run, items = evidence
    seen, cursor = [], None
    while True:
        query = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        response = client.get(ITEMS.format(run_id=run.id), headers=headers, query_string=query)
        assert response.status_code == 200, response.json
        seen += response.json["items"]
        cursor = response.json["next_cursor"]
        if cursor is None:
            break
    assert [item["id"] for item in seen] == [str(item.id) for item in items]
    assert len(seen) == run.report_json["matched_set"]["items_written"] == 7
    mismatch = next(item for item in seen if item["payment_external_id"] == "amount")
    assert mismatch == mismatch | {
        "run_id": str(run.id), "outcome": "mismatched", "match_method": "merchant_reference",
        "provider": "stripe", "provider_reference": "pi_amt", "currency": "EUR",
        "amount_difference_minor": 500,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("query", "accept"), [({"format": "csv"}, None), ({}, "text/csv")], ids=["query", "accept"]
)
def test_the_runs_items_stream_as_csv(client, evidence, query, accept):
    headers, run, items = evidence
    response = client.get(
        ITEMS.format(run_id=run.id),
        headers=headers | ({"Accept": accept} if accept else {}),
        query_string=query,
    )
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["id"] for row in rows] == [str(item.id) for item in items]
    mismatch = next(row for row in rows if row["payment_external_id"] == "amount")
    assert (mismatch["amount_difference"], mismatch["amount_difference_minor"]) == ("5.00", "500")


def test_a_cursor_the_items_listing_did_not_issue_is_a_problem(client, evidence):
    headers, run, _ = evidence
    response = client.get(
        ITEMS.format(run_id=run.id), headers=headers, query_string={"cursor": "not-a-cursor"}
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.json["title"] == "Invalid cursor"


def test_a_payment_shows_its_binding_and_its_verdicts_from_both_paths(client, session, evidence):
    headers, run, _ = evidence
    payment = session.scalars(select(Payment).where(Payment.external_id == "amount")).one()
    response = client.get(f"/billing/payments/{payment.id}/matches", headers=headers)
    assert response.status_code == 200, response.json
    body = response.json
    assert body["payment"]["external_id"] == "amount"
    assert [(r["provider_reference"], r["match_method"]) for r in body["records"]] == [
        ("pi_amt", "merchant_reference")
    ]
    sources = [item["run_id"] for item in body["items"]]
    assert None in sources  # the incremental path's verdicts
    assert sources[-1] == str(run.id)  # then the run's, newest last
    assert {item["outcome"] for item in body["items"]} == {"mismatched"}


def test_a_clean_payment_has_its_binding_and_no_run_item(client, session, evidence):
    headers, run, _ = evidence
    payment = session.scalars(select(Payment).where(Payment.external_id == "ok_jpy")).one()
    body = client.get(f"/billing/payments/{payment.id}/matches", headers=headers).json
    assert len(body["records"]) == 1
    assert str(run.id) not in {item["run_id"] for item in body["items"]}


def test_another_organisations_run_is_404_as_csv_too(client, session, evidence):
    _, run, _ = evidence
    other = make_org(session)
    key = create_api_key(session=session, org_id=other.id, role="viewer").secret
    response = client.get(
        ITEMS.format(run_id=run.id),
        headers={"Authorization": f"Bearer {key}"},
        query_string={"format": "csv"},
    )
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
