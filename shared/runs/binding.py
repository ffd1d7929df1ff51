"""The period run's first step: binding the period's unbound provider records to payments,
set-based, in the matching order (provider reference, merchant reference, then the
heuristic when each side has exactly one candidate), as the incremental path would.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.matching.rules import MatchSettings

# Records this close to the period's edges may belong to its payments.
LOOK_AROUND = timedelta(days=1)

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
