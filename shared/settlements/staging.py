"""Staging a CSV report's body in PostgreSQL, so its rows are checked and converted in SQL.

The body (the records after the header) lands in a TEMP table of text cells, one column
per header position (``c1`` … ``cN``), each record numbered by its ``ordinal`` (1 for the
first record after the header). Two ways, the same cells:

- **as bytes**: the body goes to ``COPY … FROM STDIN (FORMAT csv)`` a mebibyte at a time,
  as it is, when PostgreSQL's CSV reading gives exactly the cells Python's ``csv`` module
  gives (:func:`numbered_records`, which every layout reads with). Each piece is checked
  first, with byte operations: quotes only around whole fields, no bare CR, no NUL, no
  ``\\.``, no line longer than Python's CSV field limit. PostgreSQL refuses the rest of the
  difference itself (records of another width, blank lines, mixed line endings, invalid
  UTF-8);
- **record by record**: any other file goes through :func:`numbered_records` and is
  copied a record at a time (short records padded, long ones cut, blank ones skipped), so
  it is refused exactly where and why the layouts refuse it. PostgreSQL cannot store NUL:
  a cell holding one is staged with U+0001 (refused by every rule that reads it) and its
  position listed in ``nul_cells``, for the message.

Either way nothing of the file is held in memory.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

import psycopg
from sqlalchemy.orm import Session

from shared.platform.bulk import copy_rows
from shared.settlements.cells import decoded_lines, numbered_records

# The lines of the file being imported, before they are stored: a TEMP table with the
# columns of settlement_lines each layout fills (the others are computed from them).
IMPORT_LINES = "settlement_import_lines"
# column → PostgreSQL type, in the order each line's values are listed.
IMPORT_LINE_COLUMNS = {
    "row_number": "int", "batch_id": "text", "line_type": "text", "provider_type": "text",
    "provider_reference": "text", "line_reference": "text", "merchant_reference": "text",
    "payment_intent_id": "text", "gross_minor": "bigint", "gross_currency": "text",
    "commission_minor": "bigint", "markup_minor": "bigint", "scheme_fee_minor": "bigint",
    "interchange_minor": "bigint", "processing_minor": "bigint", "other_fee_minor": "bigint",
    "net_minor": "bigint", "net_currency": "text", "exchange_rate": "numeric",
    "booked_at": "timestamptz", "description": "text",
}  # fmt: skip
# problem: a staged row's first failing check (shared/settlements/adyen.py), else NULL.
CREATE_IMPORT_LINES = (
    f"CREATE TEMPORARY TABLE {IMPORT_LINES} ("
    + ", ".join(f"{name} {kind}" for name, kind in IMPORT_LINE_COLUMNS.items())
    + ", problem int) ON COMMIT DROP"
)
STAGING_TABLE = "settlement_staging"
CHUNK_BYTES = 1 << 20
# A quoted field as both readers read it: opened at a field's start, quotes inside doubled,
# closed at a field's end.
_QUOTED_FIELD = re.compile(rb'(?<![^,\n])"[^"]*+(?:""[^"]*+)*+"(?![^,\r\n])')


class _NotAsBytes(Exception):
    """A piece of the body that PostgreSQL's CSV reading might read otherwise."""


@dataclass(frozen=True)
class StagedBody:
    """A staged body: its table, how many cell columns it has, the header's row number (a
    record's row number in the file is its ordinal + ``header_row``), and whether its
    bytes were copied as they are (else record by record)."""

    table: str
    width: int
    header_row: int
    as_bytes: bool = True

    def cell(self, position: int | None) -> str:
        """The SQL of the cell at header ``position`` (0-based) of staged row ``s``, or a
        text NULL when the header has no such column."""
        return "NULL::text" if position is None else f"s.c{position + 1}"


def stage_csv_body(
    session: Session,
    binary: IO[bytes],
    *,
    width: int,
    header_row: int,
    body_start: int,
    on_progress: Callable[[int], None] | None = None,
) -> StagedBody:
    """Stage the records of ``binary`` from ``body_start`` (after a header of ``width``
    columns, itself record ``header_row``) in a new TEMP table; the caller drops it
    (:func:`drop_staging`). Refuses (``SettlementFileRefused``) what the layouts refuse."""
    staged = StagedBody(STAGING_TABLE, width, header_row)
    raw = session.connection().connection.driver_connection
    # A savepoint of the driver's own: the COPY runs on the driver's connection, and a
    # piece it refuses leaves the transaction as it was.
    raw.execute("SAVEPOINT settlement_staging")
    try:
        _create(raw, staged)
        _copy_bytes(raw, staged, binary, body_start, on_progress)
    except (_NotAsBytes, psycopg.errors.DataError):
        raw.execute("ROLLBACK TO SAVEPOINT settlement_staging")
        staged = StagedBody(STAGING_TABLE, width, header_row, as_bytes=False)
        _create(raw, staged)
        _copy_records(session, staged, binary, header_row, on_progress)
    raw.execute("RELEASE SAVEPOINT settlement_staging")
    return staged


def drop_staging(session: Session) -> None:
    """Drop the staging table (if any) of this transaction."""
    raw = session.connection().connection.driver_connection
    raw.execute(f"DROP TABLE IF EXISTS {STAGING_TABLE}")


def _create(raw: psycopg.Connection, staged: StagedBody) -> None:
    cells = ", ".join(f"c{position} text" for position in range(1, staged.width + 1))
    raw.execute(f"DROP TABLE IF EXISTS {staged.table}")  # a refused import's, if any
    raw.execute(
        f"CREATE TEMPORARY TABLE {staged.table} (ordinal bigint GENERATED BY DEFAULT AS "
        f"IDENTITY, nul_cells int[], {cells}) ON COMMIT DROP"
    )


def _cell_columns(staged: StagedBody) -> str:
    return ", ".join(f"c{position}" for position in range(1, staged.width + 1))


def _copy_bytes(
    raw: psycopg.Connection,
    staged: StagedBody,
    binary: IO[bytes],
    body_start: int,
    on_progress: Callable[[int], None] | None,
) -> None:
    if raw.info.encoding != "utf-8":
        raise _NotAsBytes
    binary.seek(body_start)
    statement = f"COPY {staged.table} ({_cell_columns(staged)}) FROM STDIN (FORMAT csv)"
    carry = b""
    with raw.cursor().copy(statement) as copy:
        while chunk := binary.read(CHUNK_BYTES):
            piece, carry = _whole_records(carry + chunk)
            # Blank lines after the records wait: at the very end of the file both readers
            # skip them alike; before more records PostgreSQL refuses them (then the
            # records are copied one by one, numbered as the layouts number them).
            records = piece.rstrip(b"\r\n")
            if records:
                ending = b"\r\n" if piece[len(records) :].startswith(b"\r\n") else b"\n"
                copy.write(_checked(records + ending))
                piece = piece[len(records) + len(ending) :]
            carry = piece + carry
            if len(carry) > CHUNK_BYTES:  # a record over a mebibyte, or blank lines
                raise _NotAsBytes
            if on_progress is not None:
                on_progress(binary.tell())
        if carry.strip(b"\r\n"):
            copy.write(_checked(carry.rstrip(b"\r\n")))


def _whole_records(buffer: bytes) -> tuple[bytes, bytes]:
    """``buffer`` cut after its last line break outside quotes: (whole records, the rest)."""
    cut = buffer.rfind(b"\n")
    while cut >= 0 and buffer.count(b'"', 0, cut) % 2:
        cut = buffer.rfind(b"\n", 0, cut)
    if cut < 0:
        return b"", buffer
    return buffer[: cut + 1], buffer[cut + 1 :]


def _checked(piece: bytes) -> bytes:
    """``piece`` unchanged if PostgreSQL reads its cells as Python's ``csv`` module does."""
    if b"\x00" in piece or b"\\." in piece or piece.count(b"\r") != piece.count(b"\r\n"):
        raise _NotAsBytes
    longest = max(map(len, piece.split(b"\n")))
    if b'"' in piece:
        if b'"' in _QUOTED_FIELD.sub(b"", piece):
            raise _NotAsBytes
        longest = max(longest, *(len(field) for field in _QUOTED_FIELD.findall(piece)))
    if longest > csv.field_size_limit():
        raise _NotAsBytes
    return piece


def _copy_records(
    session: Session,
    staged: StagedBody,
    binary: IO[bytes],
    header_row: int,
    on_progress: Callable[[int], None] | None,
) -> None:
    binary.seek(0)
    width = staged.width
    cell_columns = [f"c{position}" for position in range(1, width + 1)]
    with copy_rows(session, staged.table, ["ordinal", "nul_cells", *cell_columns]) as copy:
        for number, cells in numbered_records(decoded_lines(binary)):
            if number <= header_row:
                continue
            cells = (cells + [""] * width)[:width]
            nul_cells = [position for position, cell in enumerate(cells, 1) if "\x00" in cell]
            if nul_cells:
                cells = [cell.replace("\x00", "\x01") for cell in cells]
            copy.write_row((number - header_row, nul_cells or None, *cells))
            if on_progress is not None and number % 5_000 == 0:
                on_progress(binary.tell())
