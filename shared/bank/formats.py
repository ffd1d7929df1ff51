"""Which format a statement file is in, told from its content, and the reader for it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO

from shared.bank.bai2_format import read_bai2
from shared.bank.camt053 import read_camt053
from shared.bank.csv_format import CsvMapping, read_csv
from shared.bank.model import StatementItem, UnreadableStatement
from shared.bank.mt940_format import read_mt940

FORMATS = ("camt053", "mt940", "bai2", "csv")
# How much of the file is looked at to tell its format.
SNIFF_BYTES = 4096
MT940_START = re.compile(rb"^(?::20:|\{1:)", re.MULTILINE)


def detect_format(head: bytes, *, csv_mapping: CsvMapping | None = None) -> str:
    """The format of a file starting with ``head``: XML is camt.053, ``01,`` BAI2, a
    ``:20:`` line (or a SWIFT ``{1:`` block) MT940; anything else is CSV when a mapping
    is given, else refused."""
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if start.startswith(b"<"):
        return "camt053"
    if start.startswith(b"01,"):
        return "bai2"
    if MT940_START.search(start):
        return "mt940"
    if csv_mapping is not None:
        return "csv"
    raise UnreadableStatement(
        "not camt.053 XML, MT940 or BAI2; a CSV statement needs the account's column mapping",
        format="unknown",
        location="start of file",
    )


def read_statement_file(
    source: IO[bytes], *, csv_mapping: CsvMapping | None = None
) -> Iterator[StatementItem]:
    """The statement stream of a seekable binary file in any supported format."""
    fmt = detect_format(source.read(SNIFF_BYTES), csv_mapping=csv_mapping)
    source.seek(0)
    if fmt == "camt053":
        return read_camt053(source)
    if fmt == "mt940":
        return read_mt940(source)
    if fmt == "bai2":
        return read_bai2(source)
    assert csv_mapping is not None
    return read_csv(source, csv_mapping)
