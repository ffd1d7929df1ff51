"""A staged body holds the cells Python's csv module reads, numbered as the layouts number
them, whether PostgreSQL reads the bytes or the records are copied one by one."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import text

from shared.settlements.cells import SettlementFileRefused, decoded_lines, numbered_records
from shared.settlements.staging import drop_staging, stage_csv_body

BIG_QUOTED = b"a,b,c\n" + b"".join(
    b'%d,"multi\nline, %d","say ""%d"""\n' % (n, n, n) for n in range(60_000)
)
FILES = {
    "plain": b"a,b,c\n1,2,3\n4,5,6\n",
    "crlf": b"a,b,c\r\n1,2,3\r\n4,5,6\r\n",
    "a BOM": b"\xef\xbb\xbfa,b,c\n1,2,3\n",
    "quoted commas, quotes and line breaks": b'a,b,c\n"1,5","say ""hi""","two\nlines"\n4,5,6\n',
    "a quote inside a field": b'a,b,c\n1,x"y,3\n4,"5",6\n',
    "short and long records": b"a,b,c\n1,2\n1,2,3,4\n",
    "blank lines between and after": b"a,b,c\n1,2,3\n\n4,5,6\n\n\n",
    "trailing blank lines": b"a,b,c\n1,2,3\n4,5,6\n\n\r\n",
    "a record of empty cells": b"a,b,c\n,,\n1,2,3\n",
    "blank lines before the header": b"\n\na,b,c\n1,2,3\n",
    "the end-of-data marker": b"a,b,c\n\\.\n1,2,3\n",
    "no final line break": b"a,b,c\n1,2,3",
    "a NUL": b"a,b,c\n1,\x002,3\n",
    "spaces around cells": b"a,b,c\n 1 , 2,3 \n",
    "a long field": b"a,b,c\n1," + b"x" * 100_000 + b",3\n",
    "quoted line breaks across mebibytes": BIG_QUOTED,
}

# The files whose bytes PostgreSQL reads as they are (the others go record by record).
AS_BYTES = {
    "plain", "crlf", "quoted commas, quotes and line breaks", "trailing blank lines",
    "a record of empty cells", "blank lines before the header", "no final line break",
    "spaces around cells", "quoted line breaks across mebibytes", "a BOM", "a long field",
}  # fmt: skip


def python_records(content: bytes) -> tuple[int, int, list[tuple[int, list[str]]]]:
    """The header's record number, the body's offset and the body's records as the layouts
    read them (blank ones skipped), each padded or cut to the header's width."""
    binary = io.BytesIO(content)
    records = numbered_records(decoded_lines(binary))
    header_row, header = next(records)
    body_start = binary.tell()
    width = len(header)
    body = [
        (number, [cell.replace("\x00", "\x01") for cell in (cells + [""] * width)[:width]])
        for number, cells in records
    ]
    return header_row, body_start, body


@pytest.mark.parametrize("name", FILES)
def test_a_staged_body_holds_the_records_python_reads(session, name):
    content = FILES[name]
    header_row, body_start, expected = python_records(content)
    staged = stage_csv_body(session, io.BytesIO(content), width=3, header_row=header_row,
                            body_start=body_start)  # fmt: skip
    rows = session.execute(text(
        f"SELECT ordinal + {header_row}, ARRAY[coalesce(c1, ''), coalesce(c2, ''), "
        f"coalesce(c3, '')] FROM {staged.table} ORDER BY ordinal"
    )).all()  # fmt: skip
    drop_staging(session)
    assert staged.as_bytes == (name in AS_BYTES)
    # A record of blank cells is staged (the rules skip it, still numbered) or not at all.
    read = [(number, list(cells)) for number, cells in rows if any(c.strip() for c in cells)]
    assert read == [(number, cells) for number, cells in expected if any(c.strip() for c in cells)]


def test_a_nul_is_staged_as_u0001_and_its_position_listed(session):
    content = FILES["a NUL"]
    header_row, body_start, _ = python_records(content)
    stage_csv_body(session, io.BytesIO(content), width=3, header_row=header_row,
                   body_start=body_start)  # fmt: skip
    assert session.execute(text("SELECT c2, nul_cells FROM settlement_staging")).one() == (
        "\x012",
        [2],
    )


def test_a_field_over_pythons_csv_limit_is_refused_as_the_layouts_refuse_it(session):
    content = b"a,b,c\n1," + b"x" * 200_000 + b",3\n"
    with pytest.raises(SettlementFileRefused, match="row 2: not readable as CSV"):
        stage_csv_body(session, io.BytesIO(content), width=3, header_row=1, body_start=6)
