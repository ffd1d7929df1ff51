"""Stripe ``balance_transaction`` and ``payout`` objects (JSON, amounts in minor units).

A balance transaction is one line: ``amount`` is the gross, ``fee_details`` the fees by
type, ``net`` what reached the balance. A payout object is one payout. Numbers are read
as Decimal, so an exchange rate stays exact and a fractional amount is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from shared.settlements.cells import (
    SettlementCellInvalid,
    checked_minor,
    currency_code,
    identifier,
    plausible,
)
from shared.settlements.model import PAYOUT_STATUSES, Fees, ReportLine, ReportPayout
from shared.settlements.stripe_csv import stripe_line_type

BALANCE_TRANSACTION_LAYOUT = "stripe_balance_transaction"
PAYOUT_LAYOUT = "stripe_payout"
# fee_details[].type → the fee component it is.
FEE_COMPONENTS = {"stripe_fee": "processing", "application_fee": "commission"}
# A JSON document is one object: the whole of it is read, so it is kept small.
MAX_JSON_CHARACTERS = 1_000_000


class _Fields:
    """An object's fields, each reader refusing with the field's name (row 1: one object)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def refuse(self, name: str, problem: str) -> SettlementCellInvalid:
        return SettlementCellInvalid(1, name, problem)

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.document.get(name)
        if value is None or value == "":
            if required:
                raise self.refuse(name, "is missing")
            return None
        if not isinstance(value, str):
            raise self.refuse(name, "must be a string")
        try:
            return identifier(value)
        except ValueError as error:
            raise self.refuse(name, str(error)) from None

    def minor(self, value: Any, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise self.refuse(name, "must be an integer of minor units")
        if isinstance(value, Decimal) and value != value.to_integral_value():
            raise self.refuse(name, "must be an integer of minor units")
        try:
            return checked_minor(int(value))
        except ValueError as error:
            raise self.refuse(name, str(error)) from None

    def amount(self, name: str) -> int:
        return self.minor(self.document.get(name), name)

    def currency(self) -> str:
        try:
            return currency_code(self.text("currency", required=True) or "")
        except ValueError as error:
            raise self.refuse("currency", str(error)) from None

    def instant(self, name: str) -> datetime:
        seconds = self.amount(name)
        try:
            return plausible(datetime.fromtimestamp(seconds, UTC))
        except (ValueError, OverflowError, OSError) as error:
            raise self.refuse(name, str(error) or "is not a plausible Unix time") from None

    def day(self, name: str) -> date | None:
        return None if self.document.get(name) is None else self.instant(name).date()


def parse_balance_transaction(document: dict[str, Any]) -> Iterator[ReportLine]:
    """The one line a balance transaction object is."""
    fields = _Fields(document)
    category = fields.text("reporting_category") or fields.text("type", required=True) or ""
    fees = _fees(fields)
    rate = document.get("exchange_rate")
    if rate is not None and (not isinstance(rate, Decimal | int) or rate <= 0):
        raise fields.refuse("exchange_rate", "must be a number above 0")
    yield ReportLine(
        provider="stripe",
        row=1,
        batch_id=None,
        line_type=stripe_line_type(category),
        provider_type=category,
        provider_reference=fields.text("source"),
        line_reference=fields.text("id", required=True),
        merchant_reference=None,
        payment_intent_id=None,
        gross_minor=fields.amount("amount"),
        gross_currency=fields.currency(),
        fees=fees,
        net_minor=fields.amount("net"),
        net_currency=fields.currency(),
        exchange_rate=None if rate is None else Decimal(rate),
        booked_at=fields.instant("created"),
        description=None,
    )


def _fees(fields: _Fields) -> Fees:
    details = fields.document.get("fee_details") or []
    if not isinstance(details, list) or not all(isinstance(item, dict) for item in details):
        raise fields.refuse("fee_details", "must be a list of objects")
    components = dict.fromkeys(("commission", "processing", "other"), 0)
    for item in details:
        component = FEE_COMPONENTS.get(str(item.get("type")), "other")
        components[component] += fields.minor(item.get("amount"), "fee_details.amount")
    if not details:
        components["processing"] = fields.amount("fee")
    return Fees(**components)


def parse_payout(document: dict[str, Any]) -> Iterator[ReportPayout]:
    """The one payout a payout object is."""
    fields = _Fields(document)
    status = fields.text("status", required=True)
    if status not in PAYOUT_STATUSES:
        raise fields.refuse("status", f"must be one of {', '.join(PAYOUT_STATUSES)}")
    yield ReportPayout(
        provider="stripe",
        row=1,
        payout_id=fields.text("id", required=True) or "",
        currency=fields.currency(),
        amount_minor=fields.amount("amount"),
        status=status,
        arrival_date=fields.day("arrival_date"),
        booked_at=fields.instant("created"),
    )
