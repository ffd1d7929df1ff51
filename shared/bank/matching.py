"""Payouts matched to the bank entries that carried them, and the bank discrepancies.

One pass per organisation (:func:`reconcile_bank_payouts`), serialised by an advisory
lock and idempotent: candidate pairs are read with set-based SQL, the pure rules
(``shared/bank/payout_rules.py``) decide links and suggestions, the links are written
with their ``linked`` log entries and the suggestions replaced; then the
organisation's PayoutNotReceived, DepositAmountMismatch and UnexpectedDeposit findings
are computed as a whole, those not yet open are opened and those whose cause is gone
are auto-resolved (``shared/discrepancies/opening.py``). A finding a person resolved
is not opened again for the same subjects.

A pass runs after a statement or settlement import commits (a task queued after commit,
:func:`queue_payout_matching`), daily from beat for the time-based findings, and after a
person links or unlinks (:func:`link_payout`, :func:`unlink_payout`, whose reasons go to
the append-only ``bank_payout_link_log``). A pair a person unlinked is never linked
again automatically.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.access.api_keys import Caller
from shared.bank.payout_rules import (
    AMOUNT,
    AMOUNT_WINDOW_AFTER_DAYS,
    AMOUNT_WINDOW_BEFORE_DAYS,
    DEFAULT_ARRIVAL_BUSINESS_DAYS,
    KNOWN_COUNTERPARTIES,
    NEVER_ARRIVING,
    REFERENCE,
    REFERENCE_WINDOW_AFTER_DAYS,
    REFERENCE_WINDOW_BEFORE_DAYS,
    Candidate,
    PayoutFacts,
    decide_links,
    deposit_amount_mismatch,
    mentions_payout,
    payout_not_received,
    unexpected_deposit,
)
from shared.discrepancies.lifecycle import AUTO_RESOLUTION
from shared.discrepancies.opening import auto_resolve_many, open_discrepancies
from shared.matching.rules import Finding
from shared.models import (
    BankEntryRecord,
    BankPayoutLink,
    BankPayoutLinkLogEntry,
    BankPayoutSuggestion,
    SettlementPayout,
)
from shared.platform.bulk import array_parameters, column_arrays
from shared.platform.dispatch import send_after_commit
from shared.platform.errors import Conflict, NotFound, ValidationFailed
from shared.platform.logs import get_logger
from shared.platform.tasks import MATCH_BANK_PAYOUTS
from shared.values.business_days import UnknownCalendar, check_calendar
from shared.values.text import check_free_text

log = get_logger(__name__)

SYSTEM = "system"
BANK_TYPES = ("PayoutNotReceived", "DepositAmountMismatch", "UnexpectedDeposit")
MAX_REASON_LENGTH = 2_000
# Payouts that will never reach the bank, as an SQL list of constants.
NOT_EXPECTED = "(" + ", ".join(f"'{status}'" for status in NEVER_ARRIVING) + ")"
EXPECTED_ARRIVAL = "COALESCE(p.arrival_date, (p.booked_at AT TIME ZONE 'UTC')::date)"
ENTRY_TEXT = "concat_ws(' | ', e.remittance_text, e.bank_reference, e.end_to_end_id)"
_UNLINKED_PAYOUT = (
    "NOT EXISTS (SELECT 1 FROM bank_payout_links l WHERE l.settlement_payout_id = p.id)"
)
_UNLINKED_ENTRY = "NOT EXISTS (SELECT 1 FROM bank_payout_links l WHERE l.bank_entry_id = e.id)"
# A pair a person unlinked stays apart unless a person links it again.
_NOT_REFUSED = (
    "NOT EXISTS (SELECT 1 FROM bank_payout_link_log g WHERE g.settlement_payout_id = p.id "  # noqa: S608
    f"AND g.bank_entry_id = e.id AND g.action = 'unlinked' AND g.actor <> '{SYSTEM}')"
)
# Adyen writes a batch number without its leading zeros ("batch 380").
_SEARCHED_ID = (
    "upper(CASE WHEN p.provider = 'adyen' AND p.payout_id ~ '^[0-9]+$' "
    "THEN COALESCE(NULLIF(ltrim(p.payout_id, '0'), ''), '0') ELSE p.payout_id END)"
)
_CANDIDATES = text(
    f"WITH payouts AS (SELECT p.*, {EXPECTED_ARRIVAL} AS expected "  # noqa: S608 - constants
    f"FROM settlement_payouts p WHERE p.org_id = :org_id AND p.status NOT IN {NOT_EXPECTED} "
    f"AND {_UNLINKED_PAYOUT}) "
    f"SELECT p.id, e.id, '{REFERENCE}', p.provider, p.payout_id, upper({ENTRY_TEXT}) "
    "FROM payouts p JOIN bank_entries e ON e.org_id = :org_id AND e.currency = p.currency "
    "AND sign(e.amount_minor) = sign(p.amount_minor) "
    f"AND e.booking_date BETWEEN p.expected - {REFERENCE_WINDOW_BEFORE_DAYS} "
    f"AND p.expected + {REFERENCE_WINDOW_AFTER_DAYS} "
    f"AND strpos(upper({ENTRY_TEXT}), {_SEARCHED_ID}) > 0 "
    f"WHERE {_UNLINKED_ENTRY} AND {_NOT_REFUSED} "
    "UNION ALL "
    f"SELECT p.id, e.id, '{AMOUNT}', p.provider, p.payout_id, NULL "
    "FROM payouts p JOIN bank_entries e ON e.org_id = :org_id AND e.currency = p.currency "
    "AND e.amount_minor = p.amount_minor "
    f"AND e.booking_date BETWEEN p.expected - {AMOUNT_WINDOW_BEFORE_DAYS} "
    f"AND p.expected + {AMOUNT_WINDOW_AFTER_DAYS} "
    "JOIN bank_accounts a ON a.id = e.account_id "
    "AND (cardinality(a.providers) = 0 OR p.provider = ANY(a.providers)) "
    f"WHERE {_UNLINKED_ENTRY} AND {_NOT_REFUSED}"
)
_PAIR_COLUMNS = {"settlement_payout_id": "uuid", "bank_entry_id": "uuid", "method": "text"}
_INSERT_LINKS = text(
    "INSERT INTO bank_payout_links (org_id, settlement_payout_id, bank_entry_id, method) "  # noqa: S608
    f"SELECT :org_id, * FROM unnest({array_parameters(_PAIR_COLUMNS)}) "
    "ON CONFLICT DO NOTHING RETURNING settlement_payout_id, bank_entry_id, method"
)
_INSERT_SUGGESTIONS = text(
    "INSERT INTO bank_payout_suggestions (org_id, settlement_payout_id, bank_entry_id, method) "  # noqa: S608
    f"SELECT :org_id, * FROM unnest({array_parameters(_PAIR_COLUMNS)}) ON CONFLICT DO NOTHING"
)
_LOG_LINKED = text(
    "INSERT INTO bank_payout_link_log "  # noqa: S608
    "(org_id, settlement_payout_id, bank_entry_id, action, method, actor) "
    f"SELECT :org_id, settlement_payout_id, bank_entry_id, 'linked', method, '{SYSTEM}' "
    f"FROM unnest({array_parameters(_PAIR_COLUMNS)}) "
    f"AS v({', '.join(_PAIR_COLUMNS)})"
)
_OVERDUE = text(
    f"SELECT p.id, p.provider, p.payout_id, p.amount_minor, p.currency, {EXPECTED_ARRIVAL}, "  # noqa: S608
    f"COALESCE(pa.payout_arrival_business_days, {DEFAULT_ARRIVAL_BUSINESS_DAYS}) AS days, "
    "(SELECT CASE WHEN count(DISTINCT a.country) = 1 THEN min(a.country) END "
    " FROM bank_accounts a WHERE a.org_id = p.org_id AND a.currency = p.currency "
    " AND p.provider = ANY(a.providers)) "
    "FROM settlement_payouts p JOIN settlement_files f ON f.id = p.file_id "
    "LEFT JOIN provider_accounts pa ON pa.id = f.provider_account_id "
    f"WHERE p.org_id = :org_id AND p.status NOT IN {NOT_EXPECTED} AND {_UNLINKED_PAYOUT} "
    f"AND {EXPECTED_ARRIVAL} + "
    f"COALESCE(pa.payout_arrival_business_days, {DEFAULT_ARRIVAL_BUSINESS_DAYS}) < :today"
)
_MISMATCHED_LINKS = text(
    "SELECT l.settlement_payout_id, l.bank_entry_id, p.amount_minor, e.amount_minor, "
    "p.currency, l.method FROM bank_payout_links l "
    "JOIN settlement_payouts p ON p.id = l.settlement_payout_id "
    "JOIN bank_entries e ON e.id = l.bank_entry_id "
    "WHERE l.org_id = :org_id AND p.amount_minor <> e.amount_minor"
)
_COUNTERPARTY_COLUMNS = {"provider": "text", "field": "text", "pattern": "text"}
_UNEXPECTED = text(
    "SELECT e.id, e.amount_minor, e.currency, e.booking_date, e.counterparty_name, k.provider "  # noqa: S608
    "FROM bank_entries e CROSS JOIN LATERAL (SELECT c.provider "
    f"FROM unnest({array_parameters(_COUNTERPARTY_COLUMNS)}) AS c(provider, field, pattern) "
    "WHERE (c.field = 'name' AND upper(COALESCE(e.counterparty_name, e.remittance_text)) "
    "LIKE c.pattern) OR (c.field = 'account' "
    "AND upper(replace(e.counterparty_account, ' ', '')) LIKE c.pattern) "
    "ORDER BY c.provider LIMIT 1) k "
    f"WHERE e.org_id = :org_id AND e.amount_minor > 0 AND {_UNLINKED_ENTRY} "
    "AND NOT EXISTS (SELECT 1 FROM bank_payout_suggestions s WHERE s.bank_entry_id = e.id)"
)
_BANK_DISCREPANCIES = (
    "SELECT id, type, settlement_payout_id, bank_entry_id FROM reconciliation_discrepancies "
    "WHERE org_id = :org_id AND type = ANY(:types) "
)
_UNRESOLVED = text(_BANK_DISCREPANCIES + "AND status <> 'resolved' FOR UPDATE")
_RESOLVED_BY_PEOPLE = text(
    _BANK_DISCREPANCIES + f"AND status = 'resolved' AND resolution <> '{AUTO_RESOLUTION}'"
)

Key = tuple[str, uuid.UUID | None, uuid.UUID | None]


def queue_payout_matching(session: Session, org_id: uuid.UUID) -> None:
    """Have the organisation's payouts matched once ``session`` commits (never if it rolls
    back): a statement or settlement import calls it."""
    send_after_commit(session, MATCH_BANK_PAYOUTS, [str(org_id)])


def organisations_with_payouts(*, session: Session) -> list[uuid.UUID]:
    """The organisations that have a payout: the daily sweep's passes."""
    return list(session.scalars(select(SettlementPayout.org_id).distinct()))


@dataclass(frozen=True)
class BankPass:
    """What one pass did: links and suggestions written, discrepancies opened and resolved."""

    linked: int
    suggested: int
    opened: int
    resolved: int


def reconcile_bank_payouts(
    *, session: Session, org_id: uuid.UUID, now: datetime, evidence: dict[str, Any] | None = None
) -> BankPass:
    """Match the organisation's payouts to its entries, then open and auto-resolve its bank
    discrepancies as of ``now`` (UTC date). Idempotent; never commits."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"bank-payouts:{org_id}"},
    )
    linked, suggested = _match(session, org_id)
    opened, resolved = _judge(session, org_id, now, evidence or {"source": "bank payout matching"})
    outcome = BankPass(linked, suggested, opened, resolved)
    log.info("bank.payouts_reconciled", org_id=str(org_id), linked=linked, suggested=suggested,
             opened=opened, resolved=resolved)  # fmt: skip
    return outcome


def _match(session: Session, org_id: uuid.UUID) -> tuple[int, int]:
    candidates = [
        Candidate(payout, entry, method)
        for payout, entry, method, provider, payout_id, entry_text in session.execute(
            _CANDIDATES, {"org_id": org_id}
        )
        if method == AMOUNT or mentions_payout(entry_text, provider, payout_id)
    ]
    decision = decide_links(candidates)
    rows = [(c.payout_id, c.entry_id, c.method) for c in decision.links]
    written = []
    if rows:
        parameters = {"org_id": org_id} | column_arrays(rows, _PAIR_COLUMNS)
        written = [tuple(row) for row in session.execute(_INSERT_LINKS, parameters)]
    if written:
        session.execute(_LOG_LINKED, {"org_id": org_id} | column_arrays(written, _PAIR_COLUMNS))
    session.execute(delete(BankPayoutSuggestion).where(BankPayoutSuggestion.org_id == org_id))
    suggestions = [(c.payout_id, c.entry_id, c.method) for c in decision.suggestions]
    if suggestions:
        session.execute(
            _INSERT_SUGGESTIONS, {"org_id": org_id} | column_arrays(suggestions, _PAIR_COLUMNS)
        )
    return len(written), len(suggestions)


def _calendar(country: str | None) -> str | None:
    """The account's country when the holiday calendars know it; else weekends only."""
    try:
        return check_calendar(country)
    except UnknownCalendar:
        return None


def _findings(session: Session, org_id: uuid.UUID, today: date) -> list[Finding]:
    findings: list[Finding] = []
    for row in session.execute(_OVERDUE, {"org_id": org_id, "today": today}):
        payout = PayoutFacts(*row[:7], country=_calendar(row[7]))
        if (finding := payout_not_received(payout, today)) is not None:
            findings.append(finding)
    for payout_id, entry_id, payout_minor, entry_minor, currency, method in session.execute(
        _MISMATCHED_LINKS, {"org_id": org_id}
    ):
        finding = deposit_amount_mismatch(
            payout_id=payout_id, entry_id=entry_id, payout_minor=payout_minor,
            entry_minor=entry_minor, currency=currency, method=method,
        )  # fmt: skip
        if finding is not None:
            findings.append(finding)
    patterns = [
        (provider, field, pattern)
        for provider, known in KNOWN_COUNTERPARTIES.items()
        for field, listed in (("name", [f"%{name}%" for name in known.names]),
                              ("account", list(known.accounts)))
        for pattern in listed
    ]  # fmt: skip
    for entry_id, amount, currency, booked, counterparty, provider in session.execute(
        _UNEXPECTED, {"org_id": org_id} | column_arrays(patterns, _COUNTERPARTY_COLUMNS)
    ):
        findings.append(
            unexpected_deposit(
                entry_id=entry_id,
                amount_minor=amount,
                currency=currency,
                provider=provider,
                booking_date=booked,
                counterparty=counterparty,
            )
        )
    return findings


def _key(finding: Finding) -> Key:
    return (finding.type, finding.settlement_payout_id, finding.bank_entry_id)


def _judge(
    session: Session, org_id: uuid.UUID, now: datetime, evidence: dict[str, Any]
) -> tuple[int, int]:
    """Open what holds and is not open; auto-resolve what is open and no longer holds."""
    findings = {_key(finding): finding for finding in _findings(session, org_id, now.date())}
    parameters = {"org_id": org_id, "types": list(BANK_TYPES)}
    unresolved = {
        (kind, payout, entry): key
        for key, kind, payout, entry in session.execute(_UNRESOLVED, parameters)
    }
    settled_by_people = {
        (kind, payout, entry) for _, kind, payout, entry in session.execute(
            _RESOLVED_BY_PEOPLE, parameters
        )
    }  # fmt: skip
    gone = {
        discrepancy: {"type": kind, "settlement_payout_id": _text(payout),
                      "bank_entry_id": _text(entry)}
        for (kind, payout, entry), discrepancy in unresolved.items()
        if (kind, payout, entry) not in findings
    }  # fmt: skip
    resolved = auto_resolve_many(session=session, org_id=org_id, resolved=gone, now=now)
    new = [
        finding
        for key, finding in findings.items()
        if key not in unresolved and key not in settled_by_people
    ]
    opened = open_discrepancies(
        session=session, org_id=org_id, findings=new, now=now, evidence=evidence
    )
    return opened, resolved


def _text(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


# --- a person's links ----------------------------------------------------------------


def _reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed("reason must not be empty")
    if len(reason.strip()) > MAX_REASON_LENGTH:
        raise ValidationFailed(f"reason must be at most {MAX_REASON_LENGTH} characters")
    try:
        return check_free_text(reason.strip(), field="reason")
    except ValueError as error:
        raise ValidationFailed(str(error)) from None


def _payout(session: Session, org_id: uuid.UUID, payout_id: uuid.UUID) -> SettlementPayout:
    payout = session.get(SettlementPayout, payout_id, with_for_update=True)
    if payout is None or payout.org_id != org_id:
        raise NotFound(f"payout {payout_id} does not exist")
    return payout


def link_payout(
    *,
    session: Session,
    caller: Caller,
    payout_id: uuid.UUID,
    entry_id: uuid.UUID,
    reason: str,
    now: datetime,
) -> BankPayoutLink:
    """Link the caller's payout to the caller's entry by hand (same currency; neither
    linked yet: 409), log it with ``reason``, then run the organisation's pass."""
    reason = _reason(reason)
    payout = _payout(session, caller.org_id, payout_id)
    entry = session.get(BankEntryRecord, entry_id, with_for_update=True)
    if entry is None or entry.org_id != caller.org_id:
        raise NotFound(f"bank entry {entry_id} does not exist")
    if entry.currency != payout.currency:
        raise ValidationFailed(f"the entry is in {entry.currency}, the payout in {payout.currency}")
    link_id = session.scalar(
        insert(BankPayoutLink)
        .values(org_id=caller.org_id, settlement_payout_id=payout.id, bank_entry_id=entry.id,
                method="manual")
        .on_conflict_do_nothing()
        .returning(BankPayoutLink.id)
    )  # fmt: skip
    if link_id is None:
        raise Conflict("the payout or the entry is already linked: unlink it first")
    _log(session, caller, payout.id, entry.id, "linked", "manual", reason)
    evidence = {"source": "manual link", "actor": caller.actor}
    reconcile_bank_payouts(session=session, org_id=caller.org_id, now=now, evidence=evidence)
    return session.get_one(BankPayoutLink, link_id)


def unlink_payout(
    *, session: Session, caller: Caller, payout_id: uuid.UUID, reason: str, now: datetime
) -> None:
    """Undo the caller's payout's link (404 when it has none), log it with ``reason``, then
    run the organisation's pass: that pair is never linked again automatically."""
    reason = _reason(reason)
    payout = _payout(session, caller.org_id, payout_id)
    link = session.scalar(
        select(BankPayoutLink).where(BankPayoutLink.settlement_payout_id == payout.id)
    )
    if link is None:
        raise NotFound(f"payout {payout_id} is not linked to a bank entry")
    _log(session, caller, payout.id, link.bank_entry_id, "unlinked", link.method, reason)
    session.delete(link)
    session.flush()
    evidence = {"source": "manual unlink", "actor": caller.actor}
    reconcile_bank_payouts(session=session, org_id=caller.org_id, now=now, evidence=evidence)


def _log(
    session: Session, caller: Caller, payout_id: uuid.UUID, entry_id: uuid.UUID, action: str,
    method: str, reason: str,
) -> None:  # fmt: skip
    session.add(BankPayoutLinkLogEntry(
        org_id=caller.org_id, settlement_payout_id=payout_id, bank_entry_id=entry_id,
        action=action, method=method, actor=caller.actor, actor_name=caller.actor_name,
        reason=reason,
    ))  # fmt: skip
    session.flush()
