"""Importing a bank statement file: streamed, all-or-nothing, idempotent.

The caller's unit of work holds the whole import: a refusal anywhere rolls every
statement of the file back. Entries stream by ``COPY`` into a temporary table while the
statement is read, so PostgreSQL stores them as the parser goes; when the statement
closes, its row is inserted (nothing when the same statement of the same account is
already stored) and its entries move to ``bank_entries`` in one statement, each numbered
among the identical entries of its statement, so the same entries imported again add
nothing. The same file again answers its earlier import without reading it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import lru_cache
from typing import IO, Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.bank.accounts import (
    check_statement_account,
    find_or_create_account,
    get_account,
    save_csv_mapping,
    saved_csv_mapping,
)
from shared.bank.csv_format import CsvMapping
from shared.bank.formats import read_statement_file
from shared.bank.matching import queue_payout_matching
from shared.bank.model import (
    BankEntry,
    BankStatement,
    StatementHeader,
    StatementItem,
    TransactionCodes,
)
from shared.bank.payout_rules import statement_balance_mismatch
from shared.discrepancies.opening import open_discrepancies
from shared.matching.rules import Finding
from shared.models import BankAccount, BankStatementRecord
from shared.platform.bulk import copy_rows
from shared.platform.errors import ValidationFailed
from shared.platform.logs import get_logger
from shared.values.text import MAX_TEXT_LENGTH, check_identifier

# How often (in entries) the import reports how far it has read.
PROGRESS_ROWS = 5_000
CHUNK_BYTES = 1 << 20
DEFAULT_FILENAME = "statement"

log = get_logger(__name__)

# column → type, in the order each staged row lists its values.
ENTRY_COLUMNS = {
    "booking_date": "date", "value_date": "date", "amount_minor": "bigint",
    "currency": "text", "counterparty_name": "text", "counterparty_account": "text",
    "remittance_text": "text", "bank_reference": "text", "end_to_end_id": "text",
    "transaction_codes": "jsonb", "reversal": "boolean", "entry_digest": "bytea",
}  # fmt: skip
_LISTED = ", ".join(ENTRY_COLUMNS)
STAGING = "bank_entry_staging"
STAGED_COLUMNS = ("position", *ENTRY_COLUMNS)
# Dropped when the import's transaction ends, whatever its outcome.
CREATE_STAGING = text(
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING} (position bigint, "
    + ", ".join(f"{name} {kind}" for name, kind in ENTRY_COLUMNS.items())
    + ") ON COMMIT DROP"
)
# Identical entries of one statement are told apart by their order in it (occurrence).
MOVE_STAGED = text(
    f"INSERT INTO bank_entries (org_id, account_id, bank_statement_id, {_LISTED}, occurrence) "  # noqa: S608
    f"SELECT :org_id, :account_id, :statement_id, {_LISTED}, "
    "row_number() OVER (PARTITION BY entry_digest ORDER BY position) "
    f"FROM {STAGING} ORDER BY position "
    "ON CONFLICT (account_id, entry_digest, occurrence) DO NOTHING"
)
CLEAR_STAGING = text(f"TRUNCATE {STAGING}")


@dataclass(frozen=True)
class ImportedStatement:
    """A statement of the file as stored, and what this import added of it.

    ``already_imported``: the same statement of the same account was stored before (by
    this file's earlier import or another file); then nothing of it was added.
    """

    record: BankStatementRecord
    account: BankAccount
    entries_added: int
    already_imported: bool


@dataclass(frozen=True)
class StatementImport:
    """The outcome of one file: its statements in file order; ``created`` when this call
    stored any of them (else the file, or every statement of it, was known)."""

    sha256: str
    filename: str
    statements: list[ImportedStatement]

    @property
    def created(self) -> bool:
        """True when this import stored a statement."""
        return any(not statement.already_imported for statement in self.statements)


def import_statement_file(
    *,
    session: Session,
    org_id: uuid.UUID,
    binary: IO[bytes],
    filename: str,
    account_id: uuid.UUID | None = None,
    csv_mapping: CsvMapping | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> StatementImport:
    """Import the seekable ``binary`` for ``org_id``, or answer its earlier import.

    Each statement's account is ``account_id``'s (the statement must identify it), else
    found or created from the statement's identification. A CSV is read with
    ``csv_mapping``, else the mapping saved on ``account_id``'s account; the mapping sent
    is saved on the account. ``on_progress`` gets the bytes read so far. Raises the
    readers' refusals (422), NotFound for another organisation's account, never commits.
    """
    filename = _storable_filename(filename)
    fixed = None
    if account_id is not None:
        fixed = get_account(session=session, org_id=org_id, account_id=account_id)
    mapping = csv_mapping or (saved_csv_mapping(fixed) if fixed else None)
    sha256 = _digest(binary)
    earlier = _earlier(session, org_id, sha256)
    if earlier:
        return StatementImport(sha256, filename, earlier)
    importer = _Importer(session, org_id, fixed, sha256, filename)
    statements = importer.run(read_statement_file(binary, csv_mapping=mapping), binary, on_progress)
    if csv_mapping is not None and statements[0].record.format == "csv":
        save_csv_mapping(statements[0].account, csv_mapping)
    session.flush()
    _flag_unbalanced(session, org_id, sha256, statements)
    if any(not statement.already_imported for statement in statements):
        queue_payout_matching(session, org_id)
    log.info("bank.statements_imported", org_id=str(org_id), statements=len(statements),
             entries_added=sum(item.entries_added for item in statements))  # fmt: skip
    return StatementImport(sha256, filename, statements)


def _flag_unbalanced(
    session: Session, org_id: uuid.UUID, sha256: str, statements: list[ImportedStatement]
) -> None:
    """Open a StatementBalanceMismatch for each statement this import stored whose
    balances do not add up, in the import's transaction."""
    findings = [
        finding
        for statement in statements
        if not statement.already_imported and statement.record.balanced is False
        and (finding := _balance_finding(statement.record)) is not None
    ]  # fmt: skip
    open_discrepancies(
        session=session, org_id=org_id, findings=findings, now=datetime.now(UTC),
        evidence={"source": "bank statement import", "file_sha256": sha256},
    )  # fmt: skip


def _balance_finding(record: BankStatementRecord) -> Finding | None:
    assert record.opening_balance_minor is not None  # balanced is false only with both
    assert record.closing_balance_minor is not None
    return statement_balance_mismatch(
        statement_id=record.id, bank_statement_id=record.statement_id, currency=record.currency,
        opening_minor=record.opening_balance_minor, closing_minor=record.closing_balance_minor,
        entries_total_minor=record.entries_total_minor, entry_count=record.entry_count,
    )  # fmt: skip


def _storable_filename(filename: str) -> str:
    name = filename.strip()[:MAX_TEXT_LENGTH] or DEFAULT_FILENAME
    try:
        return check_identifier(name, field="filename")
    except ValueError as error:
        raise ValidationFailed(str(error)) from None


def _digest(binary: IO[bytes]) -> str:
    """The SHA-256 of ``binary`` from where it stands; it is rewound after."""
    start = binary.tell()
    digest = hashlib.sha256()
    while chunk := binary.read(CHUNK_BYTES):
        digest.update(chunk)
    binary.seek(start)
    return digest.hexdigest()


def _earlier(session: Session, org_id: uuid.UUID, sha256: str) -> list[ImportedStatement]:
    rows = session.execute(
        select(BankStatementRecord, BankAccount)
        .join(BankAccount, BankAccount.id == BankStatementRecord.account_id)
        .where(BankStatementRecord.org_id == org_id, BankStatementRecord.file_sha256 == sha256)
        .order_by(BankStatementRecord.id)
    ).all()
    return [ImportedStatement(record, account, 0, True) for record, account in rows]


# TransactionCodes' fields, read by name: dataclasses.asdict (a deep copy) was a quarter
# of an import's Python time (bench/bank.py).
_CODE_NAMES = tuple(field.name for field in fields(TransactionCodes))
# json.dumps(facts, sort_keys=True), without making an encoder per entry.
_FACTS = json.JSONEncoder(sort_keys=True)


@lru_cache(maxsize=256)
def _code_facts(codes: TransactionCodes) -> tuple[dict[str, str | None], str]:
    """Every field of ``codes`` (for the digest), and the set ones as JSON (stored); a file
    repeats few combinations, so each is worked out once."""
    every = {name: getattr(codes, name) for name in _CODE_NAMES}
    return every, json.dumps({name: code for name, code in every.items() if code is not None})


def entry_digest(entry: BankEntry) -> bytes:
    """SHA-256 of every fact of ``entry``: equal for the same entry in any file."""
    facts = [
        entry.booking_date.isoformat(),
        entry.value_date.isoformat() if entry.value_date else None,
        entry.amount_minor, entry.currency, entry.counterparty_name,
        entry.counterparty_account, entry.remittance_text, entry.bank_reference,
        entry.end_to_end_id, _code_facts(entry.codes)[0], entry.reversal,
    ]  # fmt: skip
    return hashlib.sha256(_FACTS.encode(facts).encode()).digest()


def _staged_row(position: int, entry: BankEntry) -> tuple[Any, ...]:
    return (
        position, entry.booking_date, entry.value_date, entry.amount_minor, entry.currency,
        entry.counterparty_name, entry.counterparty_account, entry.remittance_text,
        entry.bank_reference, entry.end_to_end_id, _code_facts(entry.codes)[1], entry.reversal,
        entry_digest(entry),
    )  # fmt: skip


class _Importer:
    """Stages each statement's entries, then stores the statement and moves them."""

    def __init__(
        self,
        session: Session,
        org_id: uuid.UUID,
        fixed: BankAccount | None,
        sha256: str,
        filename: str,
    ) -> None:
        self.session = session
        self.org_id = org_id
        self.fixed = fixed
        self.sha256 = sha256
        self.filename = filename
        self.accounts: dict[tuple[str, str], BankAccount] = {}

    def run(
        self,
        stream: Iterable[StatementItem],
        binary: IO[bytes],
        on_progress: Callable[[int], None] | None,
    ) -> list[ImportedStatement]:
        """Every statement of ``stream``, stored (each reader refuses a file without one)."""
        self.session.execute(CREATE_STAGING)
        imported: list[ImportedStatement] = []
        items = iter(stream)
        for header in items:  # a statement's header, its entries, then the statement
            assert isinstance(header, StatementHeader)
            account = self._account(header)
            with copy_rows(self.session, STAGING, STAGED_COLUMNS) as copy:
                statement = self._stage(items, copy.write_row, binary, on_progress)
            imported.append(self._close(statement, account))
        if on_progress is not None:
            on_progress(binary.tell())
        return imported

    @staticmethod
    def _stage(
        items: Iterator[StatementItem],
        write_row: Callable[[tuple[Any, ...]], None],
        binary: IO[bytes],
        on_progress: Callable[[int], None] | None,
    ) -> BankStatement:
        """Write the statement's entries to the staging table, in file order, until the
        closed statement comes."""
        for position, item in enumerate(items):
            if not isinstance(item, BankEntry):
                assert isinstance(item, BankStatement)
                return item
            write_row(_staged_row(position, item))
            if on_progress is not None and position % PROGRESS_ROWS == PROGRESS_ROWS - 1:
                on_progress(binary.tell())
        raise AssertionError("a reader closes every statement it opens")

    def _account(self, header: StatementHeader) -> BankAccount:
        if self.fixed is not None:
            check_statement_account(self.fixed, header.account, header.currency, fmt=header.format)
            return self.fixed
        key = (header.account.value, header.currency)
        if key not in self.accounts:
            self.accounts[key] = find_or_create_account(
                session=self.session,
                org_id=self.org_id,
                account=header.account,
                currency=header.currency,
            )
        return self.accounts[key]

    def _close(self, statement: BankStatement, account: BankAccount) -> ImportedStatement:
        """Store the statement unless known, and move its staged entries."""
        header = statement.header
        # A CSV has no statement id: each file is a statement of its own.
        statement_id = f"csv:{self.sha256[:16]}" if header.format == "csv" else header.statement_id
        values = {
            "org_id": self.org_id, "account_id": account.id, "statement_id": statement_id,
            "format": header.format, "currency": header.currency,
            "period_start": statement.period_start, "period_end": statement.period_end,
            "opening_balance_minor": header.opening_balance_minor,
            "closing_balance_minor": header.closing_balance_minor,
            "entry_count": statement.entry_count,
            "entries_total_minor": statement.entries_total_minor,
            "balanced": statement.balanced, "file_sha256": self.sha256, "filename": self.filename,
        }  # fmt: skip
        stored = self.session.scalar(
            insert(BankStatementRecord)
            .values(**values)
            .on_conflict_do_nothing()
            .returning(BankStatementRecord.id)
        )
        added = 0
        if stored is not None:
            added = self.session.execute(
                MOVE_STAGED,
                {"org_id": self.org_id, "account_id": account.id, "statement_id": stored},
            ).rowcount
        self.session.execute(CLEAR_STAGING)
        record = self.session.scalars(
            select(BankStatementRecord).where(
                BankStatementRecord.account_id == account.id,
                BankStatementRecord.statement_id == statement_id,
                BankStatementRecord.period_start.is_not_distinct_from(statement.period_start),
                BankStatementRecord.period_end.is_not_distinct_from(statement.period_end),
            )
        ).one()
        return ImportedStatement(record, account, added, already_imported=stored is None)
