"""The settlement endpoints: upload (once), list, the original byte for byte, payouts."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from shared.access.api_keys import create_api_key
from shared.access.organizations import create_organization
from shared.models import SettlementFile, SettlementLine, SettlementPayout
from tests.settlements.reading import FIXTURES, multipart
from tests.support.checksums import database_checksum
from tests.support.factories import make_account

FILES = "/billing/settlements/files"
PAYOUTS = "/billing/settlements/payouts"
ADYEN = FIXTURES / "adyen" / "settlement_details_every_type.csv"
STRIPE = FIXTURES / "stripe" / "balance_report_every_category.csv"


@pytest.fixture
def org(session):
    return create_organization(session=session, name="Acme")


@pytest.fixture
def issued(session, org):
    return create_api_key(session=session, org_id=org.id, role="manager", name="Finance sync")


@pytest.fixture
def headers(issued):
    return {"Authorization": f"Bearer {issued.secret}"}


def upload(client, headers, content: bytes, name: str = "report.csv", query: str = ""):
    return client.post(f"{FILES}{query}", headers=headers, **multipart(content, name))


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_an_upload_answers_201_with_the_layout_and_the_summary(client, session, headers):
    response = upload(client, headers, ADYEN.read_bytes(), "batch_501.csv")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["provider"], body["layout"], body["filename"]) == (
        "adyen", "adyen_settlement_details", "batch_501.csv",
    )  # fmt: skip
    summary = body["summary"]
    assert (summary["lines"], summary["payouts"]) == (19, 3)
    assert summary["already_known"] == {"lines": 0, "payouts": 0}
    eur = {"lines": 15, "net_minor": 10606, "fees_minor": 1210, "payouts_minor": 10606}
    assert summary["totals"]["EUR"] == eur
    assert summary["totals"]["KWD"] == {
        "lines": 2,
        "net_minor": 12000,
        "fees_minor": 345,
        "payouts_minor": 12000,
    }
    assert (count(session, SettlementLine), count(session, SettlementPayout)) == (19, 3)


def test_an_upload_records_the_key_that_made_it(client, headers, issued):
    body = upload(client, headers, ADYEN.read_bytes()).get_json()
    assert (body["imported_by"], body["imported_by_name"]) == (
        str(issued.api_key.id), "Finance sync",
    )  # fmt: skip


def test_the_same_file_again_answers_200_with_the_earlier_import_and_adds_nothing(
    client, session, headers
):
    first = upload(client, headers, ADYEN.read_bytes()).get_json()
    before = database_checksum(session)
    again = upload(client, headers, ADYEN.read_bytes(), "renamed.csv")
    assert again.status_code == 200
    assert again.get_json() == first
    assert database_checksum(session) == before


def test_the_same_rows_in_another_file_are_counted_as_known_and_not_added(client, session, headers):
    content = ADYEN.read_bytes()
    lines = content.splitlines(keepends=True)
    upload(client, headers, b"".join(lines[:5]))
    second = upload(client, headers, b"".join([lines[0], *lines[3:8]])).get_json()
    assert second["summary"]["lines"] == 5
    assert second["summary"]["already_known"] == {"lines": 2, "payouts": 0}
    assert count(session, SettlementLine) == 4 + 3


def test_a_bad_cell_refuses_the_whole_file_and_stores_nothing(client, session, headers):
    content = ADYEN.read_bytes().replace(b",98.10,", b",98.101,")
    before = database_checksum(session)
    response = upload(client, headers, content)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert (problem["row"], problem["column"]) == (2, "Net Credit (NC)")
    assert database_checksum(session) == before


def test_the_original_downloads_byte_for_byte(client, headers):
    content = b"\xef\xbb\xbf" + ADYEN.read_bytes().replace(b"\n", b"\r\n")
    file_id = upload(client, headers, content, "batch 501 (BOM).csv").get_json()["id"]
    response = client.get(f"{FILES}/{file_id}/original", headers=headers)
    assert response.status_code == 200
    assert response.data == content
    assert response.headers["Content-Length"] == str(len(content))
    assert "batch 501 (BOM).csv" in response.headers["Content-Disposition"]


def test_an_original_over_a_mebibyte_is_kept_in_chunks_and_returned_whole(client, session, headers):
    lines = ADYEN.read_bytes().splitlines(keepends=True)
    rows = [
        line.replace(b"PSP0005", f"PSP{n:07d}".encode())
        for n in range(12_000)
        for line in [lines[16]]
    ]
    content = lines[0] + b"".join(rows)
    assert len(content) > 1024 * 1024  # two chunks at least
    file_id = upload(client, headers, content).get_json()["id"]
    assert client.get(f"{FILES}/{file_id}/original", headers=headers).data == content


def test_files_are_listed_newest_first(client, headers):
    upload(client, headers, ADYEN.read_bytes(), "a.csv")
    upload(client, headers, STRIPE.read_bytes(), "b.csv")
    listed = client.get(f"{FILES}?limit=1", headers=headers).get_json()
    assert [item["filename"] for item in listed["items"]] == ["b.csv"]
    rest = client.get(f"{FILES}?cursor={listed['next_cursor']}", headers=headers).get_json()
    assert [item["filename"] for item in rest["items"]] == ["a.csv"]


def test_payouts_carry_their_lines_net_and_the_difference(client, headers):
    mismatched = ADYEN.read_bytes().replace(b",USD,33.10,", b",USD,34.10,")
    upload(client, headers, mismatched)
    payouts = client.get(PAYOUTS, headers=headers).get_json()["items"]
    by_currency = {item["currency"]: item for item in payouts}
    assert by_currency["EUR"]["difference_minor"] == 0
    assert (by_currency["EUR"]["line_count"], by_currency["EUR"]["lines_net_minor"]) == (14, 10606)
    usd = by_currency["USD"]
    assert (usd["amount_minor"], usd["lines_net_minor"], usd["difference_minor"]) == (
        3410,
        3310,
        100,
    )


def test_payouts_filter_by_status_currency_and_booking_time(client, headers):
    upload(client, headers, ADYEN.read_bytes())
    upload(client, headers, (FIXTURES / "stripe" / "payout.json").read_bytes(), "po.json")

    def listed(query):
        return sorted(
            item["currency"]
            for item in client.get(f"{PAYOUTS}?{query}", headers=headers).get_json()["items"]
        )

    assert listed("status=pending") == ["EUR"]
    assert listed("currency=kwd") == ["KWD"]
    assert listed("since=2026-05-06T00:00:00%2B00:00") == ["EUR"]
    assert listed("until=2026-05-06T00:00:00%2B00:00") == ["EUR", "KWD", "USD"]


def test_a_payout_shows_its_lines_and_fee_breakdown(client, headers):
    upload(client, headers, ADYEN.read_bytes())
    payouts = client.get(f"{PAYOUTS}?currency=USD", headers=headers).get_json()["items"]
    detail = client.get(f"{PAYOUTS}/{payouts[0]['id']}", headers=headers).get_json()
    assert [line["provider_reference"] for line in detail["lines"]] == ["PSP0002"]
    assert detail["lines"][0]["exchange_rate"] == "0.00662"
    assert detail["fees"] == {
        "commission": 0,
        "markup": 0,
        "scheme_fee": 0,
        "interchange": 0,
        "processing": 0,
        "other": 0,
    }
    eur = client.get(f"{PAYOUTS}?currency=EUR", headers=headers).get_json()["items"][0]
    fees = client.get(f"{PAYOUTS}/{eur['id']}", headers=headers).get_json()["fees"]
    assert fees == {
        "commission": 20,
        "markup": 1050,
        "scheme_fee": 40,
        "interchange": 100,
        "processing": 0,
        "other": 0,
    }


def test_an_account_of_the_organisation_gives_the_merchant_reference_key(
    client, session, org, headers
):
    account = make_account(session, org, "stripe")
    account.merchant_reference_key = "order_id"
    session.flush()
    content = STRIPE.read_bytes().replace(
        b"payment_metadata[external_id]", b"payment_metadata[order_id]"
    )
    assert upload(client, headers, content, query=f"?account_id={account.id}").status_code == 201
    assert (
        session.scalar(
            select(SettlementLine.merchant_reference).where(
                SettlementLine.line_reference == "txn_own_01"
            )
        )
        == "ORDER-1"
    )


def test_a_file_of_another_provider_than_the_account_is_refused(client, session, org, headers):
    account = make_account(session, org, "stripe")
    response = upload(client, headers, ADYEN.read_bytes(), query=f"?account_id={account.id}")
    assert response.status_code == 422
    assert "the account is stripe" in response.get_json()["detail"]
    assert count(session, SettlementFile) == 0


def test_another_organisations_account_is_404(client, session, headers):
    other = create_organization(session=session, name="Other")
    account = make_account(session, other, "adyen")
    response = upload(client, headers, ADYEN.read_bytes(), query=f"?account_id={account.id}")
    assert response.status_code == 404


def test_an_upload_over_the_size_limit_is_413(client, session, headers, override_settings):
    override_settings(SETTLEMENT_MAX_BYTES="2048")
    response = upload(client, headers, ADYEN.read_bytes() * 2)
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    assert count(session, SettlementFile) == 0


def test_an_upload_larger_than_the_json_body_limit_is_accepted(client, headers):
    lines = ADYEN.read_bytes().splitlines(keepends=True)
    rows = [lines[16].replace(b"PSP0005", f"PSP{n:07d}".encode()) for n in range(8_000)]
    response = upload(client, headers, lines[0] + b"".join(rows))
    assert response.status_code == 201
    assert response.get_json()["summary"]["lines"] == 8_000


def test_a_payouts_lines_show_the_payment_and_record_they_settle(client, session, org, headers):
    from datetime import UTC, datetime

    from shared.settlements.matching import reconcile_settlement_file
    from tests.support.factories import make_payment

    payment = make_payment(session, org, provider="adyen", external_id="ORDER-2",
                           amount_minor=5000, currency="JPY")  # fmt: skip
    file_id = upload(client, headers, ADYEN.read_bytes()).get_json()["id"]
    reconcile_settlement_file(session=session, file_id=file_id, now=datetime.now(UTC))
    usd = client.get(f"{PAYOUTS}?currency=USD", headers=headers).get_json()["items"][0]
    (line,) = client.get(f"{PAYOUTS}/{usd['id']}", headers=headers).get_json()["lines"]
    assert (line["payment_id"], line["provider_record_id"]) == (str(payment.id), None)


def test_a_payout_known_from_a_webhook_only_is_listed_without_a_file(client, session, org, headers):
    from datetime import UTC, datetime

    from shared.settlements.model import ReportPayout
    from shared.settlements.payouts import record_payouts

    stated = datetime(2026, 5, 5, tzinfo=UTC)
    payout = ReportPayout("stripe", 1, "po_1", "EUR", 100, "in_transit", None, stated)
    record_payouts(session=session, org_id=org.id, provider="stripe", payouts=[payout])
    (listed,) = client.get(PAYOUTS, headers=headers).get_json()["items"]
    assert (listed["payout_id"], listed["file_id"], listed["difference_minor"]) == (
        "po_1",
        None,
        100,
    )
