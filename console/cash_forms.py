"""What the cash pages' forms and queries may hold (settlements, payouts, bank), on the
console's ``Form`` (an empty field is "not given")."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import Field, Json, model_validator

from console.forms import Form, Listed
from shared.bank.csv_format import CsvMapping
from shared.bank.entries import EntryFilters
from shared.bank.matching import MAX_REASON_LENGTH
from shared.models import PAYOUT_STATUSES
from shared.platform.errors import ValidationFailed
from shared.settlements.listing import PayoutFilters
from shared.values.money import minor_units, normalise_currency
from shared.values.timestamps import start_of_day

Cursor = Annotated[str, Field(max_length=512)]
Currency = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")]
Amount = Annotated[str, Field(max_length=32)]
Reason = Annotated[str, Field(min_length=1, max_length=MAX_REASON_LENGTH)]


class Booked(Listed):
    """A range of booking days, both inclusive."""

    booked_from: date | None = None
    booked_to: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.booked_from and self.booked_to and self.booked_from > self.booked_to:
            raise ValueError("the first day must not be after the last")
        return self


class FilesQuery(Listed):
    """The settlements page's cursor."""


class SettlementUploadForm(Form):
    """A settlement file's form fields beside the file: the provider account it is from."""

    account_id: uuid.UUID | None = None


class PayoutsQuery(Booked):
    """The payouts page's filters: status, currency, booking days (the organisation's)."""

    status: Literal[PAYOUT_STATUSES] | None = None  # type: ignore[valid-type]
    currency: Currency | None = None

    def filters(self, time_zone: str) -> PayoutFilters:
        """The listing's filters: the days as instants in ``time_zone`` (the last day
        whole)."""
        zone = ZoneInfo(time_zone)
        return PayoutFilters(
            status=self.status,
            currency=normalise_currency(self.currency) if self.currency else None,
            since=start_of_day(self.booked_from, zone) if self.booked_from else None,
            until=start_of_day(self.booked_to + timedelta(days=1), zone)
            if self.booked_to
            else None,
        )


class PayoutQuery(Form):
    """A payout's page: the action just done, for its notice."""

    done: Literal["linked", "unlinked"] | None = None


class BankQuery(Booked):
    """The bank page's entry filters and the statements' account; amounts are decimal
    text in the currency (an account's, or the one chosen), signed (a debit < 0)."""

    account_id: uuid.UUID | None = None
    currency: Currency | None = None
    unmatched: Literal["true", "false"] | None = None
    min_amount: Amount | None = None
    max_amount: Amount | None = None
    statement_cursor: Cursor | None = None

    def filters(self, account_currency: str | None) -> EntryFilters:
        """The listing's filters; an amount needs a currency (ValidationFailed)."""
        chosen = normalise_currency(self.currency) if self.currency else None
        currency = account_currency or chosen
        amounts = {"min_amount": self.min_amount, "max_amount": self.max_amount}
        if any(amounts.values()) and currency is None:
            raise ValidationFailed("choose an account or a currency to filter by amount")
        return EntryFilters(
            account_id=self.account_id,
            currency=currency,
            booked_from=self.booked_from,
            booked_to=self.booked_to,
            unmatched=None if self.unmatched is None else self.unmatched == "true",
            **{name: minor_units(text, currency) if text else None
               for name, text in amounts.items()},
        )  # fmt: skip


class StatementUploadForm(Form):
    """A statement's form fields beside the file: its account, and for a CSV the column
    mapping (JSON, saved on the account for its next CSV)."""

    account_id: uuid.UUID | None = None
    csv_mapping: Json[CsvMapping] | None = None


class LinkForm(Form):
    """Link the payout to this entry, saying why."""

    entry_id: uuid.UUID
    reason: Reason


class UnlinkForm(Form):
    """Undo the payout's link, saying why."""

    reason: Reason
