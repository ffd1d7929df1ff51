"""The rules that tie provider payouts to bank entries: pure functions, no Session, no I/O.

``shared/bank/matching.py`` reads candidates with set-based SQL and writes what these
rules decide; the rules alone say what counts as a payout's reference, when a link is
certain, when a payout is overdue, and what each bank discrepancy states.

Order: the payout's reference in the entry's text (remittance, bank reference,
end-to-end id); else a unique amount and currency within a window around the expected
arrival. A link needs exactly one candidate on each side; anything else is a suggestion.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from shared.matching.rules import Finding
from shared.values.business_days import add_business_days

REFERENCE = "reference"
AMOUNT = "amount"
# Entries booked this many days before / after a payout's expected arrival are amount
# candidates (calendar days: banks book a day early on value date, or a few days late).
AMOUNT_WINDOW_BEFORE_DAYS = 3
AMOUNT_WINDOW_AFTER_DAYS = 7
# An entry whose text names a payout is looked for in a wider window.
REFERENCE_WINDOW_BEFORE_DAYS = 7
REFERENCE_WINDOW_AFTER_DAYS = 30
DEFAULT_ARRIVAL_BUSINESS_DAYS = 2
# A payout in one of these statuses never reaches the bank: it is matched to nothing.
NEVER_ARRIVING = ("failed", "canceled")
# A payout id shorter than this is too common a string to count as a reference on its own
# (an Adyen batch "12"); it counts only in its provider's phrase ("batch 12").
MIN_TOKEN_LENGTH = 6


@dataclass(frozen=True)
class KnownCounterparty:
    """How a provider shows up as the sender of a bank credit: names (matched as upper-case
    substrings of the counterparty name, or of the text when the bank gives no name) and
    account patterns (SQL LIKE on the IBAN without spaces, ``_`` one character)."""

    names: tuple[str, ...]
    accounts: tuple[str, ...] = ()


# The documented default list (docs/design.md, "Payouts and bank entries"): the legal
# entities that send payouts (Stripe Payments Europe / Stripe Technology Europe, Adyen
# N.V. whose IBANs carry the bank code ADYB of its BIC ADYBNL2A, PayPal (Europe)
# S.à r.l. et Cie) as banks print them.
KNOWN_COUNTERPARTIES: dict[str, KnownCounterparty] = {
    "stripe": KnownCounterparty(names=("STRIPE",)),
    "adyen": KnownCounterparty(names=("ADYEN",), accounts=("NL__ADYB%",)),
    "paypal": KnownCounterparty(names=("PAYPAL",)),
}


def _token(payout_id: str) -> str:
    return rf"(?<![0-9A-Z]){re.escape(payout_id.upper())}(?![0-9A-Z])"


def reference_pattern(provider: str, payout_id: str) -> re.Pattern[str] | None:
    """How ``provider`` writes ``payout_id`` on the transfer (upper-case text), or None
    when the id is too short to be told from other numbers.

    Stripe: the payout id (``po_…``) as a token. Adyen: ``batch <n>`` (its payout
    description names the batch), or a long batch id as a token. PayPal: the withdrawal's
    bank reference id as a token.
    """
    if provider == "adyen" and payout_id.isdigit():
        number = payout_id.lstrip("0") or "0"
        return re.compile(rf"\bBATCH\W{{0,3}}(?:NR|NO|NUMBER)?\W{{0,3}}0*{number}(?![0-9])")
    if len(payout_id) < MIN_TOKEN_LENGTH:
        return None
    return re.compile(_token(payout_id))


def entry_text(*parts: str | None) -> str:
    """The text of an entry the references are looked for in, upper case."""
    return " | ".join(part for part in parts if part).upper()


def mentions_payout(text: str, provider: str, payout_id: str) -> bool:
    """True when ``text`` (:func:`entry_text`) carries the payout's reference."""
    pattern = reference_pattern(provider, payout_id)
    return pattern is not None and pattern.search(text) is not None


@dataclass(frozen=True)
class Candidate:
    """An entry that could be a payout's: by ``reference`` (its text names the payout) or
    by ``amount`` (same signed amount and currency, booked within the window)."""

    payout_id: uuid.UUID
    entry_id: uuid.UUID
    method: str


@dataclass(frozen=True)
class Decision:
    """What the candidates allow: certain links, and suggestions for the rest."""

    links: list[Candidate]
    suggestions: list[Candidate]


def _unique_pairs(candidates: Sequence[Candidate]) -> tuple[list[Candidate], list[Candidate]]:
    by_payout: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    by_entry: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    for candidate in candidates:
        by_payout[candidate.payout_id].add(candidate.entry_id)
        by_entry[candidate.entry_id].add(candidate.payout_id)
    links, suggestions = [], []
    for candidate in dict.fromkeys(candidates):
        unique = len(by_payout[candidate.payout_id]) == len(by_entry[candidate.entry_id]) == 1
        (links if unique else suggestions).append(candidate)
    return links, suggestions


def decide_links(candidates: Iterable[Candidate]) -> Decision:
    """Links where exactly one entry and one payout name each other, by reference first,
    then by amount; every other candidate pair is a suggestion, never a link.

    An entry that names a payout, and a payout some entry names, are left to the
    reference rule: they are not amount candidates.
    """
    listed = list(candidates)
    by_reference = [c for c in listed if c.method == REFERENCE]
    links, suggestions = _unique_pairs(by_reference)
    named_entries = {c.entry_id for c in by_reference}
    named_payouts = {c.payout_id for c in by_reference}
    by_amount = [
        c
        for c in listed
        if c.method == AMOUNT
        and c.entry_id not in named_entries
        and c.payout_id not in named_payouts
    ]
    amount_links, amount_suggestions = _unique_pairs(by_amount)
    return Decision(links + amount_links, suggestions + amount_suggestions)


def arrival_deadline(expected: date, business_days: int, country: str | None) -> date:
    """The last day a payout expected on ``expected`` may still arrive: ``business_days``
    business days later, in the bank account country's calendar (weekends only without)."""
    return add_business_days(expected, business_days, country)


@dataclass(frozen=True)
class PayoutFacts:
    """A payout as the bank rules see it (``amount_minor`` signed as the bank books it)."""

    id: uuid.UUID
    provider: str
    payout_id: str
    amount_minor: int
    currency: str
    expected_arrival: date
    arrival_business_days: int
    country: str | None


def payout_not_received(payout: PayoutFacts, today: date) -> Finding | None:
    """PayoutNotReceived when ``today`` is past the payout's arrival deadline (the caller
    passes only payouts with no linked entry)."""
    deadline = arrival_deadline(
        payout.expected_arrival, payout.arrival_business_days, payout.country
    )
    if today <= deadline:
        return None
    return Finding(
        type="PayoutNotReceived", payment_id=None, provider_record_id=None,
        amount_minor=payout.amount_minor, currency=payout.currency,
        settlement_payout_id=payout.id,
        evidence={"provider": payout.provider, "payout_id": payout.payout_id,
                  "expected_arrival": payout.expected_arrival.isoformat(),
                  "deadline": deadline.isoformat(), "calendar": payout.country,
                  "business_days": payout.arrival_business_days},
    )  # fmt: skip


def deposit_amount_mismatch(
    *, payout_id: uuid.UUID, entry_id: uuid.UUID, payout_minor: int, entry_minor: int,
    currency: str, method: str,
) -> Finding | None:  # fmt: skip
    """DepositAmountMismatch when a linked entry's amount is not the payout's: the
    difference is entry − payout, exact."""
    if entry_minor == payout_minor:
        return None
    return Finding(
        type="DepositAmountMismatch", payment_id=None, provider_record_id=None,
        amount_minor=payout_minor, currency=currency, difference_minor=entry_minor - payout_minor,
        settlement_payout_id=payout_id, bank_entry_id=entry_id,
        evidence={"payout_minor": payout_minor, "entry_minor": entry_minor, "link": method},
    )  # fmt: skip


def unexpected_deposit(
    *, entry_id: uuid.UUID, amount_minor: int, currency: str, provider: str,
    booking_date: date, counterparty: str | None,
) -> Finding:  # fmt: skip
    """UnexpectedDeposit: a credit from ``provider``'s known counterparty that no payout
    matches (the caller passes only such entries)."""
    return Finding(
        type="UnexpectedDeposit", payment_id=None, provider_record_id=None,
        amount_minor=amount_minor, currency=currency, bank_entry_id=entry_id,
        evidence={"provider": provider, "booking_date": booking_date.isoformat(),
                  "counterparty": counterparty},
    )  # fmt: skip


def statement_balance_mismatch(
    *, statement_id: uuid.UUID, bank_statement_id: str, currency: str, opening_minor: int,
    closing_minor: int, entries_total_minor: int, entry_count: int,
) -> Finding | None:  # fmt: skip
    """StatementBalanceMismatch when opening + entries ≠ closing: the amount is the closing
    balance, the difference closing − (opening + entries), exact."""
    difference = closing_minor - (opening_minor + entries_total_minor)
    if difference == 0:
        return None
    return Finding(
        type="StatementBalanceMismatch", payment_id=None, provider_record_id=None,
        amount_minor=closing_minor, currency=currency, difference_minor=difference,
        bank_statement_id=statement_id,
        evidence={"statement_id": bank_statement_id, "opening_balance_minor": opening_minor,
                  "closing_balance_minor": closing_minor,
                  "entries_total_minor": entries_total_minor, "entry_count": entry_count},
    )  # fmt: skip
