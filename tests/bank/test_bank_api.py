"""The bank statement API: upload, accounts and entries, per organisation."""

from __future__ import annotations

import io
import json

import pytest

from shared.access.api_keys import create_api_key
from tests.bank.support import fixture_bytes
from tests.bank.test_csv import MAPPING
from tests.support.factories import make_org
from tests.support.hostile import bearer

STATEMENTS = "/billing/bank/statements"
ACCOUNTS = "/billing/bank/accounts"
ENTRIES = "/billing/bank/entries"
CAMT = fixture_bytes("camt053_v02.xml")
MT940 = fixture_bytes("statement.sta")
CSV = fixture_bytes("statement.csv")


def upload(client, headers, content: bytes, filename: str = "statement.xml", **fields: str):
    data = {"file": (io.BytesIO(content), filename), **fields}
    return client.post(STATEMENTS, data=data, headers=headers, content_type="multipart/form-data")


@pytest.fixture
def owner(session) -> dict[str, str]:
    return bearer(session, make_org(session))


def test_an_upload_answers_201_with_the_statement_summary(client, owner):
    response = upload(client, owner, CAMT)
    assert response.status_code == 201, response.json
    body = response.json
    assert body["filename"] == "statement.xml"
    [statement] = body["statements"]
    assert {key: statement[key] for key in (
        "statement_id", "format", "currency", "period_start", "period_end", "entry_count",
        "entries_added", "opening_balance_minor", "closing_balance_minor",
        "entries_total_minor", "balanced", "already_imported",
    )} == {
        "statement_id": "RECON-2026-03-02", "format": "camt053", "currency": "EUR",
        "period_start": "2026-03-02", "period_end": "2026-03-02", "entry_count": 2,
        "entries_added": 2, "opening_balance_minor": 100000, "closing_balance_minor": 124975,
        "entries_total_minor": 24975, "balanced": True, "already_imported": False,
    }  # fmt: skip
    account = statement["account"]
    assert (account["masked_identifier"], account["currency"], account["country"]) == (
        "NL91…4300", "EUR", "NL",
    )  # fmt: skip
    assert "NL91ABNA0417164300" not in response.get_data(as_text=True)


def test_the_same_file_again_answers_200_with_the_earlier_import(client, owner):
    first = upload(client, owner, CAMT).json
    again = upload(client, owner, CAMT, filename="again.xml")
    assert again.status_code == 200
    [statement] = again.json["statements"]
    assert statement["id"] == first["statements"][0]["id"]
    assert (statement["already_imported"], statement["entries_added"]) == (True, 0)
    assert statement["filename"] == "statement.xml"


def test_a_file_whose_every_statement_is_stored_answers_200(client, owner):
    upload(client, owner, CAMT)
    renamed = CAMT.replace(b"RECON-FIXTURE-1", b"RECON-FIXTURE-2")
    response = upload(client, owner, renamed)
    assert response.status_code == 200
    assert response.json["statements"][0]["already_imported"] is True


def test_an_unbalanced_statement_is_stored_and_says_so(client, owner):
    broken = MT940.replace(b":62F:C260302EUR1249,75", b":62F:C260302EUR1249,00")
    [statement] = upload(client, owner, broken, filename="x.sta").json["statements"]
    assert (statement["balanced"], statement["entries_added"]) == (False, 2)


def test_a_manager_may_upload(client, session):
    org = make_org(session)
    key = create_api_key(session=session, org_id=org.id, role="manager").secret
    assert upload(client, {"Authorization": f"Bearer {key}"}, CAMT).status_code == 201


def test_a_csv_upload_uses_the_mapping_sent_then_the_one_saved(client, owner):
    mapping = MAPPING.model_dump_json()
    first = upload(client, owner, CSV, filename="march.csv", csv_mapping=mapping)
    assert first.status_code == 201, first.json
    account = first.json["statements"][0]["account"]
    assert account["has_csv_mapping"] is True
    april = CSV.replace(b"02.03.2026", b"02.04.2026")
    second = upload(client, owner, april, filename="april.csv", account_id=account["id"])
    assert second.status_code == 201, second.json
    assert second.json["statements"][0]["account"]["id"] == account["id"]
    assert second.json["statements"][0]["period_start"] == "2026-04-02"


def test_accounts_list_the_organisations_own(client, session, owner):
    upload(client, owner, CAMT)
    other = bearer(session, make_org(session))
    upload(client, other, MT940.replace(b"NL91ABNA0417164300", b"DE89370400440532013000"))
    [account] = client.get(ACCOUNTS, headers=owner).json["items"]
    assert account["masked_identifier"] == "NL91…4300"
    [foreign] = client.get(ACCOUNTS, headers=other).json["items"]
    assert foreign["masked_identifier"] == "DE89…3000"


def entries(client, headers, query: str = "") -> list[dict]:
    response = client.get(f"{ENTRIES}?{query}", headers=headers)
    assert response.status_code == 200, response.json
    return response.json["items"]


def test_entries_are_filtered_by_account_dates_amount_and_unmatched(client, owner):
    camt = upload(client, owner, CAMT).json["statements"][0]
    april = MT940.replace(b"NL91ABNA0417164300", b"DE89370400440532013000")
    april = april.replace(b"2603020302", b"2604020402").replace(b"C260302", b"C260402")
    upload(client, owner, april, filename="april.sta")
    assert len(entries(client, owner)) == 4
    assert len(entries(client, owner, "unmatched=true")) == 4
    assert entries(client, owner, "unmatched=false") == []
    mine = entries(client, owner, f"account_id={camt['account']['id']}")
    assert {(e["amount_minor"], e["booking_date"]) for e in mine} == {
        (25010, "2026-03-02"), (-35, "2026-03-02"),
    }  # fmt: skip
    assert [e["booking_date"] for e in entries(client, owner, "booked_from=2026-04-01")] == [
        "2026-04-02", "2026-04-02",
    ]  # fmt: skip
    assert len(entries(client, owner, "booked_from=2026-03-02&booked_to=2026-03-02")) == 2
    assert {e["amount_minor"] for e in entries(client, owner, "max_amount=-1")} == {-35}
    assert {e["amount_minor"] for e in entries(client, owner, "min_amount=0&max_amount=30000")} == {
        25010,
    }
    credit = next(e for e in mine if e["amount_minor"] > 0)
    assert credit["remittance_text"].startswith("PAYOUT po_fixture_0001")
    assert credit["transaction_codes"]["domain"] == "PMNT"


def test_entries_page_newest_booked_first_with_a_cursor(client, owner):
    upload(client, owner, CAMT)
    april = CAMT.replace(b"2026-03-0", b"2026-04-0").replace(b"RECON-2026", b"RECON-APR")
    upload(client, owner, april)
    seen, cursor = [], None
    while True:
        query = "limit=1" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"{ENTRIES}?{query}", headers=owner).json
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["booking_date"] for e in seen] == ["2026-04-02"] * 2 + ["2026-03-02"] * 2
    assert len({e["id"] for e in seen}) == 4


def test_another_organisations_entries_are_never_listed(client, session, owner):
    upload(client, owner, CAMT)
    other = bearer(session, make_org(session))
    assert entries(client, other) == []
    account_id = client.get(ACCOUNTS, headers=owner).json["items"][0]["id"]
    assert entries(client, other, f"account_id={account_id}") == []


def test_csv_mapping_must_be_json_of_a_mapping(client, owner):
    response = upload(client, owner, CSV, filename="x.csv", csv_mapping=json.dumps({"a": 1}))
    assert response.status_code == 422
    assert "csv_mapping" in response.json["detail"]
