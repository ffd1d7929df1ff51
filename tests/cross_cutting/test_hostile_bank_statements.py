"""Hostile bank statement uploads and entry queries: each is a clear 4xx problem, and
nothing is stored (``refused`` and ``world`` come from conftest.py)."""

from __future__ import annotations

import io
import json

import pytest

from shared.bank.imports import import_statement_file
from tests.bank.support import fixture_bytes
from tests.bank.test_camt053 import BILLION_LAUGHS, EXTERNAL_DTD, EXTERNAL_ENTITY
from tests.cross_cutting.test_hostile_input import SQL
from tests.support.factories import make_org

STATEMENTS = "/billing/bank/statements"
ENTRIES = "/billing/bank/entries"
CAMT = fixture_bytes("camt053_v02.xml")
MT940 = fixture_bytes("statement.sta")
BAI2 = fixture_bytes("statement.bai2")
CSV = fixture_bytes("statement.csv")
# A good first message, then one whose :61: line does not parse.
SECOND_BROKEN = (
    MT940
    + b"\n"
    + (
        MT940.split(b"{4:\n", 1)[1]
        .replace(b"RECON-MT-1", b"RECON-MT-2")
        .replace(b":61:2603020302DR", b":61:2603020302XX")
    )
)

# name → (file content, words the problem's detail must hold)
HOSTILE_FILES = {
    "external-entity": (EXTERNAL_ENTITY, "DTDs, entity declarations and external references"),
    "entity-bomb": (BILLION_LAUGHS, "DTDs, entity declarations and external references"),
    "external-dtd": (EXTERNAL_DTD, "DTDs, entity declarations and external references"),
    "truncated-xml": (CAMT[: len(CAMT) // 2], "not well-formed"),
    "truncated-after-a-statement": (
        CAMT.replace(b"</Stmt>", b"</Stmt><Stmt><Id>X", 1).rsplit(b"</Document>", 1)[0],
        "camt053",
    ),
    "camt052": (CAMT.replace(b"camt.053.001.02", b"camt.052.001.02"), "not a camt.053 Document"),
    "camt053-v99": (CAMT.replace(b"camt.053.001.02", b"camt.053.001.99"), "not a supported"),
    "mt940-unknown-tag": (MT940.replace(b":86:Account charges", b":99:x"), "unknown tag :99:"),
    "mt940-broken-61": (MT940.replace(b":61:2603020302DR", b":61:26030203XX"), "mt940 line"),
    "mt940-second-message-broken": (SECOND_BROKEN, "mt940"),
    "mt940-deutsche-mark": (MT940.replace(b"EUR", b"DEM"), "not an ISO 4217 currency"),
    "bai2-control-total": (BAI2.replace(b"98,250020", b"98,250021"), "bai2"),
    "csv-without-mapping": (CSV, "needs the account's column mapping"),
    "binary": (bytes(range(256)) * 4, "not camt.053 XML, MT940 or BAI2"),
    "empty": (b"", "not camt.053 XML, MT940 or BAI2"),
}


def post_file(client, world, content: bytes, filename: str = "statement", **fields: str):
    data = {"file": (io.BytesIO(content), filename), **fields}
    return client.post(
        STATEMENTS, data=data, headers=world.headers, content_type="multipart/form-data"
    )


@pytest.mark.parametrize("case", HOSTILE_FILES)
def test_a_hostile_statement_file_is_422_and_stores_nothing(client, world, refused, case):
    content, words = HOSTILE_FILES[case]
    problem = refused(lambda: post_file(client, world, content), 422)
    assert words in problem["detail"], problem["detail"]


def test_an_entity_is_never_expanded_into_the_answer(client, world, refused):
    problem = refused(lambda: post_file(client, world, EXTERNAL_ENTITY), 422)
    assert problem["type"].endswith("/forbidden-xml")
    assert "root:" not in json.dumps(problem)


def test_an_upload_that_is_not_multipart_is_415(client, world, refused):
    refused(lambda: client.post(STATEMENTS, json={"file": "x"}, headers=world.headers), 415)
    refused(
        lambda: client.post(
            STATEMENTS, data=CAMT, headers=world.headers, content_type="application/xml"
        ),
        415,
    )


def test_an_upload_without_the_file_field_is_422(client, world, refused):
    def send():
        data = {"other": (io.BytesIO(CAMT), "x.xml")}
        return client.post(
            STATEMENTS, data=data, headers=world.headers, content_type="multipart/form-data"
        )

    assert "field 'file'" in refused(send, 422)["detail"]


def test_an_upload_over_the_limit_is_413(client, world, refused, override_settings):
    override_settings(BANK_STATEMENT_MAX_BYTES="4096")
    refused(lambda: post_file(client, world, CAMT * 3), 413)


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"account_id": "not-a-uuid"}, 422, "account_id"),
        ({"account_id": "00000000-0000-4000-8000-000000000000"}, 404, "does not exist"),
        ({"unknown": "1"}, 422, "unknown"),
        ({"csv_mapping": "{not json"}, 422, "csv_mapping"),
        ({"csv_mapping": "[" * 10_000 + "]" * 10_000}, 422, "csv_mapping"),
        ({"csv_mapping": json.dumps({"account": SQL})}, 422, "csv_mapping"),
    ],
    ids=["bad-account-id", "unknown-account", "unknown-field", "mapping-not-json",
         "mapping-deep", "mapping-incomplete"],
)  # fmt: skip
def test_bad_form_fields_are_refused(client, world, refused, fields, status, words):
    problem = refused(lambda: post_file(client, world, CSV, **fields), status)
    assert words in problem["detail"], problem["detail"]


def test_another_organisations_account_is_404(client, session, world, refused):
    other = make_org(session)
    with io.BytesIO(CAMT) as binary:
        [statement] = import_statement_file(
            session=session, org_id=other.id, binary=binary, filename="x.xml"
        ).statements
    account_id = str(statement.account.id)
    refused(lambda: post_file(client, world, CAMT, account_id=account_id), 404)


def test_a_statement_of_another_account_than_the_one_named_is_422(
    client, world, refused, published_tasks
):
    german = MT940.replace(b"NL91ABNA0417164300", b"DE89370400440532013000")
    account_id = post_file(client, world, german).json["statements"][0]["account"]["id"]
    published_tasks.clear()  # the accepted upload queued its payout matching
    problem = refused(lambda: post_file(client, world, CAMT, account_id=account_id), 422)
    assert "for account NL91…4300, not DE89…3000" in problem["detail"]


def test_a_filename_with_control_characters_is_refused(client, world, refused):
    refused(lambda: post_file(client, world, CAMT, filename="a\x1b[2Jb.xml"), 422)


def test_sql_in_entry_text_is_stored_as_text(client, world):
    content = MT940.replace(b":86:Account charges", b":86:" + SQL.encode())
    assert post_file(client, world, content).status_code == 201
    texts = [e["remittance_text"] for e in client.get(ENTRIES, headers=world.headers).json["items"]]
    assert SQL in texts


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("booked_from=yesterday", 422), ("booked_to=2026-02-30", 422),
        ("booked_from=2026-03-02&booked_to=2026-03-01", 422), ("min_amount=1.5", 422),
        ("max_amount=" + "9" * 30, 422), ("unmatched=maybe", 422), ("account_id=x", 422),
        (f"account_id={SQL}", 422), ("limit=0", 422), ("limit=501", 422), ("unknown=1", 422),
        ("cursor=%00", 400), ("cursor=" + "A" * 600, 422),
        ("cursor=WyIyMDI2LTAzLTAyVDAwOjAwOjAwKzAwOjAwIiwgIngiXQ", 400),
    ],
)  # fmt: skip
def test_a_bad_entry_filter_is_refused(client, world, refused, query, status):
    refused(lambda: client.get(f"{ENTRIES}?{query}", headers=world.headers), status)
