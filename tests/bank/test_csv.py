"""CSV through a column mapping: decimal comma, debit and credit columns, named rows."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from shared.bank.csv_format import CsvMapping
from shared.bank.model import UnreadableStatement
from tests.bank.support import fixture_bytes, read_bytes

STATEMENT = fixture_bytes("statement.csv").decode()
MAPPING = CsvMapping(
    account="NL91ABNA0417164300",
    currency="EUR",
    date_column="Booking date",
    value_date_column="Value date",
    debit_column="Debit",
    credit_column="Credit",
    counterparty_column="Counterparty",
    text_column="Details",
    reference_column="Reference",
    date_format="%d.%m.%Y",
    decimal_separator=",",
    thousands_separator=".",
    delimiter=";",
)


def test_the_fixture_reads_exactly():
    [(statement, [credit, charge])] = read_bytes(STATEMENT.encode(), csv_mapping=MAPPING)
    assert (statement.header.format, statement.header.currency) == ("csv", "EUR")
    assert statement.header.account.masked == "NL91…4300"
    assert (statement.entry_count, statement.entries_total_minor, statement.balanced) == (
        2,
        124975,
        None,
    )
    assert (statement.period_start, statement.period_end) == (date(2026, 3, 2), date(2026, 3, 2))
    assert (credit.amount_minor, credit.value_date, credit.counterparty_name) == (
        125010,
        date(2026, 3, 3),
        "Example Payments Ltd",
    )
    assert (charge.amount_minor, charge.bank_reference, charge.value_date) == (
        -35,
        "BANKREF-0006",
        None,
    )


def test_a_signed_amount_column_and_a_currency_column():
    mapping = CsvMapping(
        account="12345678", date_column="date", amount_column="amount", currency_column="ccy"
    )
    content = b"date,amount,ccy\n2026-03-02,-12.5,jpy\n"
    with pytest.raises(
        UnreadableStatement, match=r"row 2: amount '-12\.5': .*more decimals than JPY"
    ):
        read_bytes(content, csv_mapping=mapping)
    [(statement, [entry])] = read_bytes(
        b"date,amount,ccy\n2026-03-02,-12,jpy\n", csv_mapping=mapping
    )
    assert (entry.amount_minor, entry.currency, statement.header.currency) == (-12, "JPY", "JPY")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (STATEMENT.replace("Debit;", "Soll;"), r"csv header: missing column\(s\) 'Debit'"),
        (STATEMENT.replace("02.03.2026;;0,35", "2026-03-02;;0,35"), r"csv row 3: column 'Booking"),
        (STATEMENT.replace(";;0,35;;", ";;0,35;1,00;"), r"csv row 3: exactly one of the debit"),
        (
            STATEMENT.replace("1.250,10", "1.250,1x"),
            r"csv row 2: amount '1.250,1x': '1250.1x' is not a decimal",
        ),
        (STATEMENT.splitlines()[0] + "\n", r"csv file: no rows"),
    ],
)
def test_bad_rows_are_refused_naming_the_row(content, message):
    with pytest.raises(UnreadableStatement, match=message):
        read_bytes(content.encode(), csv_mapping=MAPPING)


@pytest.mark.parametrize(
    "fields",
    [
        {"amount_column": "a", "debit_column": "d", "credit_column": "c", "currency": "EUR"},
        {"debit_column": "d", "currency": "EUR"},
        {"amount_column": "a"},
        {"amount_column": "a", "currency": "EUR", "currency_column": "ccy"},
        {
            "amount_column": "a",
            "currency": "EUR",
            "decimal_separator": ",",
            "thousands_separator": ",",
        },
        {"amount_column": "a", "currency": "ZZZ"},
    ],
)
def test_an_inconsistent_mapping_is_refused(fields):
    with pytest.raises(ValidationError):
        CsvMapping(account="1", date_column="date", **fields)
