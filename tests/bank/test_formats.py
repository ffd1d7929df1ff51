"""The format is told from the content, never from a file name."""

from __future__ import annotations

import pytest

from shared.bank.csv_format import CsvMapping
from shared.bank.formats import detect_format
from shared.bank.model import UnreadableStatement
from tests.bank.support import fixture_bytes

MAPPING = CsvMapping(account="1", date_column="d", amount_column="a", currency="EUR")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("camt053_v02.xml", "camt053"),
        ("statement.sta", "mt940"),
        ("statement.bai2", "bai2"),
        ("statement.csv", "csv"),
    ],
)
def test_each_fixture_is_detected(name, expected):
    assert detect_format(fixture_bytes(name), csv_mapping=MAPPING) == expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xef\xbb\xbf  <Document/>", "camt053"),
        (b"ABNANL2A\n940\nABNANL2A\n:20:X\n", "mt940"),
        (b"\r\n01,123,456,260303,0600,1,,,2/", "bai2"),
    ],
)
def test_boms_blank_lines_and_swift_headers_do_not_hide_the_format(head, expected):
    assert detect_format(head) == expected


def test_anything_else_without_a_mapping_is_refused():
    with pytest.raises(UnreadableStatement, match="needs the account's column mapping"):
        detect_format(fixture_bytes("statement.csv"))
