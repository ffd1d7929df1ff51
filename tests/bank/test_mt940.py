"""MT940 through the mt-940 library: messages split, lines named, amounts exact."""

from __future__ import annotations

from datetime import date

import pytest

from shared.bank.model import UnreadableStatement
from tests.bank.support import fixture_bytes, read_bytes

STATEMENT = fixture_bytes("statement.sta").decode()


def test_the_fixture_reads_exactly():
    [(statement, entries)] = read_bytes(STATEMENT.encode())
    header = statement.header
    assert (header.format, header.statement_id, header.currency) == (
        "mt940",
        "RECON-MT-1/00012/001",
        "EUR",
    )
    assert (header.account.scheme, header.account.masked) == ("iban", "NL91…4300")
    assert (header.opening_balance_minor, header.closing_balance_minor) == (100000, 124975)
    assert (statement.period_start, statement.period_end) == (date(2026, 3, 1), date(2026, 3, 2))
    assert statement.balanced is True
    credit, charge = entries
    assert (credit.amount_minor, credit.bank_reference, credit.codes.swift) == (
        25010,
        "BANKREF-0002",
        "NTRF",
    )
    # The :86: text wraps over two lines; it is stored as one.
    assert credit.remittance_text == "PAYOUT po_fixture_0002 Example Payments Ltd"
    assert (charge.amount_minor, charge.bank_reference, charge.codes.swift) == (-35, None, "NCHG")


def test_two_messages_are_two_statements():
    second = STATEMENT.replace("RECON-MT-1", "RECON-MT-2").replace("00012/001", "00013/001")
    statements = read_bytes((STATEMENT + "\n" + second).encode())
    assert [statement.header.statement_id for statement, _ in statements] == [
        "RECON-MT-1/00012/001",
        "RECON-MT-2/00013/001",
    ]


def test_unbalanced_statement_is_read_and_flagged():
    [(statement, _)] = read_bytes(STATEMENT.replace("EUR1249,75", "EUR1249,70").encode())
    assert statement.balanced is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ((":61:2603020302DR0,35NCHGNONREF", ":61:garbage"), r"mt940 line 9: tag :61: cannot"),
        ((":60F:C260301EUR1000,00", ":60F:Cxx"), r"mt940 line 5: tag :60F: cannot"),
        ((":86:Account charges", ":99:Account charges"), r"mt940 line 10: unknown tag :99:"),
        ((":62F:C260302EUR1249,75\n", ""), r"statement 1 \(line 2\): missing closing balance"),
        (("C260301EUR1000,00", "C260301XXX1000,00"), r"opening balance currency 'XXX'"),
        (("CR250,10", "CR250,105"), r"statement 1, line 6: .*more decimals"),
        (("62F:C260302", "62F:C260228"), r"closing balance date 2026-02-28 is before the open"),
        (("62F:C260302EUR", "62F:C260302USD"), r"closing balance in USD, opening in EUR"),
    ],
)
def test_broken_tags_are_refused_naming_the_line(change, message):
    with pytest.raises(UnreadableStatement, match=message):
        read_bytes(STATEMENT.replace(*change).encode())


def test_a_file_without_statements_is_refused():
    with pytest.raises(UnreadableStatement, match=r"not camt\.053 XML, MT940 or BAI2"):
        read_bytes(b"hello\n")
