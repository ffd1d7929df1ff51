"""The figures of a run report's cash section (docs/design.md, "Report"), per currency.

Settled figures are in the settlement (net) currency of the lines booked in the period,
payout rows excepted: gross settled (the net plus the fees of the payments' lines and
their reversals: their gross as the provider converted it), fees by component (with the
fee rows as ``fee_lines``), other movements (adjustments, corrections, invoices,
transfers) and net, so that net = gross settled − fees + other. Payouts are those booked
in the period. The ageing counts the captured payments that no settlement line covers, as
of the period's last day, by calendar days since the payment (shared/settlements/rules.py,
AGEING_BUCKETS), for the providers whose settlement reports the organisation imports.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.matching.rules import SETTLED
from shared.settlements.listing import FEE_COLUMNS
from shared.settlements.rules import (
    AGEING_BUCKETS,
    FEE_LINE_TYPE,
    SETTLED_LINE_TYPES,
    ageing_bucket,
)

FEE_COMPONENTS = (*FEE_COLUMNS, "fee_lines")

_FEES = ", ".join(f"sum({fee.key}) AS {name}" for name, fee in FEE_COLUMNS.items())
_ALL_FEES = " + ".join(fee.key for fee in FEE_COLUMNS.values())
_SETTLED = "line_type = ANY(CAST(:settled_types AS text[]))"
SETTLED_SUMS = text(f"""
SELECT net_currency AS currency, count(*) AS lines, sum(net_minor) AS net_minor, {_FEES},
       coalesce(sum(net_minor + {_ALL_FEES}) FILTER (WHERE {_SETTLED}), 0) AS gross_minor,
       coalesce(-sum(net_minor) FILTER (WHERE line_type = :fee_type), 0) AS fee_lines,
       coalesce(sum(net_minor) FILTER (WHERE NOT {_SETTLED} AND line_type <> :fee_type), 0)
         AS other_minor
FROM settlement_lines
WHERE org_id = :org AND booked_at >= :start AND booked_at < :end AND line_type <> 'payout'
GROUP BY net_currency
""")  # noqa: S608 - constant column names
PAYOUT_SUMS = text("""
SELECT currency, count(*) AS count, sum(amount_minor) AS amount_minor
FROM settlement_payouts
WHERE org_id = :org AND booked_at >= :start AND booked_at < :end
GROUP BY currency
""")
UNSETTLED_AGES = text("""
SELECT p.currency, :as_of - CAST(p.occurred_at AT TIME ZONE :zone AS date) AS age_days,
       count(*) AS count, sum(p.amount_minor) AS amount_minor
FROM payments AS p
WHERE p.org_id = :org AND p.occurred_at < :end AND p.status = ANY(CAST(:settled AS text[]))
  AND p.provider IN (SELECT provider FROM settlement_files WHERE org_id = :org)
  AND NOT EXISTS (SELECT 1 FROM settlement_lines AS l WHERE l.payment_id = p.id)
GROUP BY p.currency, age_days
""")


def _currency_figures() -> dict[str, Any]:
    return {
        "lines": 0,
        "gross_settled_minor": 0,
        "fees_minor": dict.fromkeys(FEE_COMPONENTS, 0),
        "other_minor": 0,
        "net_minor": 0,
        "payouts": {"count": 0, "amount_minor": 0},
        "unsettled_ageing": {
            label: {"count": 0, "amount_minor": 0} for label, _, _ in AGEING_BUCKETS
        },
    }


def cash_figures(
    *,
    session: Session,
    org_id: uuid.UUID,
    start: datetime,
    end: datetime,
    as_of: date,
    zone: str,
) -> dict[str, dict[str, Any]]:
    """``{CUR: figures}`` of the period [start, end): settled, fees by component, net,
    payouts, and the ageing of unsettled payments on ``as_of`` (in time zone ``zone``)."""
    figures: dict[str, dict[str, Any]] = defaultdict(_currency_figures)
    bounds = {"org": org_id, "start": start, "end": end}
    types = {"settled_types": list(SETTLED_LINE_TYPES), "fee_type": FEE_LINE_TYPE}
    for row in session.execute(SETTLED_SUMS, bounds | types).mappings():
        currency = figures[row["currency"]]
        currency["lines"] = row["lines"]
        currency["gross_settled_minor"] = int(row["gross_minor"])
        currency["fees_minor"] = {name: int(row[name]) for name in FEE_COMPONENTS}
        currency["other_minor"] = int(row["other_minor"])
        currency["net_minor"] = int(row["net_minor"])
    for row in session.execute(PAYOUT_SUMS, bounds):
        figures[row.currency]["payouts"] = {
            "count": row.count,
            "amount_minor": int(row.amount_minor),
        }
    ages = session.execute(
        UNSETTLED_AGES,
        bounds | {"as_of": as_of, "zone": zone, "settled": sorted(SETTLED)},
    )
    for row in ages:
        bucket = figures[row.currency]["unsettled_ageing"][ageing_bucket(row.age_days)]
        bucket["count"] += row.count
        bucket["amount_minor"] += int(row.amount_minor)
    return dict(sorted(figures.items()))
