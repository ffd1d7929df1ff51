"""The normalised bank statement every format reader produces (pure values, no database).

A reader yields a *stream* per file, in document order: for each statement its
:class:`StatementHeader`, then its :class:`BankEntry` items, then the closed
:class:`BankStatement` (the header with the entries' count and sum). Nothing holds a
whole file's entries, so a statement of a million entries reads in flat memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date

from shared.platform.errors import ValidationFailed

# How many characters of an account identifier stay readable at each end when masked.
MASK_KEEP = 4


class UnreadableStatement(
    ValidationFailed,
    title="Unreadable bank statement",
    type_slug="unreadable-bank-statement",
):
    """A statement file that cannot be read, or breaks its format; names the place.

    ``detail`` starts with the place (line, element path or record number); the problem
    document also carries it as ``format`` and ``location``.
    """

    def __init__(self, reason: str, *, format: str, location: str) -> None:
        super().__init__(f"{format} {location}: {reason}", format=format, location=location)


class ForbiddenXml(UnreadableStatement, title="Forbidden XML construct", type_slug="forbidden-xml"):
    """XML with a DTD, entity declarations or external references: never expanded."""


@dataclass(frozen=True)
class AccountIdentification:
    """The statement's account: an IBAN or another number, as the bank wrote it."""

    value: str
    scheme: str = "other"  # "iban" or "other"

    @property
    def masked(self) -> str:
        """For display and storage: the first and last four characters only (``DE89…3000``)."""
        compact = self.value.replace(" ", "")
        if len(compact) <= 2 * MASK_KEEP:
            return "…" + compact[-MASK_KEEP:]
        return f"{compact[:MASK_KEEP]}…{compact[-MASK_KEEP:]}"


@dataclass(frozen=True)
class TransactionCodes:
    """Every code a format gives an entry; each None when the format has none."""

    domain: str | None = None  # ISO 20022 BTC domain (PMNT)
    family: str | None = None  # BTC family (RCDT)
    subfamily: str | None = None  # BTC sub-family (ESCT)
    proprietary: str | None = None  # the bank's own code (CAMT Prtry, MT940 :86: GVC)
    swift: str | None = None  # MT940 :61: transaction type (NTRF, NCHK)
    bai: str | None = None  # BAI2 type code (142, 409)


@dataclass(frozen=True)
class BankEntry:
    """One booked entry: ``amount_minor`` is signed (credit > 0, debit < 0) minor units."""

    booking_date: date
    value_date: date | None
    amount_minor: int
    currency: str
    counterparty_name: str | None = None
    counterparty_account: str | None = None
    remittance_text: str | None = None
    bank_reference: str | None = None
    end_to_end_id: str | None = None
    codes: TransactionCodes = field(default_factory=TransactionCodes)
    reversal: bool = False


@dataclass(frozen=True)
class StatementHeader:
    """What a statement declares before its entries.

    ``period_start``/``period_end`` are the declared period (None when the format has
    none); balances are None when the statement gives none.
    """

    format: str
    statement_id: str
    account: AccountIdentification
    currency: str
    opening_balance_minor: int | None
    closing_balance_minor: int | None
    period_start: date | None = None
    period_end: date | None = None


@dataclass(frozen=True)
class BankStatement:
    """A statement read to its end: its header, how many entries and what they sum to.

    ``period_start``/``period_end`` are the declared period, else the entries' first and
    last booking dates (None for a statement with neither).
    """

    header: StatementHeader
    entry_count: int
    entries_total_minor: int
    period_start: date | None
    period_end: date | None
    skipped_unbooked: int = 0

    @property
    def balanced(self) -> bool | None:
        """Opening balance + entries == closing balance; None when a balance is missing."""
        opening = self.header.opening_balance_minor
        closing = self.header.closing_balance_minor
        if opening is None or closing is None:
            return None
        return opening + self.entries_total_minor == closing


StatementItem = StatementHeader | BankEntry | BankStatement


class StatementAssembler:
    """Checks each entry against its statement and closes the statement: the one place
    for the rules every format shares (entry currency, the sum, the period)."""

    def __init__(self, header: StatementHeader) -> None:
        self.header = header
        self.count = 0
        self.total = 0
        self.skipped_unbooked = 0
        self.first: date | None = None
        self.last: date | None = None

    def add(self, entry: BankEntry, *, location: str) -> BankEntry:
        """``entry`` once checked to be in the statement's currency, counted and summed."""
        if entry.currency != self.header.currency:
            raise UnreadableStatement(
                f"entry in {entry.currency} on a {self.header.currency} statement",
                format=self.header.format,
                location=location,
            )
        self.count += 1
        self.total += entry.amount_minor
        day = entry.booking_date
        self.first = day if self.first is None else min(self.first, day)
        self.last = day if self.last is None else max(self.last, day)
        return entry

    def skip_unbooked(self) -> None:
        """Count an entry that is not booked (pending, information): not part of the sum."""
        self.skipped_unbooked += 1

    def close(self) -> BankStatement:
        """The statement with its totals and resolved period."""
        header = self.header
        return BankStatement(
            header=header,
            entry_count=self.count,
            entries_total_minor=self.total,
            period_start=header.period_start or self.first,
            period_end=header.period_end or self.last,
            skipped_unbooked=self.skipped_unbooked,
        )


def assemble(
    header: StatementHeader, entries: Iterable[tuple[BankEntry, str]]
) -> Iterator[StatementItem]:
    """The stream of one statement whose entries (with their locations) are already read."""
    assembler = StatementAssembler(header)
    yield header
    for entry, location in entries:
        yield assembler.add(entry, location=location)
    yield assembler.close()


def decode_text(raw: bytes) -> str:
    """A text format's bytes: UTF-8 (with or without BOM), else Latin-1, the two encodings
    banks export in (Latin-1 decodes any byte, so this never fails)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_statements(stream: Iterable[StatementItem]) -> list[tuple[BankStatement, list[BankEntry]]]:
    """A whole stream in memory, one (statement, entries) pair per statement: for small
    files and tests; imports consume the stream instead."""
    statements: list[tuple[BankStatement, list[BankEntry]]] = []
    entries: list[BankEntry] = []
    for item in stream:
        if isinstance(item, StatementHeader):
            entries = []
        elif isinstance(item, BankEntry):
            entries.append(item)
        else:
            statements.append((item, entries))
    return statements
