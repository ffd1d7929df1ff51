"""Bank accounts as statements identify them: found again by a digest, never stored in clear.

An account is one (identifier, currency) of an organisation: a statement of an IBAN in
EUR and another in USD are two accounts. Only the masked identifier is readable;
``identifier_digest`` is the SHA-256 of the organisation and the compacted identifier.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.bank.csv_format import CsvMapping
from shared.bank.model import AccountIdentification
from shared.models import SETTLEMENT_PROVIDERS, BankAccount, discrepancy_provider
from shared.platform.errors import NotFound, PreconditionFailed, ValidationFailed
from shared.platform.pagination import Page, newest_first
from shared.values.business_days import check_calendar
from shared.values.changes import PartialChange
from shared.values.text import check_identifier

# An IBAN's shape (ISO 13616): its first two letters are the account's country.
IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")


def identifier_digest(org_id: uuid.UUID, account: AccountIdentification) -> str:
    """The account's lookup key: SHA-256 hex of the org and the identifier without spaces,
    upper case (``NL91 abna…`` and ``NL91ABNA…`` are one account)."""
    compact = account.value.replace(" ", "").upper()
    return hashlib.sha256(f"{org_id}:{compact}".encode()).hexdigest()


def find_or_create_account(
    *, session: Session, org_id: uuid.UUID, account: AccountIdentification, currency: str
) -> BankAccount:
    """The organisation's account for ``account`` in ``currency``, created on first sight
    (named after its masked identifier; the country from an IBAN, whatever the format
    called it). Safe under concurrent
    imports: the unique key decides, and the loser reads the winner's row."""
    digest = identifier_digest(org_id, account)
    compact = account.value.replace(" ", "").upper()
    session.execute(
        insert(BankAccount)
        .values(
            org_id=org_id,
            name=f"{account.masked} {currency}",
            masked_identifier=account.masked,
            identifier_digest=digest,
            currency=currency,
            country=compact[:2] if IBAN.fullmatch(compact) else None,
        )
        .on_conflict_do_nothing()
    )
    return session.scalars(
        select(BankAccount).where(
            BankAccount.org_id == org_id,
            BankAccount.identifier_digest == digest,
            BankAccount.currency == currency,
        )
    ).one()


def get_account(*, session: Session, org_id: uuid.UUID, account_id: uuid.UUID) -> BankAccount:
    """The organisation's bank account ``account_id``, or NotFound."""
    account = session.get(BankAccount, account_id)
    if account is None or account.org_id != org_id:
        raise NotFound(f"bank account {account_id} does not exist")
    return account


def check_statement_account(
    account: BankAccount, identification: AccountIdentification, currency: str, *, fmt: str
) -> None:
    """Refuse a statement of another account than the one the request named (a CSV names
    its account through the request, so only its currency is checked)."""
    if fmt != "csv" and identifier_digest(account.org_id, identification) != (
        account.identifier_digest
    ):
        raise ValidationFailed(
            f"the statement is for account {identification.masked}, "
            f"not {account.masked_identifier} (account_id)"
        )
    if currency != account.currency:
        raise ValidationFailed(
            f"the statement is in {currency}; account {account.masked_identifier} is in "
            f"{account.currency}"
        )


def saved_csv_mapping(account: BankAccount) -> CsvMapping | None:
    """The CSV mapping last used for ``account`` (None when it has none)."""
    if account.csv_mapping is None:
        return None
    return CsvMapping.model_validate({**account.csv_mapping, "account": account.masked_identifier})


def save_csv_mapping(account: BankAccount, mapping: CsvMapping) -> None:
    """Keep ``mapping`` on ``account`` for its next CSV statement (without the identifier,
    which is never stored in clear)."""
    stored: dict[str, Any] = mapping.model_dump(mode="json", exclude={"account"})
    account.csv_mapping = stored


def list_accounts(
    *, session: Session, org_id: uuid.UUID, cursor: str | None, limit: int
) -> Page[BankAccount]:
    """The organisation's bank accounts, newest first."""
    query = select(BankAccount).where(BankAccount.org_id == org_id)
    order = (BankAccount.created_at, BankAccount.id)
    return newest_first(query, order, session=session, cursor=cursor, limit=limit)


MAX_ACCOUNT_NAME_LENGTH = 200
AccountName = Annotated[
    str, Field(min_length=1, max_length=MAX_ACCOUNT_NAME_LENGTH), AfterValidator(check_identifier)
]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2")]
# A discrepancy of the account's statements or entries alone is about the provider the
# account lists when it lists exactly one (``discrepancy_provider``): a new list restates
# the unresolved ones' provider by the same rule.
_RESTATE_PROVIDERS = text(f"""
UPDATE reconciliation_discrepancies AS d SET provider = {discrepancy_provider(prefix="d.")}
WHERE d.org_id = :org_id AND d.status <> 'resolved'
  AND (d.bank_statement_id IN (SELECT id FROM bank_statements WHERE account_id = :account_id)
       OR d.bank_entry_id IN (SELECT id FROM bank_entries WHERE account_id = :account_id))
""")  # noqa: S608 - a constant fragment


class AccountSettingsChange(PartialChange):
    """A change of a bank account's settings: its label, the providers that pay out into it
    (amount matching considers their payouts; an account naming none takes any), and
    its country (the business-day calendar of PayoutNotReceived; null: weekends only)."""

    NULLABLE = frozenset({"country"})

    name: AccountName | None = None
    providers: list[Literal[SETTLEMENT_PROVIDERS]] | None = Field(  # type: ignore[valid-type]
        default=None, max_length=len(SETTLEMENT_PROVIDERS)
    )
    country: Country | None = None

    @field_validator("providers")
    @classmethod
    def _distinct(cls, providers: list[str] | None) -> list[str] | None:
        if providers is not None and len(set(providers)) != len(providers):
            raise ValueError("name each provider once")
        return sorted(providers) if providers is not None else None


def change_account_settings(
    *,
    session: Session,
    org_id: uuid.UUID,
    account_id: uuid.UUID,
    change: AccountSettingsChange,
    expected_version: int | None = None,
) -> BankAccount:
    """Apply ``change`` to the organisation's account (row-locked), at ``expected_version``
    if given (else PreconditionFailed), and bump its version; new providers restate the
    provider of the unresolved discrepancies of its statements and entries. A country
    without a business-day calendar is refused (ValidationFailed); nothing changes then."""
    changes = change.changes()
    if changes.get("country") is not None:
        check_calendar(changes["country"])
    account = session.get(BankAccount, account_id, with_for_update=True)
    if account is None or account.org_id != org_id:
        raise NotFound(f"bank account {account_id} does not exist")
    if expected_version is not None and expected_version != account.version:
        raise PreconditionFailed(
            f"bank account is at version {account.version}, not {expected_version}; "
            "fetch it again and retry",
            current_version=account.version,
        )
    for name, value in changes.items():
        setattr(account, name, value)
    account.version += 1
    session.flush()
    if "providers" in changes:
        session.execute(_RESTATE_PROVIDERS, {"org_id": org_id, "account_id": account_id})
    return account
