"""``recon payments``: import the billing side's payments from CSV or JSON lines files."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import click

from shared.access.organizations import get_organization
from shared.payments.imports import MAX_BATCH, ItemError, PaymentIn, upsert_payments
from shared.platform.db import unit_of_work
from shared.platform.errors import DomainError

FORMATS = ("csv", "jsonl")
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
INTEGER_COLUMNS = frozenset({"amount_minor", "amount_refunded_minor"})
# Plain ASCII digits only: int() would also take "1_000", " 12" and non-ASCII digits.
INTEGER = re.compile(r"-?[0-9]{1,30}")
FIELDS = tuple(PaymentIn.model_fields)
REQUIRED_FIELDS = tuple(name for name, info in PaymentIn.model_fields.items() if info.is_required())


@dataclass(frozen=True)
class Row:
    """One record of the file: where it starts, and either its item or why it is unreadable."""

    line: int
    item: Any = None
    error: str | None = None


# The running counts of one import (a Counter of these names), in the summary's order.
TOTALS = ("created", "updated", "unchanged", "rejected")


def summary(totals: Counter[str]) -> str:
    """``created 3, updated 0, unchanged 1, rejected 2``."""
    return ", ".join(f"{name} {totals[name]}" for name in TOTALS)


def infer_format(path: Path) -> str:
    """The file format from the extension, or a usage error asking for ``--format``."""
    found = EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise click.UsageError(
            f"cannot tell the format of {path.name!r} from its extension; pass --format"
        )
    return found


def read_jsonl(binary: IO[bytes]) -> Iterator[Row]:
    """One Row per non-blank line; a line that is not UTF-8 JSON is a Row with an error."""
    for line_number, raw in enumerate(binary, start=1):
        line = raw.removeprefix(b"\xef\xbb\xbf") if line_number == 1 else raw
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            item = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            yield Row(line_number, error="line is not valid UTF-8")
        except json.JSONDecodeError as error:
            # The parser's message and column, never the line itself.
            yield Row(line_number, error=f"not valid JSON: {error.msg} (column {error.colno})")
        except ValueError:
            yield Row(line_number, error="not valid JSON: a number has too many digits")
        else:
            yield Row(line_number, item=item)


def csv_cell(column: str, cell: str) -> Any:
    """A CSV cell as the JSON value it stands for (integers only in the amount columns)."""
    if column in INTEGER_COLUMNS and INTEGER.fullmatch(cell):
        return int(cell)
    return cell


def read_csv(binary: IO[bytes]) -> Iterator[Row]:
    """One Row per CSV record, numbered by the line it starts on (the header is line 1).

    Empty cells are left out, so optional fields are absent and required ones missing.
    The header is checked before any row: an unknown, repeated or missing column would
    reject every row, so it stops the import instead.
    """
    # surrogateescape keeps undecodable bytes so that only their row is refused.
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield from _csv_rows(csv.reader(text))
    finally:
        text.detach()  # the caller owns (and closes) the binary file


def _csv_rows(reader: Any) -> Iterator[Row]:
    header = next(reader, None)
    if header is None:
        return
    header = [name.strip() for name in header]
    unknown = [name for name in header if name not in FIELDS]
    repeated = sorted({name for name in header if header.count(name) > 1})
    missing = [name for name in REQUIRED_FIELDS if name not in header]
    for problem, names in (("unknown", unknown), ("repeated", repeated), ("missing", missing)):
        if names:
            raise click.ClickException(
                f"CSV header: {problem} column(s) {', '.join(map(repr, names))}; "
                f"columns are {', '.join(FIELDS)}"
            )
    previous_end = reader.line_num
    while True:
        try:
            cells = next(reader, None)
        except csv.Error as error:
            raise click.ClickException(
                f"line {previous_end + 1}: unreadable CSV: {error}"
            ) from None
        if cells is None:
            return
        start, previous_end = previous_end + 1, reader.line_num
        if not cells:
            continue
        if len(cells) != len(header):
            yield Row(start, error=f"has {len(cells)} cells, the header has {len(header)}")
        elif not all(_is_utf8(cell) for cell in cells):
            yield Row(start, error="line is not valid UTF-8")
        else:
            item = {
                column: csv_cell(column, cell)
                for column, cell in zip(header, cells, strict=True)
                if cell != ""
            }
            yield Row(start, item=item)


def _is_utf8(cell: str) -> bool:
    try:
        cell.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Progress:
    """A progress bar over bytes read, on stderr, only when stderr is a terminal."""

    def __init__(self, binary: IO[bytes], size: int) -> None:
        self.binary = binary
        self.position = 0
        self.bar = (
            click.progressbar(length=size, file=sys.stderr, label="importing")
            if sys.stderr.isatty()
            else None
        )

    def __enter__(self) -> Progress:
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc_info)

    def advance(self) -> None:
        if self.bar is not None:
            current = self.binary.tell()
            if current != self.position:
                self.bar.update(current - self.position)
                self.position = current

    def clear_line(self) -> None:
        # So that a line printed on stdout does not land on top of the bar.
        if self.bar is not None:
            click.echo("\r\033[K", nl=False, err=True)


class Importer:
    """Sends rows in batches of up to MAX_BATCH, one unit of work each, reporting in line order."""

    def __init__(self, org_id: uuid.UUID, progress: Progress) -> None:
        self.org_id = org_id
        self.progress = progress
        self.totals: Counter[str] = Counter()
        self.first_line: dict[str, int] = {}
        # Rows of the current batch, each with the reason it is refused before sending.
        self.batch: list[tuple[Row, str | None]] = []

    def add(self, row: Row) -> None:
        """Take a row into the current batch; a full batch is written at once."""
        self.batch.append((row, row.error or self._duplicate(row)))
        if len(self.batch) == MAX_BATCH:
            self.flush()

    def _duplicate(self, row: Row) -> str | None:
        external_id = row.item.get("external_id") if isinstance(row.item, dict) else None
        if not isinstance(external_id, str):
            return None
        # Across the whole file, not only within a batch: the verdict must not depend
        # on where the batch boundaries fall. Costs one dict entry per payment.
        first = self.first_line.setdefault(external_id, row.line)
        if first == row.line:
            return None
        return f"external_id: the same external_id is on line {first}"

    def flush(self) -> None:
        """Write the current batch in its own unit of work and print its rejected lines."""
        if not self.batch:
            return
        refused = [(row.line, reason) for row, reason in self.batch if reason is not None]
        sendable = [row for row, reason in self.batch if reason is None]
        self.batch = []
        if sendable:
            with unit_of_work() as session:
                result = upsert_payments(
                    session=session, org_id=self.org_id, items=[row.item for row in sendable]
                )
            self.totals.update(
                created=result.created, updated=result.updated, unchanged=result.unchanged
            )
            refused += [
                (sendable[rejected.index].line, describe(rejected.errors))
                for rejected in result.rejected
            ]
        self.totals["rejected"] += len(refused)
        if refused:
            self.progress.clear_line()
        for line, reason in sorted(refused):
            click.echo(f"line {line}: {reason}")


def describe(errors: list[ItemError]) -> str:
    """``field: message; …`` (the message alone for an error about the whole item)."""
    return "; ".join(
        f"{error.field}: {error.message}" if error.field else error.message for error in errors
    )


@click.group()
def payments() -> None:
    """Internal payments of the billing side, which reconciliation matches against."""


@payments.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option(
    "--org", "org_id", type=click.UUID, required=True, help="Organisation the payments belong to."
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(FORMATS),
    help="File format; by default from the extension (.csv, .jsonl or .ndjson).",
)
def import_payments(file: Path, org_id: uuid.UUID, file_format: str | None) -> None:
    """Create or update payments from FILE, matched by external_id (safe to re-run).

    CSV: a header row of field names (external_id, provider, provider_reference,
    amount_minor, currency, status, amount_refunded_minor, customer_ref, occurred_at),
    empty cells for absent optional fields, amounts as plain integers of minor units.
    JSON lines: one payment object per line.

    The file is streamed and written in batches of 1,000, each committed on its own;
    an interrupted import keeps the batches already committed, and running it again
    finishes the job. Each rejected row is printed with its line number and reason,
    then a summary line. Exit status: 0 when every row was imported, 1 when any row
    was rejected or the import stopped on an error.
    """
    file_format = file_format or infer_format(file)
    try:
        with unit_of_work() as session:
            get_organization(session=session, org_id=org_id)
    except DomainError as error:
        raise click.ClickException(error.detail) from None
    reader = read_csv if file_format == "csv" else read_jsonl
    stopped: str | None = None
    with file.open("rb") as binary, Progress(binary, file.stat().st_size) as progress:
        importer = Importer(org_id, progress)
        try:
            for row in reader(binary):
                importer.add(row)
                progress.advance()
            importer.flush()
        except DomainError as error:
            stopped = error.detail
        except click.ClickException as error:
            stopped = error.message
    # The summary counts what was committed, also when the import stopped half-way.
    click.echo(summary(importer.totals))
    if stopped is not None:
        raise click.ClickException(f"import stopped: {stopped}")
    if importer.totals["rejected"]:
        click.get_current_context().exit(1)
