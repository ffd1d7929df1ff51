"""SWIFT MT940 customer statements, parsed by the maintained ``mt-940`` library.

The library reads text, not a stream, and folds every message of a file into one
collection, so the file is split into its messages first (each starts at ``:20:`` and
ends at a ``-`` line or the next ``:20:``), and each message is parsed on its own. Lines
are numbered for messages: a tag the library does not know, a tag it cannot parse, or
a message without its required tags is refused naming the line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import IO, Any

import mt940
from mt940.tags import TAG_BY_ID

from shared.bank.model import (
    AccountIdentification,
    BankEntry,
    StatementHeader,
    StatementItem,
    TransactionCodes,
    UnreadableStatement,
    assemble,
    decode_text,
)
from shared.platform.errors import ValidationFailed
from shared.values.money import minor_units, normalise_currency
from shared.values.text import one_line

FORMAT = "mt940"
# The library logs the text it failed to match at ERROR: statement text is customer data
# and stays out of the logs; failures reach the caller as UnreadableStatement instead.
logging.getLogger("mt940").setLevel(logging.CRITICAL)

TAG_LINE = re.compile(r":([0-9]{2}[A-Z]?|NS):")
IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}")
KNOWN_TAGS = frozenset(str(tag) for tag in TAG_BY_ID)
REQUIRED = {
    "20": "transaction reference (:20:)",
    "25": "account identification (:25:)",
    "60": "opening balance (:60F: or :60M:)",
    "62": "closing balance (:62F: or :62M:)",
}


@dataclass(frozen=True)
class _Message:
    """One statement message: its text, and the line number of each of its tags."""

    number: int
    text: str
    tags: list[tuple[int, str, str]]  # (line number, tag id, first line of its value)

    @property
    def first_line(self) -> int:
        """The line of the message's :20: tag."""
        return self.tags[0][0]

    def line_of(self, tag_id: str, value: str) -> int:
        """The line of the tag ``tag_id`` whose value starts like ``value``."""
        head = value.strip().split("\n")[0][:12]
        for line, tag, first in self.tags:
            if tag == tag_id and first.startswith(head):
                return line
        return self.first_line


def _refuse(reason: str, location: str) -> UnreadableStatement:
    return UnreadableStatement(reason, format=FORMAT, location=location)


def split_messages(text: str) -> list[_Message]:
    """The statement messages of a file, each with its tags' line numbers.

    Lines before the first ``:20:`` (SWIFT block headers such as ``ABNANL2A`` / ``940``)
    and after a message's ``-`` end are not part of any message.
    """
    messages: list[_Message] = []
    lines: list[str] = []
    tags: list[tuple[int, str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = TAG_LINE.match(line)
        if (match and match.group(1) == "20") or line.strip() == "-":
            if tags:
                messages.append(_Message(len(messages) + 1, "\n".join(lines), tags))
            lines, tags = [], []
            if not match:
                continue
        if not tags and not match:
            continue  # outside a message
        if match:
            tag = match.group(1)
            if tag not in KNOWN_TAGS and tag[:2] not in KNOWN_TAGS:
                raise _refuse(f"unknown tag :{tag}:", f"line {number}")
            tags.append((number, tag, line[match.end() :]))
        lines.append(line)
    if tags:
        messages.append(_Message(len(messages) + 1, "\n".join(lines), tags))
    if not messages:
        raise _refuse("no :20: tag: not an MT940 statement", "line 1")
    return messages


def read_mt940(source: IO[bytes]) -> Iterator[StatementItem]:
    """The statements of an MT940 file, one per message (see the module docstring)."""
    for message in split_messages(decode_text(source.read())):
        yield from _read_message(message)


def _read_message(message: _Message) -> Iterator[StatementItem]:
    location = f"statement {message.number} (line {message.first_line})"
    present = {tag[:2] for _, tag, _ in message.tags}
    missing = [name for tag, name in REQUIRED.items() if tag not in present]
    if missing:
        raise _refuse(f"missing {', '.join(missing)}", location)
    transactions = mt940.models.Transactions()
    try:
        transactions.parse(message.text)
    except (RuntimeError, ValueError, KeyError) as error:
        tag, value = _failed_tag(error)
        line = message.line_of(tag, value) if tag else message.first_line
        raise _refuse(f"tag :{tag or '?'}: cannot be parsed", f"line {line}") from None
    header = _header(transactions.data, location)
    places = [
        f"statement {message.number}, line {line}" for line, tag, _ in message.tags if tag == "61"
    ]
    if len(places) != len(transactions):
        raise _refuse(f"{len(places)} :61: tags but {len(transactions)} entries read", location)
    yield from assemble(
        header,
        (
            (_entry(transaction.data, place), place)
            for transaction, place in zip(transactions, places, strict=True)
        ),
    )


def _failed_tag(error: Exception) -> tuple[str | None, str]:
    """The tag id and value the library names in its error, when it does."""
    if len(error.args) == 3 and hasattr(error.args[1], "id"):
        return str(error.args[1].id), str(error.args[2])
    return None, ""


def _decimal_minor(amount: Decimal, currency: str, location: str) -> int:
    try:
        return minor_units(format(amount, "f"), currency)
    except ValidationFailed as error:
        raise _refuse(error.detail, location) from None


def _balance(data: dict[str, Any], kind: str, location: str) -> tuple[int, str, Any]:
    """(minor units, currency, date) of the final balance of ``kind``, else the
    intermediate one (a statement split over several messages)."""
    balance = data.get(f"final_{kind}_balance") or data.get(f"intermediate_{kind}_balance")
    if balance is None:
        raise _refuse(f"no {kind} balance could be read", location)
    try:
        currency = normalise_currency(balance.amount.currency)
    except ValidationFailed as error:
        code = str(balance.amount.currency)[:8]
        raise _refuse(f"{kind} balance currency {code!r}: {error.detail}", location) from None
    minor = _decimal_minor(balance.amount.amount, currency, location)
    return minor, currency, _plain_date(balance.date)


def _plain_date(value: date) -> date:
    """The library's Date subclass as a plain date."""
    return date(value.year, value.month, value.day)


def _header(data: dict[str, Any], location: str) -> StatementHeader:
    opening, currency, opened = _balance(data, "opening", location)
    closing, closing_currency, closed = _balance(data, "closing", location)
    if closing_currency != currency:
        raise _refuse(f"closing balance in {closing_currency}, opening in {currency}", location)
    if closed < opened:
        raise _refuse(f"closing balance date {closed} is before the opening's {opened}", location)
    account = one_line(data.get("account_identification")) or ""
    number = "/".join(
        str(data[key]) for key in ("statement_number", "sequence_number") if data.get(key)
    )
    return StatementHeader(
        format=FORMAT,
        statement_id=f"{one_line(data['transaction_reference'])}/{number}".rstrip("/"),
        account=AccountIdentification(
            value=account, scheme="iban" if IBAN.fullmatch(account) else "other"
        ),
        currency=currency,
        opening_balance_minor=opening,
        closing_balance_minor=closing,
        period_start=opened,
        period_end=closed,
    )


def _entry(data: dict[str, Any], location: str) -> BankEntry:
    try:
        currency = normalise_currency(data["amount"].currency)
    except ValidationFailed as error:
        raise _refuse(error.detail, location) from None
    value_date = _plain_date(data["date"])
    customer_reference = data.get("customer_reference")
    return BankEntry(
        booking_date=_plain_date(data.get("entry_date") or value_date),
        value_date=value_date,
        amount_minor=_decimal_minor(data["amount"].amount, currency, location),
        currency=currency,
        counterparty_name=one_line(data.get("applicant_name")),
        counterparty_account=one_line(data.get("applicant_iban")),
        remittance_text=one_line(
            data.get("purpose") or data.get("transaction_details") or data.get("posting_text")
        ),
        bank_reference=one_line(data.get("bank_reference"))
        or (None if customer_reference == "NONREF" else one_line(customer_reference)),
        end_to_end_id=one_line(data.get("end_to_end_reference")),
        codes=TransactionCodes(
            proprietary=one_line(data.get("transaction_code")), swift=one_line(data.get("id"))
        ),
        reversal=str(data.get("status", "")).startswith("R"),
    )
