"""The period run: a whole organisation's period re-checked in the database, set-based.

Candidate pairs are found with SQL joins over the period (plus a look-around window for
records near its edges) in the matching order of shared/matching.py, and recorded on
the provider records as the incremental path does. Verdicts then come from the same
pure rule functions, over payments read in keyset pages (never the whole period at
once). Items are written by COPY; each finding then goes through ``open_discrepancy``
(one ``INSERT … ON CONFLICT DO NOTHING`` each — batching them is a known next step).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shared.matching import (
    Finding,
    MatchSettings,
    item_outcome,
    judge_customer_duplicate,
    judge_group,
    judge_unmatched_record,
    primary_record,
)
from shared.models import Payment, ProviderRecord, ReconciliationDiscrepancy
from shared.reconcile import (
    UNRESOLVED,
    auto_resolve,
    open_discrepancy,
    payment_facts,
    record_facts,
)

PAGE = 5_000
LOOK_AROUND = timedelta(days=1)
ITEM_COLUMNS = (
    "id", "org_id", "run_id", "payment_id", "provider_record_id", "outcome", "match_method",
    "amount_difference_minor",
)  # fmt: skip


@dataclass
class PeriodResult:
    """What a period run checked and found (every finding, opened now or before)."""

    payments_checked: int = 0
    provider_records_checked: int = 0
    matched: int = 0
    items: int = 0
    opened: int = 0
    auto_resolved: int = 0
    findings: list[Finding] = field(default_factory=list)


# By reference, in the matching order; the join column is a constant of this module.
_BIND_BY_REFERENCE = """
UPDATE provider_records AS r
SET payment_id = p.id, match_method = '{method}', matched_at = :now
FROM payments AS p
WHERE r.org_id = :org AND p.org_id = :org AND r.payment_id IS NULL
  AND p.provider = r.provider AND {join}
  AND p.occurred_at >= :start AND p.occurred_at < :end
  AND r.occurred_at >= :start - :around AND r.occurred_at < :end + :around
"""
BIND_BY_REFERENCES = [
    text(_BIND_BY_REFERENCE.format(method=method, join=join))
    for method, join in (
        ("provider_reference", "p.provider_reference = r.provider_reference"),
        ("merchant_reference", "p.external_id = r.merchant_reference"),
    )
]

# The heuristic accepts a pair only when each side has exactly one candidate: among the
# unmatched records near the period and every unmatched payment of the organisation.
BIND_BY_HEURISTIC = text("""
WITH candidates AS (
  SELECT p.id AS payment_id, r.id AS record_id, p.occurred_at AS paid_at
  FROM provider_records AS r
  JOIN payments AS p
    ON p.org_id = r.org_id AND p.provider = r.provider AND p.currency = r.currency
   AND p.amount_minor = r.amount_minor
   AND p.occurred_at BETWEEN r.occurred_at - :window AND r.occurred_at + :window
  WHERE r.org_id = :org AND r.payment_id IS NULL
    AND r.occurred_at >= :start - :around AND r.occurred_at < :end + :around
    AND NOT EXISTS (SELECT 1 FROM provider_records AS b WHERE b.payment_id = p.id)
), counted AS (
  SELECT payment_id, record_id, paid_at,
         count(*) OVER (PARTITION BY payment_id) AS records_for_payment,
         count(*) OVER (PARTITION BY record_id) AS payments_for_record
  FROM candidates
)
UPDATE provider_records AS r
SET payment_id = c.payment_id, match_method = 'heuristic', matched_at = :now
FROM counted AS c
WHERE r.id = c.record_id AND c.records_for_payment = 1 AND c.payments_for_record = 1
  AND c.paid_at >= :start AND c.paid_at < :end
""")


def bind_period(
    *,
    session: Session,
    org_id: uuid.UUID,
    start: datetime,
    end: datetime,
    settings: MatchSettings,
    now: datetime,
) -> None:
    """Match the period's unmatched records: provider reference, merchant reference, heuristic."""
    params = {"org": org_id, "start": start, "end": end, "around": LOOK_AROUND, "now": now}
    for statement in BIND_BY_REFERENCES:
        session.execute(statement, params)
    session.execute(BIND_BY_HEURISTIC, params | {"window": settings.heuristic_window})


def _pages(session: Session, model, *conditions):
    """Rows of ``model`` matching ``conditions`` in pages of PAGE, by id (keyset)."""
    last = None
    while True:
        query = select(model).where(*conditions).order_by(model.id).limit(PAGE)
        if last is not None:
            query = query.where(model.id > last)
        page = list(session.scalars(query))
        if not page:
            return
        yield page
        last = page[-1].id
        _forget(session, page)


def _forget(session: Session, rows: list) -> None:
    # Keep memory flat across pages; only the page's own rows, never the run being written.
    for row in rows:
        session.expunge(row)


def _records_of(session: Session, payment_ids: list[uuid.UUID]) -> dict[uuid.UUID, list]:
    groups: dict[uuid.UUID, list] = defaultdict(list)
    records = list(
        session.scalars(select(ProviderRecord).where(ProviderRecord.payment_id.in_(payment_ids)))
    )
    for record in records:
        groups[record.payment_id].append(record_facts(record))
    _forget(session, records)
    return groups


def _customer_siblings(
    session: Session, org_id: uuid.UUID, start: datetime, end: datetime, window: timedelta
) -> dict[uuid.UUID, list]:
    """For each record of the period that may repeat another charge, its earlier candidates."""
    rows = session.execute(
        text("""
        SELECT later.id AS record_id, earlier.id AS sibling_id
        FROM provider_records later
        JOIN provider_records earlier
          ON earlier.org_id = later.org_id AND earlier.customer_ref = later.customer_ref
         AND earlier.currency = later.currency AND earlier.amount_minor = later.amount_minor
         AND earlier.id <> later.id
         AND earlier.occurred_at BETWEEN later.occurred_at - :window AND later.occurred_at
        WHERE later.org_id = :org AND later.customer_ref IS NOT NULL
          AND later.occurred_at >= :start AND later.occurred_at < :end
        """),
        {"org": org_id, "start": start, "end": end, "window": window},
    ).all()
    ids = {row.record_id for row in rows} | {row.sibling_id for row in rows}
    facts = (
        {
            r.id: record_facts(r)
            for r in session.scalars(select(ProviderRecord).where(ProviderRecord.id.in_(ids)))
        }
        if ids
        else {}
    )
    siblings: dict[uuid.UUID, list] = defaultdict(list)
    for row in rows:
        siblings[row.record_id].append(facts[row.sibling_id])
    return {record_id: [facts[record_id], others] for record_id, others in siblings.items()}


def _copy_items(session: Session, rows: list[tuple]) -> None:
    if not rows:
        return
    columns = ", ".join(ITEM_COLUMNS)
    raw = session.connection().connection.driver_connection
    with raw.cursor().copy(f"COPY reconciliation_items ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def reconcile_period(
    *,
    session: Session,
    run_id: uuid.UUID,
    org_id: uuid.UUID,
    start: datetime,
    end: datetime,
    settings: MatchSettings,
    now: datetime,
    verify_open: bool = False,
) -> PeriodResult:
    """Re-check one organisation's period [start, end); every finding is opened or kept.

    With ``verify_open`` (a verification run with auto-fix), unresolved discrepancies of
    the period that the run no longer finds are resolved as ``system``.
    """
    result = PeriodResult()
    evidence = {"run_id": str(run_id)}
    bind_period(session=session, org_id=org_id, start=start, end=end, settings=settings, now=now)
    session.flush()
    customer = _customer_siblings(session, org_id, start, end, settings.duplicate_window)
    in_period = (Payment.org_id == org_id, Payment.occurred_at >= start, Payment.occurred_at < end)
    for payments in _pages(session, Payment, *in_period):
        groups = _records_of(session, [payment.id for payment in payments])
        items = []
        for payment in payments:
            facts = payment_facts(payment)
            records = groups.get(payment.id, [])
            findings = judge_group(facts, records, settings, now)
            for record in records:
                if record.id in customer:
                    subject, siblings = customer[record.id]
                    findings += judge_customer_duplicate(subject, siblings, settings)
            result.payments_checked += 1
            result.provider_records_checked += len(records)
            result.findings += findings
            if records:
                primary = primary_record(records)
                outcome = item_outcome(findings)
                result.matched += outcome == "matched"
                difference = next(
                    (f.difference_minor for f in findings if f.type == "AmountMismatch"), None
                )
                items.append(
                    (
                        uuid.uuid4(),
                        org_id,
                        run_id,
                        payment.id,
                        primary.id,
                        outcome,
                        primary.match_method,
                        difference,
                    )
                )
            elif findings:
                items.append(
                    (uuid.uuid4(), org_id, run_id, payment.id, None, "missing_provider", None, None)
                )
        _copy_items(session, items)
        result.items += len(items)
    unmatched = (
        ProviderRecord.org_id == org_id,
        ProviderRecord.payment_id.is_(None),
        ProviderRecord.occurred_at >= start,
        ProviderRecord.occurred_at < end,
    )
    for records in _pages(session, ProviderRecord, *unmatched):
        items = []
        for record in records:
            facts = record_facts(record)
            findings = judge_unmatched_record(facts, settings, now)
            if record.id in customer:
                subject, siblings = customer[record.id]
                findings += judge_customer_duplicate(subject, siblings, settings)
            result.provider_records_checked += 1
            result.findings += findings
            if any(f.type == "MissingInternalRecord" for f in findings):
                items.append(
                    (uuid.uuid4(), org_id, run_id, None, record.id, "missing_internal", None, None)
                )
        _copy_items(session, items)
        result.items += len(items)
    result.opened = sum(
        open_discrepancy(
            session=session,
            org_id=org_id,
            finding=finding,
            now=now,
            evidence=evidence,
            run_id=run_id,
        )
        for finding in result.findings
    )
    if verify_open:
        result.auto_resolved = _resolve_cleared(session, org_id, start, end, result, now, evidence)
    return result


def _resolve_cleared(
    session: Session,
    org_id: uuid.UUID,
    start: datetime,
    end: datetime,
    result: PeriodResult,
    now: datetime,
    evidence: dict[str, Any],
) -> int:
    found = {finding.key for finding in result.findings}
    in_period = ReconciliationDiscrepancy.payment_id.in_(
        select(Payment.id).where(
            Payment.org_id == org_id, Payment.occurred_at >= start, Payment.occurred_at < end
        )
    ) | ReconciliationDiscrepancy.provider_record_id.in_(
        select(ProviderRecord.id).where(
            ProviderRecord.org_id == org_id,
            ProviderRecord.occurred_at >= start,
            ProviderRecord.occurred_at < end,
        )
    )
    resolved = 0
    for discrepancy in session.scalars(
        select(ReconciliationDiscrepancy)
        .where(
            ReconciliationDiscrepancy.org_id == org_id,
            ReconciliationDiscrepancy.status.in_(UNRESOLVED),
            in_period,
        )
        .with_for_update()
    ):
        if (discrepancy.type, discrepancy.payment_id, discrepancy.provider_record_id) not in found:
            auto_resolve(session=session, discrepancy=discrepancy, now=now, evidence=evidence)
            resolved += 1
    return resolved
