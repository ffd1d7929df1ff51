"""Files and cells recon refuses, each with the reason, the row and the column."""

from __future__ import annotations

import json

import pytest

from shared.settlements.cells import SettlementCellInvalid, SettlementFileRefused
from tests.settlements.reading import FIXTURES, csv_text, parse_bytes
from tests.settlements.test_layouts import ADYEN_HEADERS, SETTLED

ADYEN_HEADER = ADYEN_HEADERS["short_25"]
STRIPE = (FIXTURES / "stripe" / "balance_report_every_category.csv").read_bytes()
PAYPAL = (FIXTURES / "paypal" / "settlement_every_event.csv").read_bytes()
BALANCE_TRANSACTION = json.loads((FIXTURES / "stripe" / "balance_transaction.json").read_text())
PAYOUT = json.loads((FIXTURES / "stripe" / "payout.json").read_text())


def adyen_row(**cells: str) -> bytes:
    """A one-row Adyen report whose Settled row has ``cells`` changed."""
    changed = {name.replace("_", " "): value for name, value in cells.items()}
    return csv_text(ADYEN_HEADER, [SETTLED | changed])


@pytest.mark.parametrize(
    ("content", "column", "reason"),
    [
        (adyen_row(**{"Net_Credit_(NC)": "9.701"}), "Net Credit (NC)", "more than 2 decimals"),
        (adyen_row(**{"Gross_Currency": "JPY", "Gross_Credit_(GC)": "5000.5"}),
         "Gross Credit (GC)", "more than 0 decimals"),
        (adyen_row(**{"Net_Currency": "KWD", "Net_Credit_(NC)": "9.7001"}),
         "Net Credit (NC)", "more than 3 decimals"),
        (adyen_row(**{"Commission_(NC)": "1,000.00"}), "Commission (NC)", "not a decimal number"),
        (adyen_row(**{"Markup_(NC)": "abc"}), "Markup (NC)", "not a decimal number"),
        (adyen_row(**{"Net_Credit_(NC)": "9" * 17}), "Net Credit (NC)", "largest amount"),
        (adyen_row(**{"Net_Currency": "ZZZ"}), "Net Currency", "not an ISO 4217"),
        (adyen_row(**{"Net_Currency": "XAU"}), "Net Currency", "no minor unit"),
        (adyen_row(**{"Net_Currency": ""}), "Net Currency", "is empty"),
        (adyen_row(Type=""), "Type", "is empty"),
        (adyen_row(**{"Batch_Number": ""}), "Batch Number", "is empty"),
        (adyen_row(**{"Net_Credit_(NC)": ""}), "Net Credit (NC)", "Net Debit (NC)"),
        (adyen_row(**{"Gross_Currency": ""}), "Gross Credit (GC)", "states no currency"),
        (adyen_row(**{"Exchange_Rate": "-1"}), "Exchange Rate", "above 0"),
        (adyen_row(TimeZone="CST"), "TimeZone", "not a time zone"),
        (adyen_row(**{"Creation_Date": "11/09/2025"}), "Creation Date", "not a date"),
        (adyen_row(**{"Creation_Date": "1999-01-01 00:00:00"}), "Creation Date", "before 2000"),
        (adyen_row(**{"Creation_Date": "2999-01-01 00:00:00"}), "Creation Date", "future"),
        (adyen_row(**{"Psp_Reference": "PSP\x1b[2J"}), "Psp Reference", "control characters"),
        (adyen_row(**{"Psp_Reference": "P\x00"}), "Psp Reference", "NUL"),
        (adyen_row(**{"Merchant_Reference": "x" * 256}), "Merchant Reference", "longer than 255"),
        (STRIPE.replace(b"100.00,3.20,96.80", b"100.00,3.20,"), "net", "is empty"),
        (STRIPE.replace(b"100.00,3.20,96.80", b"100.00,3.2O,96.80"), "fee", "not a decimal"),
        (STRIPE.replace(b"2026-05-04 09:15:00", b"yesterday"), "created_utc", "not a date"),
        (STRIPE.replace(b",usd,100.00", b",,100.00"), "currency", "is empty"),
        (PAYPAL.replace(b'"CR",1000,', b'"CX",1000,'), "Transaction Debit or Credit", "CR or DR"),
        (PAYPAL.replace(b'"CR",1000,', b'"CR",10.5,'), "Gross Transaction Amount", "whole number"),
        (PAYPAL.replace(b'59,"EUR"', b'59,"USD"'), "Fee Currency", "differs from the gross"),
        (PAYPAL.replace(b"2026/05/04 08:00:05", b"2026-05-04 08:00:05"),
         "Transaction Completion Date", "not a date"),
    ],
)  # fmt: skip
def test_a_bad_cell_is_refused_naming_its_row_and_column(session, content, column, reason):
    with pytest.raises(SettlementCellInvalid) as refused:
        parse_bytes(session, content)
    assert refused.value.extra["column"] == column
    assert refused.value.detail.startswith(f"row {refused.value.extra['row']}, column {column!r}")
    assert reason in refused.value.detail


def test_the_row_number_counts_the_header_as_row_one(session):
    content = csv_text(ADYEN_HEADER, [SETTLED, SETTLED | {"Type": ""}])
    with pytest.raises(SettlementCellInvalid, match="row 3, column 'Type'"):
        parse_bytes(session, content)


def json_bytes(document: object) -> bytes:
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("content", "column", "reason"),
    [
        (json_bytes(BALANCE_TRANSACTION | {"amount": 100.5}), "amount", "integer of minor units"),
        (json_bytes(BALANCE_TRANSACTION | {"amount": "100"}), "amount", "integer of minor units"),
        (json_bytes(BALANCE_TRANSACTION | {"net": True}), "net", "integer of minor units"),
        (json_bytes(BALANCE_TRANSACTION | {"id": None}), "id", "is missing"),
        (json_bytes(BALANCE_TRANSACTION | {"currency": "eurx"}), "currency", "ISO 4217"),
        (json_bytes(BALANCE_TRANSACTION | {"created": 99}), "created", "before 2000"),
        (json_bytes(BALANCE_TRANSACTION | {"exchange_rate": -1}), "exchange_rate", "above 0"),
        (json_bytes(BALANCE_TRANSACTION | {"fee_details": "no"}), "fee_details", "list of objects"),
        (json_bytes(PAYOUT | {"status": "lost"}), "status", "must be one of"),
        (json_bytes(PAYOUT | {"amount": 10**16}), "amount", "largest amount"),
    ],
)  # fmt: skip
def test_a_bad_field_of_a_stripe_object_is_refused_naming_it(session, content, column, reason):
    with pytest.raises(SettlementCellInvalid) as refused:
        parse_bytes(session, content)
    assert refused.value.extra == {"row": 1, "column": column}
    assert reason in refused.value.detail


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty; expected one of: Adyen Settlement details report"),
        (b"name,amount\nalice,10\n", "unknown layout; expected one of: Adyen Settlement"),
        (b"Type,Net Currency\nSettled,USD\n", "PayPal Settlement report (STL"),
        (b"Company Account,Record Type,Payable (SC)\nX,Settled,1\n", "Payments accounting report"),
        (b'{"object": "charge"}', "unknown JSON object; expected one of"),
        (b"[1, 2]", "unknown layout"),
        (b'{"object": ', "not valid JSON"),
        (b"{" + b" " * 1_000_001 + b"}", "at most 1000000 characters"),
        (b"\xff\xfe\x00P\x00s\x00p", "line 1 is not UTF-8 text"),
        (csv_text(ADYEN_HEADER, [SETTLED]) + b"X,\xe9\xe9,Y\n", "line 3 is not UTF-8 text"),
        (csv_text(ADYEN_HEADER, [SETTLED]) + b'X,"unclosed\n', "not readable as CSV"),
        (PAYPAL.replace(b'"SF","EUR"', b'"ZZ","EUR"'), "unknown record type 'ZZ'"),
        (PAYPAL.replace(b'"CH",', b'"FH",'), "row 5: an SB record before"),
        (b"x" * (1 << 20) + b"\n", "line 1 is longer than 1048576 bytes"),
        (b'"CH","Transaction ID"\n', "the CH record lacks the column(s) Transaction Event Code"),
    ],
)  # fmt: skip
def test_a_file_of_no_known_layout_is_refused_saying_what_was_expected(session, content, reason):
    with pytest.raises(SettlementFileRefused) as refused:
        parse_bytes(session, content)
    assert reason in refused.value.detail
    assert refused.value.status == 422
