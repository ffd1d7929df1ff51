"""BAI2 (US cash management) files, parsed by the maintained ``bai2`` library with its
integrity checks (record counts and control totals in 49/98/99) on.

One statement per account section (03 … 49) of each group: opening and closing balance
from the ledger summaries 010 and 015, entries from the 16 details (booked on the
group's as-of date; amounts are already minor units of the currency). Each record is
on its own line: a line holding a second record (``…/ 16,142,…``) or text wrapped onto
a line without an ``88`` continuation code is refused, naming the line.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import IO, Any

from bai2 import bai2
from bai2.constants import RecordCode, TypeCodeTransaction
from bai2.exceptions import IntegrityException, NotSupportedYetException, ParsingException

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
from shared.values.money import normalise_currency
from shared.values.text import one_line

FORMAT = "bai2"
OPENING_LEDGER = "010"
CLOSING_LEDGER = "015"
# BAI2 says a group without a currency is in US dollars.
DEFAULT_CURRENCY = "USD"
RECORD_CODES = frozenset(code.value for code in RecordCode)
JOINED_RECORDS = re.compile(r"/[ \t]+(?=(?:{}),)".format("|".join(sorted(RECORD_CODES))))
SIGNS = {TypeCodeTransaction.credit: 1, TypeCodeTransaction.debit: -1}


def _refuse(reason: str, location: str) -> UnreadableStatement:
    return UnreadableStatement(reason, format=FORMAT, location=location)


def physical_records(text: str) -> list[tuple[int, str]]:
    """(line number, record) for each non-blank line, each checked to be one record."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        record = line.strip()
        if not record:
            continue
        if record[:2] not in RECORD_CODES or record[2:3] != ",":
            raise _refuse(
                f"does not start with a record code and a comma ({record[:3]!r}); "
                "text that wraps must go on in an 88 continuation record",
                f"line {number}",
            )
        joined = JOINED_RECORDS.search(record)
        if joined:
            following = record[joined.end() : joined.end() + 3]
            raise _refuse(
                f"a second record ({following!r}) follows '/' on the same line; "
                "BAI2 puts each record on its own line",
                f"line {number}",
            )
        records.append((number, record))
    return records


def read_bai2(source: IO[bytes]) -> Iterator[StatementItem]:
    """The statements of a BAI2 file (see the module docstring).

    A record the library refuses, or a control total that does not add up, refuses the
    file naming the record (and its line) the library stopped at.
    """
    records = physical_records(decode_text(source.read()))
    consumed = 0

    def counted() -> Iterator[str]:
        nonlocal consumed
        for _, record in records:
            consumed += 1
            yield record

    try:
        parsed = bai2.parse_from_lines(counted(), check_integrity=True)
    except (ParsingException, IntegrityException, NotSupportedYetException, ValueError) as error:
        # The library reads one record ahead of the one it is building.
        index = max(consumed - 2, 0) if consumed < len(records) else len(records) - 1
        line = records[index][0] if records else 1
        reason = str(error).split("\n")[0][:200] or type(error).__name__
        raise _refuse(reason, f"at record {index + 1} (line {line})") from None
    seen: Counter[str] = Counter()
    for group_number, group in enumerate(parsed.children, start=1):
        for account_number, account in enumerate(group.children, start=1):
            location = f"group {group_number}, account {account_number}"
            header = _header(group.header, account.header, seen, location)
            yield from assemble(
                header,
                (
                    (_entry(detail, group.header, header.currency, place), place)
                    for place, detail in (
                        (f"{location}, detail {n}", detail)
                        for n, detail in enumerate(account.children, start=1)
                    )
                ),
            )


def _header(group: Any, account: Any, seen: Counter[str], location: str) -> StatementHeader:
    try:
        currency = normalise_currency(account.currency or group.currency or DEFAULT_CURRENCY)
    except ValidationFailed as error:
        raise _refuse(error.detail, location) from None
    summaries = {item.type_code.code: item.amount for item in account.summary_items}
    number = account.customer_account_number
    # Two sections for one account and day in one file (sample banks do this) stay apart.
    key = f"{group.as_of_date:%Y-%m-%d}/{number}"
    seen[key] += 1
    return StatementHeader(
        format=FORMAT,
        statement_id=key if seen[key] == 1 else f"{key}#{seen[key]}",
        account=AccountIdentification(value=number),
        currency=currency,
        opening_balance_minor=summaries.get(OPENING_LEDGER),
        closing_balance_minor=summaries.get(CLOSING_LEDGER),
        period_start=group.as_of_date,
        period_end=group.as_of_date,
    )


def _entry(detail: Any, group: Any, currency: str, location: str) -> BankEntry:
    sign = SIGNS.get(detail.type_code.transaction)
    if sign is None:
        raise _refuse(
            f"type code {detail.type_code.code} is neither a credit nor a debit", location
        )
    availability = detail.availability or {}
    return BankEntry(
        booking_date=group.as_of_date,
        value_date=availability.get("date") if isinstance(availability, dict) else None,
        amount_minor=sign * detail.amount,
        currency=currency,
        remittance_text=one_line(detail.text),
        bank_reference=one_line(detail.bank_reference) or one_line(detail.customer_reference),
        codes=TransactionCodes(bai=detail.type_code.code),
    )
