"""The ageing summary: open and acknowledged discrepancies per age bucket and currency,
aged in calendar days of the organisation's time zone, with the triage list's filters."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from shared.access.api_keys import create_api_key
from shared.discrepancies.ageing import AGE_BUCKETS, ageing_summary, bucket_starts, bucket_window
from shared.discrepancies.listing import DiscrepancyFilters, list_discrepancies
from tests.discrepancies.calls import BASE, auth
from tests.discrepancies.factories import in_state, make_discrepancy
from tests.discrepancies.test_listing_indexes import LIST_INDEX, ONE_OF_EACH, captured_statements

SUMMARY = f"{BASE}/summary"
# 11:00 in Paris (UTC+1): today there is 10 March, and its local days begin at 23:00 UTC.
NOW = datetime(2025, 3, 10, 10, 0, tzinfo=UTC)


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


@pytest.fixture
def paris(session, org):
    org.timezone = "Europe/Paris"
    session.flush()
    return org


def test_buckets_start_at_the_local_midnights_of_their_oldest_days():
    assert bucket_starts(NOW, "Europe/Paris") == [
        utc(2025, 3, 8, 23),  # 9 March, 1 day ago
        utc(2025, 3, 2, 23),  # 3 March, 7 days ago
        utc(2025, 2, 7, 23),  # 8 February, 30 days ago
    ]
    assert bucket_starts(NOW, "UTC") == [utc(2025, 3, 9), utc(2025, 3, 3), utc(2025, 2, 8)]


def test_bucket_starts_follow_a_daylight_saving_change():
    # New York moved to UTC-4 on 9 March 2025: 10 March began at 04:00 UTC, 4 March at 05:00.
    now = utc(2025, 3, 11, 12)
    assert bucket_starts(now, "America/New_York") == [
        utc(2025, 3, 10, 4),
        utc(2025, 3, 4, 5),
        utc(2025, 2, 9, 5),
    ]


def test_the_buckets_are_0_1_2_7_8_30_and_more_days():
    assert [(bucket.min_days, bucket.max_days) for bucket in AGE_BUCKETS] == [
        (0, 1),
        (2, 7),
        (8, 30),
        (31, None),
    ]


def summary_figures(summary) -> dict[str, tuple[int, list[tuple[str, int, int]]]]:
    return {
        bucket.label: (
            bucket.count,
            [(t.currency, t.count, t.amount_minor) for t in bucket.by_currency],
        )
        for bucket in summary.buckets
    }


def test_each_unresolved_discrepancy_counts_in_its_bucket_by_local_calendar_day(
    session, paris, other_org
):
    opened = {
        utc(2025, 3, 10, 9): ("EUR", 1_000),  # today
        utc(2025, 3, 8, 23, 30): ("EUR", 250),  # 00:30 on 9 March in Paris: 1 day
        utc(2025, 3, 8, 22, 30): ("EUR", 5),  # 23:30 on 8 March in Paris: 2 days
        utc(2025, 3, 2, 23): ("JPY", 700),  # the first instant of 3 March: 7 days
        utc(2025, 3, 2, 22, 59, 59): ("EUR", 40),  # 8 days
        utc(2025, 2, 7, 23): ("EUR", 3),  # 30 days
        utc(2025, 2, 7, 22): ("JPY", 9),  # 31 days
        utc(2024, 1, 1): ("JPY", 11),
    }
    for opened_at, (currency, amount) in opened.items():
        make_discrepancy(
            session, paris, opened_at=opened_at, currency=currency, amount_minor=amount
        )
    make_discrepancy(session, paris, opened_at=utc(2025, 3, 10, 8), status="acknowledged")
    in_state(session, paris, "resolved")  # not counted
    make_discrepancy(session, other_org, opened_at=utc(2025, 3, 10, 9))  # not counted

    summary = ageing_summary(
        session=session, org_id=paris.id, filters=DiscrepancyFilters(), now=NOW
    )

    assert summary.time_zone == "Europe/Paris"
    assert summary.as_of == NOW
    assert summary_figures(summary) == {
        "0-1": (3, [("EUR", 3, 3_750)]),
        "2-7": (2, [("EUR", 1, 5), ("JPY", 1, 700)]),
        "8-30": (2, [("EUR", 2, 43)]),
        "31+": (2, [("JPY", 2, 20)]),
    }


def test_each_bucket_s_window_lists_exactly_what_the_summary_counts_in_it(session, paris):
    opened = (
        utc(2025, 3, 10, 9),
        utc(2025, 3, 8, 23, 30),
        utc(2025, 3, 8, 22, 30),
        utc(2025, 3, 2, 22, 59, 59),
        utc(2025, 2, 7, 23),
        utc(2025, 2, 7, 22),
    )
    for opened_at in opened:
        make_discrepancy(session, paris, opened_at=opened_at)
    summary = ageing_summary(
        session=session, org_id=paris.id, filters=DiscrepancyFilters(), now=NOW
    )
    listed = []
    for bucket in summary.buckets:
        since, until = bucket_window(bucket.label, NOW, "Europe/Paris")
        page = list_discrepancies(
            session=session, org_id=paris.id, filters=DiscrepancyFilters(since=since, until=until),
            sort="opened_at", cursor=None, limit=50,
        )  # fmt: skip
        listed.append(len(page.items))
    assert listed == [bucket.count for bucket in summary.buckets] == [2, 1, 2, 1]
    assert bucket_window("0-1", NOW, "Europe/Paris") == (utc(2025, 3, 8, 23), None)
    assert bucket_window("31+", NOW, "Europe/Paris") == (None, utc(2025, 2, 7, 23))


def test_the_list_filters_narrow_the_summary(session, paris):
    make_discrepancy(session, paris, opened_at=utc(2025, 3, 10), severity="low", amount_minor=1)
    make_discrepancy(session, paris, opened_at=utc(2025, 3, 10), amount_minor=20)
    make_discrepancy(session, paris, opened_at=utc(2025, 3, 1), amount_minor=300)
    make_discrepancy(session, paris, opened_at=utc(2025, 3, 1), currency="USD", amount_minor=4_000)

    def figures(**filters):
        summary = ageing_summary(
            session=session, org_id=paris.id, filters=DiscrepancyFilters(**filters), now=NOW
        )
        return summary_figures(summary)

    assert figures(severity="high", currency="EUR") == {
        "0-1": (1, [("EUR", 1, 20)]),
        "2-7": (0, []),
        "8-30": (1, [("EUR", 1, 300)]),
        "31+": (0, []),
    }
    assert figures(since=utc(2025, 3, 5), min_amount=10)["0-1"] == (1, [("EUR", 1, 20)])
    assert figures(min_amount=20, max_amount=300)["8-30"] == (1, [("EUR", 1, 300)])
    assert all(count == 0 for count, _ in figures(status="resolved").values())


def test_an_empty_queue_has_every_bucket_at_zero(session, paris):
    summary = ageing_summary(
        session=session, org_id=paris.id, filters=DiscrepancyFilters(), now=NOW
    )
    assert [asdict(bucket) for bucket in summary.buckets] == [
        {"label": b.label, "min_days": b.min_days, "max_days": b.max_days, "count": 0,
         "by_currency": []}
        for b in AGE_BUCKETS
    ]  # fmt: skip


@pytest.mark.parametrize("name", [None, *ONE_OF_EACH])
def test_the_summary_is_one_statement_a_list_index_covers(session, paris, name):
    """Every column the statement reads is in a list index, so it can be served by an
    index-only scan of the organisation's entries, whatever the filters.

    The planner's own choice depends on the data: with several organisations it walks
    ``…_list_by_opened`` index-only (docs/decisions.md, "Ageing summary"). Here the other
    paths are priced out, and the partial unique index on unresolved rows (which the status
    condition implies, but which lacks the columns) is dropped inside the rolled-back test.
    """
    filters = DiscrepancyFilters(**({name: ONE_OF_EACH[name]} if name else {}))
    with captured_statements(session) as statements:
        ageing_summary(session=session, org_id=paris.id, filters=filters, now=NOW)
    summaries = [s for s in statements if "reconciliation_discrepancies" in s[0]]
    assert len(summaries) == 1
    statement, parameters = summaries[0]
    session.execute(text("DROP INDEX uq_reconciliation_discrepancies_one_unresolved"))
    for setting in ("enable_seqscan", "enable_bitmapscan", "enable_indexscan"):
        session.execute(text(f"SET LOCAL {setting} = off"))
    plan = (
        session.connection()
        .exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
        .scalar()[0]["Plan"]
    )
    nodes, scans = [plan], []
    while nodes:
        node = nodes.pop()
        scans += [node] if node.get("Relation Name") == "reconciliation_discrepancies" else []
        nodes.extend(node.get("Plans", []))
    (scan,) = scans
    assert scan["Node Type"] == "Index Only Scan"
    assert scan["Index Name"] in LIST_INDEX.values()


# --- the API --------------------------------------------------------------------------


def test_the_api_answers_the_buckets_with_exact_amounts(client, session, paris, headers):
    today = datetime.now(UTC)
    make_discrepancy(session, paris, opened_at=today, amount_minor=1_999)
    make_discrepancy(session, paris, opened_at=today - timedelta(days=12), currency="KWD",
                     amount_minor=1_234_567)  # fmt: skip
    response = client.get(SUMMARY, headers=headers)
    assert response.status_code == 200
    body = response.json
    assert body["time_zone"] == "Europe/Paris"
    assert [(b["label"], b["count"], b["by_currency"]) for b in body["buckets"]] == [
        ("0-1", 1, [{"currency": "EUR", "count": 1, "amount_minor": 1_999}]),
        ("2-7", 0, []),
        ("8-30", 1, [{"currency": "KWD", "count": 1, "amount_minor": 1_234_567}]),
        ("31+", 0, []),
    ]
    assert body["buckets"][3]["max_days"] is None


def test_a_viewer_may_read_the_summary(client, session, paris):
    viewer = create_api_key(session=session, org_id=paris.id, role="viewer")
    make_discrepancy(session, paris, opened_at=datetime.now(UTC))
    response = client.get(SUMMARY, headers=auth(viewer.secret))
    assert response.status_code == 200
    assert response.json["buckets"][0]["count"] == 1


def test_another_organisations_discrepancies_are_not_counted(client, session, other_org, headers):
    make_discrepancy(session, other_org, opened_at=datetime.now(UTC))
    response = client.get(SUMMARY, headers=headers)
    assert [bucket["count"] for bucket in response.json["buckets"]] == [0, 0, 0, 0]


@pytest.mark.parametrize(
    "query",
    ["sort=amount", "limit=5", "status=closed", "currency=EURO", "since=2025-03-01", "x=1"],
)
def test_a_bad_filter_is_422_naming_it(client, headers, query):
    response = client.get(f"{SUMMARY}?{query}", headers=headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["errors"][0]["field"] == query.split("=")[0]


def test_the_api_passes_the_filters_through(client, session, paris, headers):
    make_discrepancy(session, paris, opened_at=datetime.now(UTC), currency="USD")
    make_discrepancy(session, paris, opened_at=datetime.now(UTC))
    response = client.get(f"{SUMMARY}?currency=usd", headers=headers)
    assert response.json["buckets"][0]["by_currency"] == [
        {"currency": "USD", "count": 1, "amount_minor": 2_500}
    ]
