"""Request and response models of the bank statement endpoints."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, Json, model_validator

from api.schemas import Strict
from shared.bank.csv_format import CsvMapping
from shared.bank.entries import EntryFilters
from shared.bank.imports import ImportedStatement, StatementImport
from shared.bank.matching import MAX_REASON_LENGTH
from shared.bank.payout_status import PayoutBankStatus
from shared.models import BankAccount
from shared.platform.pagination import DEFAULT_LIMIT, MAX_LIMIT
from shared.values.money import MAX_AMOUNT_MINOR

MULTIPART = "multipart/form-data"
# The multipart body of POST /billing/bank/statements, for the OpenAPI document.
UPLOAD_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "account_id": {"type": "string", "format": "uuid"},
        "csv_mapping": {
            "type": "string",
            "description": "A CsvMapping as JSON text (CSV files; saved on the account)",
        },
    },
}
# A signed amount filter, within the largest amount the service stores.
SignedAmount = Annotated[int, Field(ge=-MAX_AMOUNT_MINOR, le=MAX_AMOUNT_MINOR)]


class StatementUploadForm(Strict):
    """The form fields of a statement upload, beside its ``file``."""

    account_id: uuid.UUID | None = None
    csv_mapping: Json[CsvMapping] | None = None


class BankAccountOut(BaseModel):
    """A bank account: only its masked identifier is ever shown."""

    id: uuid.UUID
    name: str
    masked_identifier: str = Field(description="First and last four characters (NL91…4300)")
    currency: str
    country: str | None = Field(description="ISO 3166 alpha-2, from an IBAN; else null")
    providers: list[str] = Field(description="The providers paying out into the account")
    has_csv_mapping: bool
    version: int = Field(description="Bumped by each settings change; send it in If-Match")
    created_at: datetime

    @classmethod
    def of(cls, account: BankAccount) -> BankAccountOut:
        """The answer for ``account``."""
        return cls(
            id=account.id, name=account.name, masked_identifier=account.masked_identifier,
            currency=account.currency, country=account.country, providers=account.providers,
            has_csv_mapping=account.csv_mapping is not None, version=account.version,
            created_at=account.created_at,
        )  # fmt: skip


class BankAccountPage(BaseModel):
    """A page of bank accounts, newest first."""

    items: list[BankAccountOut]
    next_cursor: str | None


class StatementOut(BaseModel):
    """One statement of an uploaded file, as stored."""

    id: uuid.UUID
    account: BankAccountOut
    statement_id: str = Field(description="The bank's id (a CSV file: csv:<sha256 prefix>)")
    format: str
    currency: str
    period_start: date | None
    period_end: date | None
    opening_balance_minor: int | None
    closing_balance_minor: int | None
    entry_count: int
    entries_total_minor: int
    balanced: bool | None = Field(
        description="opening + entries == closing; null when a balance is missing"
    )
    entries_added: int = Field(description="Entries this upload added (others were known)")
    already_imported: bool = Field(description="Stored before: this upload added nothing of it")
    filename: str = Field(description="The file the statement was first imported from")
    imported_at: datetime

    @classmethod
    def of(cls, imported: ImportedStatement) -> StatementOut:
        """The answer for one imported statement."""
        record = imported.record
        return cls(
            id=record.id, account=BankAccountOut.of(imported.account),
            statement_id=record.statement_id, format=record.format, currency=record.currency,
            period_start=record.period_start, period_end=record.period_end,
            opening_balance_minor=record.opening_balance_minor,
            closing_balance_minor=record.closing_balance_minor, entry_count=record.entry_count,
            entries_total_minor=record.entries_total_minor, balanced=record.balanced,
            entries_added=imported.entries_added, already_imported=imported.already_imported,
            filename=record.filename, imported_at=record.imported_at,
        )  # fmt: skip


class StatementUploadOut(BaseModel):
    """What an uploaded file held: its statements, in file order."""

    sha256: str
    filename: str
    statements: list[StatementOut]

    @classmethod
    def of(cls, imported: StatementImport) -> StatementUploadOut:
        """The answer for one upload."""
        return cls(
            sha256=imported.sha256,
            filename=imported.filename,
            statements=[StatementOut.of(statement) for statement in imported.statements],
        )


class BankEntryOut(BaseModel):
    """One booked entry: ``amount_minor`` is signed (credit > 0, debit < 0)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    account_id: uuid.UUID
    bank_statement_id: uuid.UUID
    booking_date: date
    value_date: date | None
    amount_minor: int
    currency: str
    counterparty_name: str | None
    counterparty_account: str | None
    remittance_text: str | None
    bank_reference: str | None
    end_to_end_id: str | None
    transaction_codes: dict[str, str]
    reversal: bool


class BankEntryPage(BaseModel):
    """A page of entries, newest booking date first."""

    items: list[BankEntryOut]
    next_cursor: str | None


class ListQuery(Strict):
    """Paging of ``GET /billing/bank/accounts``."""

    cursor: str | None = Field(default=None, max_length=512)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class EntryListQuery(ListQuery):
    """Filters of ``GET /billing/bank/entries``: booking dates and signed amounts
    inclusive; ``unmatched``: true for entries no payout is linked to, false for the others."""

    account_id: uuid.UUID | None = None
    booked_from: date | None = None
    booked_to: date | None = None
    min_amount: SignedAmount | None = None
    max_amount: SignedAmount | None = None
    unmatched: bool | None = None

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        if self.booked_from and self.booked_to and self.booked_from > self.booked_to:
            raise ValueError("booked_from must not be after booked_to")
        return self

    def filters(self) -> EntryFilters:
        """The domain's filters."""
        return EntryFilters(
            account_id=self.account_id,
            booked_from=self.booked_from,
            booked_to=self.booked_to,
            min_amount=self.min_amount,
            max_amount=self.max_amount,
            unmatched=self.unmatched,
        )


class LinkedEntryOut(BaseModel):
    """The entry a payout is linked to: how it was found, and entry − payout."""

    entry_id: uuid.UUID
    method: Literal["reference", "amount", "manual"]
    amount_minor: int
    booking_date: date
    difference_minor: int = Field(description="The entry's amount minus the payout's")
    linked_at: datetime


class SuggestedEntryOut(BaseModel):
    """An entry that could be the payout's (not linked: there are several candidates)."""

    entry_id: uuid.UUID
    method: Literal["reference", "amount"]


class PayoutBankOut(BaseModel):
    """A payout and what the bank shows of it."""

    id: uuid.UUID
    provider: str
    payout_id: str
    currency: str
    amount_minor: int = Field(description="Signed: a negative payout is a debit")
    status: str
    arrival_date: date | None
    booked_at: datetime
    bank_status: Literal["linked", "suggested", "unlinked"]
    linked_entry: LinkedEntryOut | None
    suggestions: list[SuggestedEntryOut]

    @classmethod
    def of(cls, item: PayoutBankStatus) -> PayoutBankOut:
        """The answer for one payout."""
        payout, link = item.payout, item.link
        linked = None
        if link is not None:
            linked = LinkedEntryOut(
                entry_id=link.entry_id, method=link.method, amount_minor=link.amount_minor,
                booking_date=link.booking_date, linked_at=link.linked_at,
                difference_minor=link.amount_minor - payout.amount_minor,
            )  # fmt: skip
        return cls(
            id=payout.id, provider=payout.provider, payout_id=payout.payout_id,
            currency=payout.currency, amount_minor=payout.amount_minor, status=payout.status,
            arrival_date=payout.arrival_date, booked_at=payout.booked_at,
            bank_status=item.status, linked_entry=linked,
            suggestions=[SuggestedEntryOut(entry_id=e, method=m) for e, m in item.suggestions],
        )  # fmt: skip


class PayoutBankPage(BaseModel):
    """A page of payouts with their bank status, newest booked first."""

    items: list[PayoutBankOut]
    next_cursor: str | None


class PayoutListQuery(ListQuery):
    """Filter of ``GET /billing/bank/payouts``."""

    bank_status: Literal["linked", "suggested", "unlinked"] | None = None


Reason = Annotated[str, Field(min_length=1, max_length=MAX_REASON_LENGTH)]


class LinkIn(Strict):
    """Link a payout to an entry by hand, saying why."""

    entry_id: uuid.UUID
    reason: Reason


class UnlinkIn(Strict):
    """Undo a payout's link, saying why (that pair is not linked again automatically)."""

    reason: Reason
