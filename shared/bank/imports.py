"""Importing a bank statement file: streamed, all-or-nothing, idempotent.

The caller's unit of work holds the whole import: a refusal anywhere rolls every
statement of the file back. Entries are staged in bulk (BATCH_ROWS per statement) into
a temporary table while the statement streams; when the statement closes, its row is
inserted (nothing when the same statement of the same account is already stored) and
its entries move to ``bank_entries`` in one statement, each numbered among the
identical entries of its statement, so the same entries imported again add nothing.
The same file again answers its earlier import without reading it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
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
from shared.platform.bulk import array_parameters, column_arrays
from shared.platform.errors import ValidationFailed
from shared.platform.logs import get_logger
from shared.values.text import MAX_TEXT_LENGTH, check_identifier

BATCH_ROWS = 5_000
CHUNK_BYTES = 1 << 20
DEFAULT_FILENAME = "statement"

log = get_logger(__name__)

# column → PostgreSQL array type, in the order each staged row lists its values.
ENTRY_COLUMNS = {
    "booking_date": "date", "value_date": "date", "amount_minor": "bigint",
    "currency": "text", "counterparty_name": "text", "counterparty_account": "text",
    "remittance_text": "text", "bank_reference": "text", "end_to_end_id": "text",
    "transaction_codes": "jsonb", "reversal": "boolean", "entry_digest": "bytea",
}  # fmt: skip
_LISTED = ", ".join(ENTRY_COLUMNS)
# Dropped when the import's transaction ends, whatever its outcome.
CREATE_STAGING = text(
    "CREATE TEMPORARY TABLE IF NOT EXISTS bank_entry_staging (position bigint, "
    + ", ".join(f"{name} {kind}" for name, kind in ENTRY_COLUMNS.items())
    + ") ON COMMIT DROP"
)
STAGE = text(
    f"INSERT INTO bank_entry_staging (position, {_LISTED}) "  # noqa: S608 - constants
    f"SELECT * FROM unnest(CAST(:position AS bigint[]), {array_parameters(ENTRY_COLUMNS)})"
)
# Identical entries of one statement are told apart by their order in it (occurrence).
MOVE_STAGED = text(
    f"INSERT INTO bank_entries (org_id, account_id, bank_statement_id, {_LISTED}, occurrence) "  # noqa: S608
    f"SELECT :org_id, :account_id, :statement_id, {_LISTED}, "
    "row_number() OVER (PARTITION BY entry_digest ORDER BY position) "
    "FROM bank_entry_staging ORDER BY position "
    "ON CONFLICT (account_id, entry_digest, occurrence) DO NOTHING"
)
CLEAR_STAGING = text("DELETE FROM bank_entry_staging")


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


def _codes(entry: BankEntry) -> dict[str, str | None]:
    return {name: getattr(entry.codes, name) for name in _CODE_NAMES}


def entry_digest(entry: BankEntry, codes: dict[str, str | None] | None = None) -> bytes:
    """SHA-256 of every fact of ``entry``: equal for the same entry in any file
    (``codes``: every field of its codes, when the caller has them already)."""
    facts = [
        entry.booking_date.isoformat(),
        entry.value_date.isoformat() if entry.value_date else None,
        entry.amount_minor, entry.currency, entry.counterparty_name,
        entry.counterparty_account, entry.remittance_text, entry.bank_reference,
        entry.end_to_end_id, codes if codes is not None else _codes(entry), entry.reversal,
    ]  # fmt: skip
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).digest()


def _entry_values(entry: BankEntry) -> tuple[Any, ...]:
    every = _codes(entry)
    codes = {name: code for name, code in every.items() if code is not None}
    return (
        entry.booking_date, entry.value_date, entry.amount_minor, entry.currency,
        entry.counterparty_name, entry.counterparty_account, entry.remittance_text,
        entry.bank_reference, entry.end_to_end_id, json.dumps(codes), entry.reversal,
        entry_digest(entry, every),
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
        self.staged: list[tuple[Any, ...]] = []
        self.position = 0
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
        account: BankAccount | None = None
        for item in stream:
            if isinstance(item, StatementHeader):
                account = self._account(item)
            elif isinstance(item, BankEntry):
                self.staged.append((self.position, *_entry_values(item)))
                self.position += 1
                if len(self.staged) >= BATCH_ROWS:
                    self._stage()
                    if on_progress is not None:
                        on_progress(binary.tell())
            else:
                assert account is not None  # a header always opens a statement
                imported.append(self._close(item, account))
        if on_progress is not None:
            on_progress(binary.tell())
        return imported

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

    def _stage(self) -> None:
        if self.staged:
            names = ("position", *ENTRY_COLUMNS)
            self.session.execute(STAGE, column_arrays(self.staged, names))
            self.staged = []

    def _close(self, statement: BankStatement, account: BankAccount) -> ImportedStatement:
        """Store the statement unless known, and move its staged entries."""
        self._stage()
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
        self.position = 0
        record = self.session.scalars(
            select(BankStatementRecord).where(
                BankStatementRecord.account_id == account.id,
                BankStatementRecord.statement_id == statement_id,
                BankStatementRecord.period_start.is_not_distinct_from(statement.period_start),
                BankStatementRecord.period_end.is_not_distinct_from(statement.period_end),
            )
        ).one()
        return ImportedStatement(record, account, added, already_imported=stored is None)
