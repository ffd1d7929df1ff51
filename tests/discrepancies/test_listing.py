"""Reading discrepancies: the list, its filters and cursors, the CSV export, the detail."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime, timedelta

import pytest

from shared.discrepancies.listing import (
    CSV_COLUMNS,
    UNRESOLVED_BELOW,
    DiscrepancyFilters,
    get_discrepancy,
    iter_discrepancies,
    list_discrepancies,
)
from shared.models import (
    DISCREPANCY_PROVIDERS,
    DISCREPANCY_STATUSES,
    ProviderRecord,
    ReconciliationItem,
    ReconciliationRun,
)
from shared.platform.errors import NotFound
from shared.platform.pagination import InvalidCursor, encode_cursor
from tests.discrepancies.calls import BASE, act
from tests.discrepancies.factories import BASE_TIME, make_discrepancy, make_record
from tests.discrepancies.providers import discrepancies_by_provider


def test_get_discrepancy_of_another_organisation_is_not_found(session, org, other_org):
    foreign = make_discrepancy(session, other_org)
    with pytest.raises(NotFound):
        get_discrepancy(session=session, org_id=org.id, discrepancy_id=foreign.id)


def test_a_cursor_of_one_sort_is_refused_by_the_other(session, org):
    for _ in range(3):
        make_discrepancy(session, org)
    page = list_discrepancies(
        session=session, org_id=org.id, filters=DiscrepancyFilters(), sort="amount", limit=1
    )
    with pytest.raises(InvalidCursor):
        list_discrepancies(
            session=session,
            org_id=org.id,
            filters=DiscrepancyFilters(),
            sort="opened_at",
            cursor=page.next_cursor,
            limit=1,
        )


def test_the_export_iterator_yields_the_whole_filtered_list_in_order(session, org):
    made = [
        make_discrepancy(session, org, opened_at=BASE_TIME + timedelta(seconds=index))
        for index in range(7)
    ]
    make_discrepancy(session, org, severity="low")
    rows = iter_discrepancies(
        session=session,
        org_id=org.id,
        filters=DiscrepancyFilters(severity="high"),
        batch_size=3,
    )
    assert [view.id for view in rows] == [d.id for d in reversed(made)]


def test_unresolved_keeps_open_and_acknowledged_and_amounts_bound_both_ways(session, org):
    assert sorted(DISCREPANCY_STATUSES)[-1] == UNRESOLVED_BELOW  # the range's premise
    kept = {
        make_discrepancy(session, org, status="open", amount_minor=1_000).id,
        make_discrepancy(session, org, status="acknowledged", amount_minor=2_000).id,
    }
    make_discrepancy(session, org, status="resolved", amount_minor=1_500)
    make_discrepancy(session, org, status="open", amount_minor=2_001)
    make_discrepancy(session, org, status="open", amount_minor=999)
    filters = DiscrepancyFilters(unresolved=True, min_amount=1_000, max_amount=2_000)
    page = list_discrepancies(session=session, org_id=org.id, filters=filters, limit=10)
    assert {view.id for view in page.items} == kept
    everything = DiscrepancyFilters(unresolved=False)
    assert (
        len(list_discrepancies(session=session, org_id=org.id, filters=everything, limit=10).items)
        == 5
    )


# --- detail ---------------------------------------------------------------------------


def test_the_detail_has_subjects_items_and_the_action_log_oldest_first(
    client, session, org, headers, manager
):
    discrepancy = make_discrepancy(session, org, with_record=True)
    mine = ReconciliationItem(
        org_id=org.id,
        payment_id=discrepancy.payment_id,
        provider_record_id=discrepancy.provider_record_id,
        outcome="mismatched",
        match_method="provider_reference",
        amount_difference_minor=-100,
    )
    unrelated = make_discrepancy(session, org)
    theirs = ReconciliationItem(
        org_id=org.id, payment_id=unrelated.payment_id, outcome="missing_provider"
    )
    session.add_all([mine, theirs])
    session.flush()
    act(client, discrepancy.id, "acknowledge", headers)
    act(client, discrepancy.id, "note", headers)

    response = client.get(f"{BASE}/{discrepancy.id}", headers=headers)
    assert response.status_code == 200
    body = response.json
    record = session.get(ProviderRecord, discrepancy.provider_record_id)
    assert body["payment"]["id"] == str(discrepancy.payment_id)
    assert body["payment"]["external_id"].startswith("inv_")
    assert body["provider_record"] == {
        "id": str(record.id),
        "provider": "stripe",
        "provider_reference": record.provider_reference,
    }
    assert [item["id"] for item in body["items"]] == [str(mine.id)]
    assert body["items"][0]["outcome"] == "mismatched"
    assert [entry["action"] for entry in body["actions"]] == [
        "opened",
        "acknowledged",
        "note_added",
    ]
    assert body["actions"][0]["actor"] == "system"
    assert body["actions"][2] == {
        "action": "note_added",
        "actor": str(manager.api_key.id),
        "actor_name": "Ana (finance)",
        "payload": {"note": "called Stripe"},
        "created_at": body["actions"][2]["created_at"],
    }
    assert set(body) == DISCREPANCY_FIELDS | {"items", "actions"}


DISCREPANCY_FIELDS = {
    "id",
    "type",
    "severity",
    "status",
    "payment",
    "provider_record",
    "amount_minor",
    "currency",
    "difference_minor",
    "assignee",
    "resolution",
    "version",
    "opened_at",
    "acknowledged_at",
    "resolved_at",
    "dispute_status",
    "dispute_provider_status",
    "dispute_reason",
    "dispute_evidence_due_at",
    "settlement_line_id",
    "settlement_payout_id",
    "bank_statement_id",
    "bank_entry_id",
    "provider",
}


def test_a_discrepancy_without_a_payment_shows_null(client, session, org, headers):
    record = make_record(session, org)
    discrepancy = make_discrepancy(
        session, org, type="MissingInternalRecord", payment_id=None, provider_record_id=record.id
    )
    body = client.get(f"{BASE}/{discrepancy.id}", headers=headers).json
    assert body["payment"] is None
    assert body["provider_record"]["id"] == str(record.id)


# --- listing --------------------------------------------------------------------------


def test_the_list_is_newest_first_in_the_resource_shape(client, session, org, headers):
    older = make_discrepancy(session, org, opened_at=BASE_TIME)
    newer = make_discrepancy(session, org, opened_at=BASE_TIME + timedelta(minutes=1))
    body = client.get(BASE, headers=headers).json
    assert [item["id"] for item in body["items"]] == [str(newer.id), str(older.id)]
    assert set(body["items"][0]) == DISCREPANCY_FIELDS
    assert body["items"][0]["payment"]["id"] == str(newer.payment_id)
    assert body["items"][0]["provider_record"] is None
    assert body["items"][0]["difference_minor"] == -100
    assert body["next_cursor"] is None


def _run(session, org) -> ReconciliationRun:
    run = ReconciliationRun(
        org_id=org.id,
        period_start=BASE_TIME.date(),
        period_end=BASE_TIME.date(),
        triggered_by="api",
        status="completed",
    )
    session.add(run)
    session.flush()
    return run


# (query parameters, fields of the row that must be listed, fields of one that must not)
FILTERS = [
    ({"status": "acknowledged"}, {"status": "acknowledged"}, {"status": "open"}),
    ({"type": "CurrencyMismatch"}, {"type": "CurrencyMismatch"}, {"type": "AmountMismatch"}),
    ({"severity": "low"}, {"severity": "low"}, {"severity": "high"}),
    ({"assignee": "alice"}, {"assignee": "alice"}, {"assignee": "bob"}),
    ({"currency": "jpy"}, {"currency": "JPY"}, {"currency": "EUR"}),
    ({"min_amount": "1000"}, {"amount_minor": 1000}, {"amount_minor": 999}),
    ({"max_amount": "999"}, {"amount_minor": 999}, {"amount_minor": 1000}),
    (
        {"since": "2025-03-01T12:00:00+00:00"},
        {"opened_at": BASE_TIME},
        {"opened_at": BASE_TIME - timedelta(microseconds=1)},
    ),
    (
        {"until": "2025-03-01T13:00:00+01:00"},
        {"opened_at": BASE_TIME - timedelta(microseconds=1)},
        {"opened_at": BASE_TIME},
    ),
]


@pytest.mark.parametrize(("query", "listed", "hidden"), FILTERS)
def test_each_filter_narrows_the_list(client, session, org, headers, query, listed, hidden):
    wanted = make_discrepancy(session, org, **listed)
    make_discrepancy(session, org, **hidden)
    response = client.get(BASE, query_string=query, headers=headers)
    assert response.status_code == 200
    assert [item["id"] for item in response.json["items"]] == [str(wanted.id)]


def test_the_run_filter_lists_what_that_run_found(client, session, org, headers):
    run = _run(session, org)
    found = make_discrepancy(session, org, run_id=run.id)
    make_discrepancy(session, org)
    response = client.get(BASE, query_string={"run_id": str(run.id)}, headers=headers)
    assert [item["id"] for item in response.json["items"]] == [str(found.id)]


def test_filters_combine(client, session, org, headers):
    wanted = make_discrepancy(session, org, severity="low", currency="JPY", amount_minor=5000)
    make_discrepancy(session, org, severity="low", currency="JPY", amount_minor=10)
    make_discrepancy(session, org, severity="high", currency="JPY", amount_minor=5000)
    query = {"severity": "low", "currency": "JPY", "min_amount": 100}
    response = client.get(BASE, query_string=query, headers=headers)
    assert [item["id"] for item in response.json["items"]] == [str(wanted.id)]


@pytest.mark.parametrize(
    "query",
    [
        {"status": "closed"},
        {"type": "Nope"},
        {"severity": "urgent"},
        {"currency": "EURO"},
        {"min_amount": "-1"},
        {"min_amount": str(2**63)},
        {"max_amount": "-1"},
        {"max_amount": "1.5"},
        {"since": "2025-03-01T12:00:00"},
        {"until": "yesterday"},
        {"run_id": "not-a-uuid"},
        {"assignee": "a\x00b"},
        {"assignee": ""},
        {"provider": "visa"},
        {"provider": "Stripe"},
        {"sort": "severity"},
        {"limit": "0"},
        {"limit": "501"},
        {"unknown": "1"},
    ],
)
def test_a_bad_query_is_422(client, headers, query):
    response = client.get(BASE, query_string=query, headers=headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("provider", DISCREPANCY_PROVIDERS)
def test_the_list_its_csv_and_its_summary_filter_by_provider(
    client, session, org, headers, provider
):
    wanted = {str(key) for key in discrepancies_by_provider(session, org).get(provider, ())}
    query = {"provider": provider, "limit": 500}
    listed = client.get(BASE, query_string=query, headers=headers).json["items"]
    assert {item["id"] for item in listed} == wanted
    assert {item["provider"] for item in listed} <= {provider}
    exported = client.get(BASE, query_string=query, headers={**headers, "Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {(row["id"], row["provider"]) for row in rows} == {(key, provider) for key in wanted}
    summary = client.get(f"{BASE}/summary", query_string={"provider": provider}, headers=headers)
    assert sum(bucket["count"] for bucket in summary.json["buckets"]) == len(wanted)


def test_limit_defaults_to_50_and_allows_500(client, session, org, headers):
    for index in range(51):
        make_discrepancy(session, org, opened_at=BASE_TIME + timedelta(seconds=index))
    default = client.get(BASE, headers=headers).json
    assert len(default["items"]) == 50
    assert default["next_cursor"] is not None
    everything = client.get(BASE, query_string={"limit": 500}, headers=headers).json
    assert len(everything["items"]) == 51
    assert everything["next_cursor"] is None


@pytest.mark.parametrize("sort", ["opened_at", "amount"])
def test_pages_cover_every_row_exactly_once_while_new_rows_arrive(
    client, session, org, headers, sort
):
    # Ties on both sort keys, so the id tie-break is exercised too.
    originals = {
        make_discrepancy(
            session,
            org,
            opened_at=BASE_TIME + timedelta(seconds=index // 3),
            amount_minor=(index % 4) * 100,
        ).id
        for index in range(23)
    }
    seen: list[dict] = []
    cursor = None
    for page_number in range(100):
        query = {"sort": sort, "limit": 4} | ({"cursor": cursor} if cursor else {})
        body = client.get(BASE, query_string=query, headers=headers).json
        seen.extend(body["items"])
        # New findings arrive between pages: newer than all, and of every size.
        make_discrepancy(
            session,
            org,
            opened_at=BASE_TIME + timedelta(hours=1, seconds=page_number),
            amount_minor=(page_number % 5) * 100,
        )
        cursor = body["next_cursor"]
        if cursor is None:
            break
    ids = [uuid.UUID(item["id"]) for item in seen]
    assert len(ids) == len(set(ids))
    assert originals <= set(ids)
    field = "opened_at" if sort == "opened_at" else "amount_minor"
    keys = [
        (datetime.fromisoformat(item[field]) if sort == "opened_at" else item[field], item["id"])
        for item in seen
    ]
    assert keys == sorted(keys, reverse=True)


def test_amount_sort_is_largest_first(client, session, org, headers):
    small = make_discrepancy(session, org, amount_minor=5)
    large = make_discrepancy(session, org, amount_minor=50_000)
    middle = make_discrepancy(session, org, amount_minor=700)
    body = client.get(BASE, query_string={"sort": "amount"}, headers=headers).json
    assert [item["id"] for item in body["items"]] == [str(large.id), str(middle.id), str(small.id)]


FIXED_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "x" * 600,
        encode_cursor(FIXED_ID),
        encode_cursor(BASE_TIME, FIXED_ID),  # the shape another listing issues
        encode_cursor(2, BASE_TIME, FIXED_ID),  # the amount sort's tag on a time
        encode_cursor(9, BASE_TIME, FIXED_ID),
    ],
    ids=["garbage", "too-long", "one-value", "other-listing", "wrong-tag-type", "unknown-tag"],
)
def test_a_forged_cursor_is_400(client, session, org, headers, cursor):
    make_discrepancy(session, org)
    response = client.get(BASE, query_string={"cursor": cursor}, headers=headers)
    assert response.status_code in (400, 422)
    assert response.mimetype == "application/problem+json"
    if len(cursor) <= 512:
        assert response.status_code == 400


def test_a_cursor_from_the_other_sort_is_400(client, session, org, headers):
    for index in range(3):
        make_discrepancy(session, org, amount_minor=index)
    page = client.get(BASE, query_string={"sort": "amount", "limit": 1}, headers=headers).json
    response = client.get(BASE, query_string={"cursor": page["next_cursor"]}, headers=headers)
    assert response.status_code == 400
    assert response.json["title"] == "Invalid cursor"


# --- CSV export -----------------------------------------------------------------------


def test_csv_export_streams_the_filtered_list_with_formatted_money(client, session, org, headers):
    yen = make_discrepancy(
        session,
        org,
        currency="JPY",
        amount_minor=1_234_567,
        difference_minor=None,
        type="MissingProviderRecord",
        opened_at=BASE_TIME + timedelta(seconds=2),
    )
    dinar = make_discrepancy(
        session,
        org,
        currency="KWD",
        amount_minor=1_234_567,
        difference_minor=-1_500,
        assignee='=HYPERLINK("http://evil")',
        opened_at=BASE_TIME + timedelta(seconds=1),
    )
    make_discrepancy(session, org, status="resolved", resolved_at=BASE_TIME)
    response = client.get(
        BASE, query_string={"status": "open"}, headers={**headers, "Accept": "text/csv"}
    )
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    reader = csv.DictReader(io.StringIO(response.text))
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    rows = list(reader)
    assert [row["id"] for row in rows] == [str(yen.id), str(dinar.id)]
    assert (rows[0]["amount"], rows[0]["amount_minor"]) == ("1,234,567", "1234567")
    assert (rows[0]["difference"], rows[0]["difference_minor"]) == ("", "")
    assert (rows[1]["amount"], rows[1]["amount_minor"]) == ("1,234.567", "1234567")
    assert (rows[1]["difference"], rows[1]["difference_minor"]) == ("-1.500", "-1500")
    assert rows[1]["currency"] == "KWD"
    assert rows[1]["assignee"] == '\'=HYPERLINK("http://evil")'
    assert rows[1]["payment_id"] == str(dinar.payment_id)
    assert rows[1]["payment_external_id"].startswith("inv_")
    assert rows[1]["opened_at"] == (BASE_TIME + timedelta(seconds=1)).isoformat()


def test_csv_export_is_not_limited_to_one_page(client, session, org, headers):
    for index in range(60):
        make_discrepancy(session, org, opened_at=BASE_TIME + timedelta(seconds=index))
    response = client.get(
        BASE, query_string={"limit": 5, "sort": "amount"}, headers={**headers, "Accept": "text/csv"}
    )
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 60
    assert len({row["id"] for row in rows}) == 60


def test_an_empty_csv_export_still_has_its_header(client, headers):
    response = client.get(BASE, headers={**headers, "Accept": "text/csv"})
    assert list(csv.reader(io.StringIO(response.text))) == [list(CSV_COLUMNS)]


def test_a_bad_filter_on_the_csv_export_is_a_problem_not_a_broken_file(client, headers):
    response = client.get(
        BASE, query_string={"severity": "urgent"}, headers={**headers, "Accept": "text/csv"}
    )
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


def test_json_is_preferred_unless_csv_is_asked_for(client, session, org, headers):
    make_discrepancy(session, org)
    for accept in ("*/*", "application/json", "text/csv;q=0.5, application/json"):
        response = client.get(BASE, headers={**headers, "Accept": accept})
        assert response.mimetype == "application/json"
