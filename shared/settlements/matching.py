"""The settlement leg: lines linked to what they settle, and the cash discrepancies.

Set-based throughout. A *scope* — the lines of one imported file, or the lines booked in
a period run's period — is written to a temporary table, and every step is one statement
over it:

1. **Linking.** The import stored each line with its provider record and payment
   (shared/settlements/links.py has the rule); the scope's lines still without a payment
   are linked again, as what they settle may have arrived since.
2. **Findings** (docs/design.md, "Cash discrepancies"), gathered in a temporary table with
   their evidence: MissingInternalRecord for a capture, refund or chargeback line linked
   to nothing; SettlementAmountMismatch for a capture line whose gross disagrees with its
   payment; PayoutMismatch for a payout whose amount is not its lines' net; and, in a
   period run, UnsettledPayment for a captured payment of the period that no line covers
   once its provider's settlement delay is over; FeeMismatch for a capture line whose
   fees exceed its account's fee schedule beyond its tolerance. SQL finds the candidates;
   the verdicts are the pure rules of shared/settlements/rules.py.
3. **Writing.** Each finding without an unresolved discrepancy opens one (with its
   ``opened`` entry), in one statement. When auto-fix is on, an unresolved settlement
   discrepancy of the scope that is no longer found (or found with another amount) is
   resolved by ``system`` through the lifecycle's :func:`auto_resolve`.

Running it again changes nothing: links are only added, findings open once.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import column, exists, select, table, text
from sqlalchemy.orm import Session

from shared.discrepancies.lifecycle import UNRESOLVED, auto_resolve
from shared.matching.engine import match_settings
from shared.matching.rules import SETTLED, SEVERITY, MatchSettings
from shared.models import (
    DISCREPANCY_SUBJECTS,
    ONE_UNRESOLVED_CONFLICT,
    Organization,
    Payment,
    ReconciliationDiscrepancy,
    SettlementFile,
    discrepancy_provider,
)
from shared.platform.metrics import record_discrepancies_opened
from shared.settlements.links import LINK_COLUMNS, link_joins
from shared.settlements.listing import FEE_COLUMNS
from shared.settlements.rules import (
    CAPTURE,
    PAYMENT_LINE_TYPES,
    expected_fee,
    fee_excess,
    last_overdue_day,
    payout_difference,
    settlement_amount_disagrees,
    settlement_delay,
)

# The discrepancy types this leg opens and auto-resolves.
SETTLEMENT_TYPES = (
    "MissingInternalRecord",
    "SettlementAmountMismatch",
    "PayoutMismatch",
    "UnsettledPayment",
    "FeeMismatch",
)
FINDING_COLUMNS = (
    "type", "payment_id", "provider_record_id", "settlement_line_id", "settlement_payout_id",
    "amount_minor", "currency", "difference_minor", "evidence",
)  # fmt: skip

# Which lines a pass covers: those of one file, or those booked in a period.
SCOPES = {
    "file": "c.file_id = :file",
    "period": "c.org_id = :org_id AND c.booked_at >= :start AND c.booked_at < :end",
}
# The columns of its lines the findings read, copied once (after linking) into the scope.
SCOPE_COLUMNS = (
    "id", "line_type", "provider", "batch_id", "net_currency", "gross_minor",
    "gross_currency", "provider_record_id", "payment_id",
)  # fmt: skip
_CREATE_FINDINGS = text(
    "CREATE TEMPORARY TABLE settlement_findings (type text NOT NULL, payment_id uuid, "
    "provider_record_id uuid, settlement_line_id uuid, settlement_payout_id uuid, "
    "amount_minor bigint NOT NULL, currency text NOT NULL, difference_minor bigint, "
    "evidence jsonb NOT NULL) ON COMMIT DROP"
)
_CREATE_SCOPE_PAYOUTS = text(
    "CREATE TEMPORARY TABLE settlement_scope_payouts (id uuid PRIMARY KEY) ON COMMIT DROP"
)
_DROP_WORK_TABLES = text(
    "DROP TABLE pg_temp.settlement_scope_lines, pg_temp.settlement_scope_payouts, "
    "pg_temp.settlement_findings"
)
_FINDINGS = table(
    "settlement_findings", *(column(name) for name in FINDING_COLUMNS), schema="pg_temp"
)
_SCOPE_LINES = table(
    "settlement_scope_lines", *(column(name) for name in SCOPE_COLUMNS), schema="pg_temp"
)
_SCOPE_PAYOUTS = table("settlement_scope_payouts", column("id"), schema="pg_temp")

# --- 1. Linking ----------------------------------------------------------------------------

# Lines of the scope still without a payment, linked again: their payment (or record) may
# have arrived since. Only a line whose links change is written.
_LINK_LINES = f"""
UPDATE settlement_lines AS l
SET provider_record_id = coalesce(k.provider_record_id, l.provider_record_id),
    payment_id = k.payment_id
FROM (
  SELECT c.id, {LINK_COLUMNS}
  FROM settlement_lines AS c
  {link_joins("c", "c.provider")}
  WHERE {{scope}} AND c.payment_id IS NULL
) AS k
WHERE l.id = k.id AND (k.payment_id IS NOT NULL OR (k.provider_record_id IS NOT NULL
                       AND k.provider_record_id IS DISTINCT FROM l.provider_record_id))
"""  # noqa: S608 - constant SQL fragments
LINK_LINES = {name: text(_LINK_LINES.format(scope=scope)) for name, scope in SCOPES.items()}

# --- Scope ---------------------------------------------------------------------------------

_SCOPE_SELECT = ", ".join(f"c.{name}" for name in SCOPE_COLUMNS)
SCOPE_LINES = {
    name: text(
        "CREATE TEMPORARY TABLE settlement_scope_lines ON COMMIT DROP AS "  # noqa: S608
        f"SELECT {_SCOPE_SELECT} FROM settlement_lines AS c WHERE {scope}"
    )
    for name, scope in SCOPES.items()
}
# The payouts of the scope's batches, and those the file states or the period booked.
SCOPE_PAYOUTS = text("""
INSERT INTO pg_temp.settlement_scope_payouts (id)
SELECT o.id FROM settlement_payouts AS o
WHERE o.org_id = :org_id AND (o.file_id = :file OR (o.booked_at >= :start AND o.booked_at < :end))
UNION
SELECT o.id FROM (SELECT DISTINCT provider, batch_id, net_currency
                  FROM pg_temp.settlement_scope_lines WHERE batch_id IS NOT NULL) AS b
JOIN settlement_payouts AS o
  ON o.org_id = :org_id AND o.provider = b.provider AND o.payout_id = b.batch_id
 AND o.currency = b.net_currency
""")

# --- 2. Findings ---------------------------------------------------------------------------

_LINE_EVIDENCE = (
    "jsonb_build_object('file_id', l.file_id, 'row_number', l.row_number, "
    "'line_type', l.line_type, 'provider_type', l.provider_type, 'batch_id', l.batch_id, "
    "'provider_reference', l.provider_reference, 'merchant_reference', l.merchant_reference, "
    "'payment_intent_id', l.payment_intent_id, 'gross_minor', l.gross_minor, "
    "'gross_currency', l.gross_currency, 'net_minor', l.net_minor, "
    "'net_currency', l.net_currency)"
)
_INSERT_FINDINGS = f"INSERT INTO pg_temp.settlement_findings ({', '.join(FINDING_COLUMNS)})"
# The evidence is read from the line for the few lines found, after the scope is filtered.
FIND_MISSING_INTERNAL = text(f"""
WITH found AS MATERIALIZED (
  SELECT id FROM pg_temp.settlement_scope_lines
  WHERE line_type = ANY(CAST(:types AS text[]))
    AND provider_record_id IS NULL AND payment_id IS NULL
)
{_INSERT_FINDINGS}
SELECT 'MissingInternalRecord', NULL, NULL, l.id, NULL, abs(coalesce(l.gross_minor, l.net_minor)),
       coalesce(l.gross_currency, l.net_currency), NULL, {_LINE_EVIDENCE}
FROM found JOIN settlement_lines AS l ON l.id = found.id
""")  # noqa: S608 - constant SQL fragments
# Capture lines whose gross is not exactly their payment's: the rules judge the tolerance.
AMOUNT_CANDIDATES = text(f"""
WITH found AS MATERIALIZED (
  SELECT s.id, p.amount_minor AS payment_amount_minor, p.currency AS payment_currency
  FROM pg_temp.settlement_scope_lines AS s JOIN payments AS p ON p.id = s.payment_id
  WHERE s.line_type = :capture AND s.gross_minor IS NOT NULL
    AND (s.gross_currency IS DISTINCT FROM p.currency OR s.gross_minor <> p.amount_minor)
)
SELECT l.id, l.payment_id, l.provider_record_id, l.gross_minor, l.gross_currency,
       found.payment_amount_minor, found.payment_currency, {_LINE_EVIDENCE} AS evidence
FROM found JOIN settlement_lines AS l ON l.id = found.id
""")  # noqa: S608 - constant SQL fragments
# Capture lines (not converted: gross and fees in one currency) of a file imported for an
# account with a fee schedule for their currency, with that currency's rate.
FEE_CANDIDATES = text(f"""
WITH scheduled AS MATERIALIZED (
  SELECT s.id, a.fee_schedule -> s.net_currency AS rate
  FROM pg_temp.settlement_scope_lines AS s
  JOIN settlement_lines AS l ON l.id = s.id
  JOIN settlement_files AS f ON f.id = l.file_id
  JOIN provider_accounts AS a ON a.id = f.provider_account_id
  WHERE s.line_type = :capture AND s.gross_currency = s.net_currency
    AND a.fee_schedule -> s.net_currency IS NOT NULL
)
SELECT l.id, l.gross_minor, l.net_currency, scheduled.rate,
       {" + ".join(f"l.{fee.key}" for fee in FEE_COLUMNS.values())} AS fees_minor,
       {_LINE_EVIDENCE} AS evidence
FROM scheduled JOIN settlement_lines AS l ON l.id = scheduled.id
""")  # noqa: S608 - constant SQL fragments
_HAS_FEE_SCHEDULE = text(
    "SELECT EXISTS (SELECT 1 FROM provider_accounts "
    "WHERE org_id = :org_id AND fee_schedule IS NOT NULL)"
)
# Each payout of the scope with its lines (of its provider and currency whose batch is its
# id, payout rows excepted). One stated only by a webhook, with no line yet, waits.
PAYOUT_SUMS = text("""
SELECT o.id, o.payout_id, o.amount_minor, o.currency, count(l.id) AS line_count,
       coalesce(sum(l.net_minor), 0) AS lines_net_minor
FROM pg_temp.settlement_scope_payouts AS s JOIN settlement_payouts AS o ON o.id = s.id
LEFT JOIN settlement_lines AS l
  ON l.org_id = o.org_id AND l.provider = o.provider AND l.batch_id = o.payout_id
 AND l.net_currency = o.currency AND l.line_type <> 'payout'
GROUP BY o.id
HAVING o.file_id IS NOT NULL OR count(l.id) > 0
""")
# Captured payments of the period, of a provider, overdue, that no line covers.
FIND_UNSETTLED = text(f"""
{_INSERT_FINDINGS}
SELECT 'UnsettledPayment', p.id, NULL, NULL, NULL, p.amount_minor, p.currency, NULL,
       jsonb_build_object('external_id', p.external_id, 'provider', p.provider,
         'status', p.status, 'occurred_at', p.occurred_at,
         'expected_settlement_business_days', CAST(:delay AS int))
FROM payments AS p
WHERE p.org_id = :org AND p.provider = :provider AND p.status = ANY(CAST(:settled AS text[]))
  AND p.occurred_at >= :start AND p.occurred_at < least(:end, :overdue_before)
  AND NOT EXISTS (SELECT 1 FROM settlement_lines AS l WHERE l.payment_id = p.id)
""")  # noqa: S608 - constant SQL fragments

# --- 3. Writing ----------------------------------------------------------------------------

# A settlement finding's subjects: the first four of DISCREPANCY_SUBJECTS (never a bank's).
_SUBJECT_COLUMNS = DISCREPANCY_SUBJECTS[:4]
_SUBJECTS = ", ".join(_SUBJECT_COLUMNS)
OPEN_FINDINGS = text(f"""
WITH found AS MATERIALIZED (
  SELECT recon_uuid7() AS id, f.*, v.severity FROM pg_temp.settlement_findings AS f
  JOIN unnest(CAST(:types AS text[]), CAST(:severities AS text[])) AS v(type, severity)
    USING (type)
), opened AS (
  INSERT INTO reconciliation_discrepancies
    (id, org_id, run_id, type, severity, status, opened_at, {_SUBJECTS},
     amount_minor, currency, difference_minor, provider)
  SELECT id, :org, :run, type, severity, 'open', :now, {_SUBJECTS},
         amount_minor, currency, difference_minor, {discrepancy_provider(_SUBJECT_COLUMNS)}
  FROM found
  {ONE_UNRESOLVED_CONFLICT} DO NOTHING
  RETURNING id, type
), logged AS (
  INSERT INTO reconciliation_action_logs (org_id, discrepancy_id, action, actor, payload)
  SELECT :org, o.id, 'opened', 'system',
         jsonb_build_object('finding', f.evidence, 'source', CAST(:source AS jsonb))
  FROM opened AS o JOIN found AS f ON f.id = o.id
)
SELECT type, count(*) AS opened FROM opened GROUP BY type
""")  # noqa: S608 - constant SQL fragments


@dataclass
class SettlementLegResult:
    """What one pass of the settlement leg checked, found (by type, opened now or
    before), opened and auto-resolved."""

    lines: int = 0
    payouts: int = 0
    found: dict[str, int] = field(default_factory=dict)
    opened: int = 0
    auto_resolved: int = 0


def reconcile_settlement_file(
    *, session: Session, file_id: uuid.UUID, now: datetime
) -> SettlementLegResult:
    """Link an imported file's lines and judge them and their payouts, under the
    organisation's current settings (idempotent; a file that does not exist: nothing).

    UnsettledPayment is the period run's to open; here it is only resolved for the
    payments the file's lines now cover.
    """
    file = session.get(SettlementFile, file_id)
    if file is None:
        return SettlementLegResult()
    return _reconcile(
        session=session,
        org_id=file.org_id,
        run_id=None,
        settings=match_settings(session=session, org_id=file.org_id),
        now=now,
        evidence={"settlement_file_id": str(file_id)},
        scope="file",
        bounds={"file": file_id, "start": now, "end": now},  # no period: no date matches
    )


def reconcile_settlement_period(
    *,
    session: Session,
    org: Organization,
    run_id: uuid.UUID,
    start: datetime,
    end: datetime,
    settings: MatchSettings,
    now: datetime,
) -> SettlementLegResult:
    """The period run's settlement leg: the lines and payouts booked in [start, end), and
    the period's captured payments that no line covers once their settlement delay is over."""
    return _reconcile(
        session=session,
        org_id=org.id,
        run_id=run_id,
        settings=settings,
        now=now,
        evidence={"run_id": str(run_id)},
        scope="period",
        bounds={"file": None, "start": start, "end": end},
        unsettled_of=org,
    )


def _reconcile(
    *,
    session: Session,
    org_id: uuid.UUID,
    run_id: uuid.UUID | None,
    settings: MatchSettings,
    now: datetime,
    evidence: dict[str, Any],
    scope: str,
    bounds: dict[str, Any],
    unsettled_of: Organization | None = None,
) -> SettlementLegResult:
    bounds = bounds | {"org_id": org_id}
    session.execute(LINK_LINES[scope], bounds)
    session.execute(SCOPE_LINES[scope], bounds)
    for statement in (_CREATE_SCOPE_PAYOUTS, _CREATE_FINDINGS):
        session.execute(statement)
    session.execute(SCOPE_PAYOUTS, bounds)
    result = SettlementLegResult(
        lines=_count(session, "settlement_scope_lines"),
        payouts=_count(session, "settlement_scope_payouts"),
    )
    session.execute(FIND_MISSING_INTERNAL, {"types": list(PAYMENT_LINE_TYPES)})
    _find_amount_mismatches(session, settings)
    _find_payout_mismatches(session)
    if session.scalar(_HAS_FEE_SCHEDULE, {"org_id": org_id}):
        _find_fee_mismatches(session)
    if unsettled_of is not None:
        _find_unsettled(session, unsettled_of, bounds["start"], bounds["end"], now)
    result.found = dict(
        session.execute(
            text("SELECT type, count(*) FROM pg_temp.settlement_findings GROUP BY type")
        ).all()
    )
    if settings.auto_fix:
        result.auto_resolved = _resolve_cleared(session, org_id, bounds, now, evidence)
    result.opened = _open_findings(session, org_id, run_id, now, evidence)
    session.execute(_DROP_WORK_TABLES)
    return result


def _count(session: Session, name: str) -> int:
    return session.scalar(text(f"SELECT count(*) FROM pg_temp.{name}"))  # noqa: S608


def _insert_findings(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(
            _FINDINGS.insert(),
            [row | {"evidence": json.dumps(row["evidence"], default=str)} for row in rows],
        )


def _find_amount_mismatches(session: Session, settings: MatchSettings) -> None:
    rows = []
    for line in session.execute(AMOUNT_CANDIDATES, {"capture": CAPTURE}):
        if not settlement_amount_disagrees(
            line.gross_minor, line.gross_currency, line.payment_amount_minor,
            line.payment_currency, settings,
        ):  # fmt: skip
            continue
        same_currency = line.gross_currency == line.payment_currency
        rows.append({
            "type": "SettlementAmountMismatch", "payment_id": line.payment_id,
            "provider_record_id": line.provider_record_id, "settlement_line_id": line.id,
            "settlement_payout_id": None, "amount_minor": abs(line.gross_minor),
            "currency": line.gross_currency or line.payment_currency,
            "difference_minor": (
                line.gross_minor - line.payment_amount_minor if same_currency else None
            ),
            "evidence": line.evidence | {
                "payment_amount_minor": line.payment_amount_minor,
                "payment_currency": line.payment_currency,
            },
        })  # fmt: skip
    _insert_findings(session, rows)


def _find_fee_mismatches(session: Session) -> None:
    rows = []
    for line in session.execute(FEE_CANDIDATES, {"capture": CAPTURE}):
        rate = line.rate
        expected = expected_fee(line.gross_minor, Decimal(rate["percent"]), rate["fixed_minor"])
        excess = fee_excess(line.fees_minor, expected, rate["tolerance_minor"])
        if excess is None:
            continue
        rows.append({
            "type": "FeeMismatch", "payment_id": None, "provider_record_id": None,
            "settlement_line_id": line.id, "settlement_payout_id": None,
            "amount_minor": line.fees_minor, "currency": line.net_currency,
            "difference_minor": excess,
            "evidence": line.evidence | {"expected_fee_minor": expected, "schedule": rate},
        })  # fmt: skip
    _insert_findings(session, rows)


def _find_payout_mismatches(session: Session) -> None:
    rows = []
    for payout in session.execute(PAYOUT_SUMS):
        difference = payout_difference(payout.amount_minor, int(payout.lines_net_minor))
        if difference is None:
            continue
        rows.append({
            "type": "PayoutMismatch", "payment_id": None, "provider_record_id": None,
            "settlement_line_id": None, "settlement_payout_id": payout.id,
            "amount_minor": payout.amount_minor, "currency": payout.currency,
            "difference_minor": difference,
            "evidence": {
                "payout_id": payout.payout_id, "amount_minor": payout.amount_minor,
                "lines_net_minor": int(payout.lines_net_minor), "line_count": payout.line_count,
            },
        })  # fmt: skip
    _insert_findings(session, rows)


def _find_unsettled(
    session: Session, org: Organization, start: datetime, end: datetime, now: datetime
) -> None:
    """UnsettledPayment, for the providers whose settlement reports the organisation
    imports (an organisation that imports none is never told its payments are unsettled)."""
    zone = ZoneInfo(org.timezone)
    today = now.astimezone(zone).date()
    providers = session.scalars(
        select(SettlementFile.provider).where(SettlementFile.org_id == org.id).distinct()
    )
    for provider in providers:
        delay = settlement_delay(org.settlement_delay_days, provider)
        overdue_through = last_overdue_day(today, delay)
        overdue_before = datetime.combine(overdue_through + timedelta(days=1), time.min, zone)
        session.execute(
            FIND_UNSETTLED,
            {
                "org": org.id, "provider": provider, "settled": sorted(SETTLED),
                "start": start, "end": end, "overdue_before": overdue_before.astimezone(UTC),
                "delay": delay,
            },
        )  # fmt: skip


def _open_findings(
    session: Session,
    org_id: uuid.UUID,
    run_id: uuid.UUID | None,
    now: datetime,
    evidence: dict[str, Any],
) -> int:
    rows = session.execute(
        OPEN_FINDINGS,
        {
            "org": org_id, "run": run_id, "now": now, "source": json.dumps(evidence),
            "types": list(SETTLEMENT_TYPES),
            "severities": [SEVERITY[kind] for kind in SETTLEMENT_TYPES],
        },
    ).all()  # fmt: skip
    for kind, count in rows:
        record_discrepancies_opened(kind, count, session=session)
    return sum(count for _, count in rows)


def _resolve_cleared(
    session: Session,
    org_id: uuid.UUID,
    bounds: dict[str, Any],
    now: datetime,
    evidence: dict[str, Any],
) -> int:
    """Resolve the scope's unresolved settlement discrepancies no longer found as they were
    (a payout whose difference changed is resolved here and opened anew with the new one).

    An UnsettledPayment belongs to the scope when a line of the scope covers its payment,
    or (a period) when its payment is of the period.
    """
    discrepancy = ReconciliationDiscrepancy
    covered = exists().where(_SCOPE_LINES.c.payment_id == discrepancy.payment_id)
    of_period = exists().where(
        Payment.id == discrepancy.payment_id,
        Payment.occurred_at >= bounds["start"],
        Payment.occurred_at < bounds["end"],
    )
    in_scope = (
        discrepancy.settlement_line_id.in_(select(_SCOPE_LINES.c.id))
        | discrepancy.settlement_payout_id.in_(select(_SCOPE_PAYOUTS.c.id))
        | ((discrepancy.type == "UnsettledPayment") & (covered | of_period))
    )
    found = exists().where(
        _FINDINGS.c.type == discrepancy.type,
        *(
            getattr(_FINDINGS.c, name).is_not_distinct_from(getattr(discrepancy, name))
            for name in (
                "payment_id", "settlement_line_id", "settlement_payout_id", "amount_minor",
                "difference_minor",
            )
        ),
    )  # fmt: skip
    cleared = session.scalars(
        select(discrepancy)
        .where(
            discrepancy.org_id == org_id,
            discrepancy.type.in_(SETTLEMENT_TYPES),
            discrepancy.status.in_(UNRESOLVED),
            in_scope,
            ~found,
        )
        .order_by(discrepancy.id)
        .with_for_update()
    ).all()
    for row in cleared:
        auto_resolve(session=session, discrepancy=row, now=now, evidence=evidence)
    session.flush()
    return len(cleared)
