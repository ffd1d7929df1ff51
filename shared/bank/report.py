"""The bank part of the run report's cash section: did the period's payouts reach the
bank, and do the period's statements add up (docs/design.md, "Report")."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.values.money import format_minor

PAYOUT_STATES = ("received", "in_transit", "not_received")
# Unbalanced statements listed by name in the report; the counts cover them all.
MAX_LISTED_STATEMENTS = 50

# A payout expected in the period is received (an entry is linked to it), not received
# (an unresolved PayoutNotReceived), else in transit. Failed and canceled ones are left out.
_PAYOUTS = text(
    "SELECT p.currency, CASE "
    "WHEN EXISTS (SELECT 1 FROM bank_payout_links l WHERE l.settlement_payout_id = p.id) "
    "THEN 'received' "
    "WHEN EXISTS (SELECT 1 FROM reconciliation_discrepancies d "
    "WHERE d.settlement_payout_id = p.id AND d.type = 'PayoutNotReceived' "
    "AND d.status <> 'resolved') THEN 'not_received' ELSE 'in_transit' END AS state, "
    "count(*), sum(p.amount_minor) "
    "FROM settlement_payouts p WHERE p.org_id = :org_id "
    "AND p.status NOT IN ('failed', 'canceled') "
    "AND COALESCE(p.arrival_date, (p.booked_at AT TIME ZONE 'UTC')::date) "
    "BETWEEN :start AND :end GROUP BY 1, 2 ORDER BY 1, 2"
)
_STATEMENTS = text(
    "SELECT s.statement_id, a.masked_identifier, s.currency, s.balanced, "
    "s.closing_balance_minor - (s.opening_balance_minor + s.entries_total_minor) "
    "FROM bank_statements s JOIN bank_accounts a ON a.id = s.account_id "
    "WHERE s.org_id = :org_id AND COALESCE(s.period_end, :start) >= :start "
    "AND COALESCE(s.period_start, :end) <= :end ORDER BY s.period_start, s.id"
)


def bank_cash_report(
    *, session: Session, org_id: uuid.UUID, start: date, end: date
) -> dict[str, Any]:
    """For payouts expected from ``start`` to ``end`` (inclusive): received, in transit and
    not received per currency; for statements covering those days: how many add up, how
    many do not (listed with closing − (opening + entries)), how many lack a balance."""
    window = {"org_id": org_id, "start": start, "end": end}
    payouts: dict[str, dict[str, dict[str, int]]] = {}
    for currency, state, count, amount in session.execute(_PAYOUTS, window):
        figures = payouts.setdefault(
            currency, {name: {"count": 0, "amount_minor": 0} for name in PAYOUT_STATES}
        )
        figures[state] = {"count": count, "amount_minor": int(amount)}
    checks = {"count": 0, "balanced": 0, "unbalanced": 0, "without_balances": 0}
    unbalanced: list[dict[str, Any]] = []
    for statement_id, account, currency, balanced, difference in session.execute(
        _STATEMENTS, window
    ):
        checks["count"] += 1
        if balanced is None:
            checks["without_balances"] += 1
        elif balanced:
            checks["balanced"] += 1
        else:
            checks["unbalanced"] += 1
            if len(unbalanced) < MAX_LISTED_STATEMENTS:
                unbalanced.append({
                    "statement_id": statement_id, "account": account, "currency": currency,
                    "difference_minor": difference,
                })  # fmt: skip
    return {"payouts": payouts, "statements": {**checks, "unbalanced_statements": unbalanced}}


def render_bank_markdown(bank: dict[str, Any]) -> list[str]:
    """The bank part of the cash section as Markdown lines."""
    lines = [
        "## Cash: payouts at the bank",
        "",
        "| currency | received | in transit | not received |",
        "| --- | ---: | ---: | ---: |",
    ]
    for currency, figures in bank["payouts"].items():
        cells = [
            f"{figures[state]['count']} · {format_minor(figures[state]['amount_minor'], currency)}"
            for state in PAYOUT_STATES
        ]
        lines.append(f"| {currency} | {' | '.join(cells)} |")
    if not bank["payouts"]:
        lines.append("| — | 0 | 0 | 0 |")
    checks = bank["statements"]
    lines += [
        "",
        f"**Bank statements: {checks['count']}** · {checks['balanced']} add up · "
        f"{checks['unbalanced']} do not · {checks['without_balances']} without balances",
        "",
    ]
    if checks["unbalanced_statements"]:
        lines += ["| account | statement | difference |", "| --- | --- | ---: |"]
        lines += [
            f"| {item['account']} | {item['statement_id']} | "
            f"{format_minor(item['difference_minor'], item['currency'])} |"
            for item in checks["unbalanced_statements"]
        ]
        lines.append("")
    return lines
