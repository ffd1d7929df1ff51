"""BAI2 through the bai2 library with its integrity checks on."""

from __future__ import annotations

from datetime import date

import pytest

from shared.bank.model import UnreadableStatement
from tests.bank.support import fixture_bytes, read_bytes

STATEMENT = fixture_bytes("statement.bai2").decode()


def test_the_fixture_reads_exactly():
    [(statement, [credit, charge])] = read_bytes(STATEMENT.encode())
    header = statement.header
    assert (header.format, header.statement_id, header.currency) == (
        "bai2",
        "2026-03-02/12345678",
        "USD",
    )
    assert (header.opening_balance_minor, header.closing_balance_minor) == (100000, 124975)
    assert (statement.period_start, statement.balanced) == (date(2026, 3, 2), True)
    assert (credit.amount_minor, credit.codes.bai, credit.bank_reference) == (
        25010,
        "165",
        "BANKREF-0003",
    )
    # The 88 continuation record goes on the detail's text.
    assert credit.remittance_text == "PAYOUT po_fixture_0003,EXAMPLE PAYMENTS LTD"
    assert (charge.amount_minor, charge.codes.bai) == (-35, "451")


def test_without_ledger_balances_the_check_is_unknown():
    content = STATEMENT.replace("03,12345678,USD,010,100000,,,015,124975,,/", "03,12345678,USD,/")
    content = content.replace("250020", "25045")
    [(statement, _)] = read_bytes(content.encode())
    assert (statement.header.opening_balance_minor, statement.balanced) == (None, None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("49,250020,5/", "49,250021,5/"),
            r"bai2 at record \d+ \(line \d+\): Invalid account control",
        ),
        (("88,EXAMPLE", "EXAMPLE"), r"bai2 line 5: does not start with a record code"),
        (("16,451,35", "16,XYZ,35"), r"bai2 at record 6 \(line 6\): Type code 'XYZ'"),
        (
            ("ACCOUNT CHARGES/\n49", "ACCOUNT CHARGES/ 49"),
            r"bai2 line 6: a second record \('49,'\) follows '/'",
        ),
    ],
)
def test_bad_records_are_refused_naming_the_place(change, message):
    with pytest.raises(UnreadableStatement, match=message):
        read_bytes(STATEMENT.replace(*change).encode())
