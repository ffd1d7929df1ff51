"""Hostile settlement uploads: each is a clear 4xx problem, and nothing is stored.

Uses the hostile-input suite's ``refused`` and ``world`` fixtures (conftest.py).
"""

from __future__ import annotations

import gzip

import pytest

from tests.cross_cutting.test_hostile_input import SQL
from tests.settlements.reading import FIXTURES, csv_text, multipart
from tests.settlements.test_layouts import ADYEN_HEADERS, SETTLED

FILES = "/billing/settlements/files"
PAYOUTS = "/billing/settlements/payouts"
ADYEN = (FIXTURES / "adyen" / "settlement_details_every_type.csv").read_bytes()


def adyen(**cells: str) -> bytes:
    return csv_text(ADYEN_HEADERS["short_25"], [SETTLED | cells])


# name → (file content, words the problem's detail must hold)
HOSTILE_FILES = {
    "empty": (b"", "the file is empty"),
    "unknown-layout": (b"name,amount\nalice,10\n", "unknown layout; expected one of"),
    "accounting-report": (b"Record Type,Payable (SC)\nSettled,1\n", "Payments accounting report"),
    "binary": (b"\xff" + bytes(range(256)) * 4, "not UTF-8"),
    "binary-after-a-header": (b"a,b\n" + bytes(range(256)), "unknown layout"),
    "gzip-bomb": (gzip.compress(b"0" * 10_000_000), "not UTF-8"),
    "utf16": ("Psp Reference,Type\n".encode("utf-16"), "not UTF-8"),
    "one-long-line": (b"a" * (1 << 20) + b"\n", "longer than 1048576 bytes"),
    "unclosed-quote": (adyen() + b'X,"open\n', "not readable as CSV"),
    "float-amount": (adyen(**{"Net Credit (NC)": "9.7000001"}), "more than 2 decimals"),
    "exponent-amount": (adyen(**{"Net Credit (NC)": "9.7e2"}), "not a decimal number"),
    "nan-amount": (adyen(**{"Net Credit (NC)": "NaN"}), "not a decimal number"),
    "huge-amount": (adyen(**{"Net Credit (NC)": "9" * 30}), "largest amount"),
    "bad-currency": (adyen(**{"Net Currency": SQL[:3]}), "ISO 4217"),
    "control-characters": (adyen(**{"Psp Reference": "P\x1b[2J"}), "control characters"),
    "nul": (adyen(**{"Merchant Reference": "A\x00B"}), "NUL"),
    "bidi-override": (adyen(**{"Merchant Reference": "A\u202eB"}), "control characters"),
    "long-reference": (adyen(**{"Psp Reference": "P" * 300}), "longer than 255"),
    "year-5000": (adyen(**{"Creation Date": "5000-01-01 00:00:00"}), "future"),
    "json-float-amount": (
        b'{"object": "payout", "id": "p", "status": "paid", "currency": "usd", "amount": 1.5}',
        "integer",
    ),
    "json-deep": (b'{"object": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not valid JSON"),
}


@pytest.mark.parametrize("case", HOSTILE_FILES)
def test_a_hostile_settlement_file_is_422_and_stores_nothing(client, world, refused, case):
    content, words = HOSTILE_FILES[case]
    problem = refused(lambda: post_file(client, world, content), 422)
    assert words in problem["detail"]


def test_sql_in_a_reference_is_stored_as_text(client, world):
    assert post_file(client, world, adyen(**{"Psp Reference": SQL})).status_code == 201


def post_file(client, world, content: bytes, query: str = ""):
    return client.post(f"{FILES}{query}", headers=world.headers, **multipart(content))


def test_an_upload_that_is_not_multipart_is_415(client, world, refused):
    refused(lambda: client.post(FILES, json={"file": "x"}, headers=world.headers), 415)


def test_an_upload_without_the_file_field_is_422(client, world, refused):
    upload = multipart(ADYEN, field="other")
    problem = refused(lambda: client.post(FILES, headers=world.headers, **upload), 422)
    assert "field 'file'" in problem["detail"]


def test_an_upload_over_the_limit_is_413(client, world, refused, override_settings):
    override_settings(SETTLEMENT_MAX_BYTES="4096")

    refused(lambda: post_file(client, world, ADYEN * 3), 413)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("account_id=not-a-uuid", 422),
        ("account_id=00000000-0000-4000-8000-000000000000", 404),
        ("unknown=1", 422),
    ],
)
def test_an_upload_naming_a_bad_account_is_refused(client, world, refused, query, status):
    refused(lambda: post_file(client, world, ADYEN, f"?{query}"), status)


@pytest.mark.parametrize(
    "query",
    ["status=lost", f"currency={SQL}", "since=yesterday", "until=2026-01-01T00:00:00",
     "limit=0", "limit=501", "cursor=%00", f"status={SQL}"],
)  # fmt: skip
def test_a_bad_payout_filter_is_refused(client, world, refused, query):
    expected = 400 if query.startswith("cursor") else 422
    refused(lambda: client.get(f"{PAYOUTS}?{query}", headers=world.headers), expected)
