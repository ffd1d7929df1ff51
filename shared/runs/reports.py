"""Run reports: the same figures as JSON (stored, served) and as Markdown (read, mailed)."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.bank.report import bank_cash_report, render_bank_markdown
from shared.matching.rules import DISPUTE_OPENED, SETTLED, SEVERITY
from shared.models import (
    MATCHING_DISCREPANCY_TYPES,
    SEVERITIES,
    Payment,
    ProviderRecord,
    ReconciliationRun,
)
from shared.runs.period import FoundTotal
from shared.settlements.cash_report import cash_figures
from shared.settlements.matching import SETTLEMENT_TYPES, SettlementLegResult
from shared.values.money import format_minor

# How a run records its matched set (docs/design.md, "Period runs").
MATCHED_SET_RECORDING = "exceptions + fingerprint"


def _totals(session: Session, model, org_id: uuid.UUID, start: datetime, end: datetime) -> dict:
    """{"succeeded"|"refunded": {CUR: {"count", "amount_minor"}}} of a table for the period,
    in one pass over its rows."""
    settled = model.status.in_(SETTLED)
    refunded = model.amount_refunded_minor > 0
    totals: dict[str, dict[str, dict[str, int]]] = {"succeeded": {}, "refunded": {}}
    for currency, settled_count, settled_amount, refunded_count, refunded_amount in session.execute(
        select(
            model.currency,
            func.count().filter(settled),
            func.sum(model.amount_minor).filter(settled),
            func.count().filter(refunded),
            func.sum(model.amount_refunded_minor).filter(refunded),
        )
        .where(model.org_id == org_id, model.occurred_at >= start, model.occurred_at < end)
        .group_by(model.currency)
    ):
        if settled_count:
            totals["succeeded"][currency] = {
                "count": settled_count,
                "amount_minor": int(settled_amount or 0),
            }
        if refunded_count:
            totals["refunded"][currency] = {
                "count": refunded_count,
                "amount_minor": int(refunded_amount),
            }
    return totals


def build_report(
    *,
    session: Session,
    run: ReconciliationRun,
    org_name: str,
    start: datetime,
    end: datetime,
    found: list[FoundTotal],
    matched: int,
    items: int,
    items_written: int,
    settlement: SettlementLegResult,
    timezone: str,
) -> dict[str, Any]:
    """The report of a finished run (docs/design.md, "Report"): every finding of its period,
    from the run's totals by type and currency, and its cash section (the settlement
    leg's findings by type and the period's settled figures per currency)."""
    by_type: Counter[str] = Counter()
    by_severity: Counter[str] = Counter()
    mismatch: dict[str, int] = defaultdict(int)
    unmatched: dict[str, dict[str, int]] = {
        "internal": defaultdict(int),
        "provider": defaultdict(int),
    }
    disputes: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    for total in found:
        by_type[total.type] += total.count
        by_severity[SEVERITY[total.type]] += total.count
        if total.type == "AmountMismatch":
            mismatch[total.currency] += total.difference_minor
        elif total.type == "MissingProviderRecord":
            unmatched["internal"][total.currency] += total.amount_minor
        elif total.type == "MissingInternalRecord":
            unmatched["provider"][total.currency] += total.amount_minor
        elif total.type == DISPUTE_OPENED:
            disputes[total.currency][total.dispute_status] = {
                "count": total.count,
                "amount_minor": total.amount_minor,
            }
    return {
        "matched_percent": round(100 * matched / items, 2) if items else 100.0,
        "discrepancies_by_type": {
            kind: by_type.get(kind, 0) for kind in MATCHING_DISCREPANCY_TYPES
        },
        "discrepancies_by_severity": {level: by_severity.get(level, 0) for level in SEVERITIES},
        "mismatch_amount_by_currency": dict(sorted(mismatch.items())),
        "unmatched_amount_by_currency": {
            side: dict(sorted(amounts.items())) for side, amounts in unmatched.items()
        },
        "disputes": {
            "count": by_type[DISPUTE_OPENED],
            "by_currency": {
                currency: dict(sorted(statuses.items()))
                for currency, statuses in sorted(disputes.items())
            },
        },
        "matched_set": {
            "recorded_as": MATCHED_SET_RECORDING,
            "items_written": items_written,
            "pairs": run.matched_pairs,
            "digest": run.matched_digest,
        },
        "totals": {
            "internal": _totals(session, Payment, run.org_id, start, end),
            "provider": _totals(session, ProviderRecord, run.org_id, start, end),
        },
        "cash": {
            "bank": bank_cash_report(
                session=session, org_id=run.org_id, start=run.period_start, end=run.period_end
            ),
            "settlements": {
                "discrepancies_by_type": {
                    kind: settlement.found.get(kind, 0) for kind in SETTLEMENT_TYPES
                },
                "by_currency": cash_figures(
                    session=session,
                    org_id=run.org_id,
                    start=start,
                    end=end,
                    as_of=run.period_end,
                    zone=timezone,
                ),
            },
        },
        "run": {
            "id": str(run.id),
            "org_id": str(run.org_id),
            "organisation": org_name,
            "period_start": run.period_start.isoformat(),
            "period_end": run.period_end.isoformat(),
            "triggered_by": run.triggered_by,
            "is_verification_run": run.is_verification_run,
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": None,  # set by finish_report, once the report is built
            "duration_seconds": None,
            "counts": {"items": items, "matched": matched},
        },
    }


def finish_report(report: dict[str, Any], run: ReconciliationRun) -> dict[str, Any]:
    """``report`` with the run's ``finished_at`` and the duration up to it: the run ends
    after its report is built, so the duration a reader sees covers the whole run."""
    finished, started = run.finished_at, run.started_at
    duration = round((finished - started).total_seconds(), 3) if finished and started else None
    timing = {"finished_at": finished.isoformat() if finished else None,
              "duration_seconds": duration}  # fmt: skip
    return {**report, "run": {**report["run"], **timing}}


def _money_table(title: str, amounts: dict[str, int]) -> list[str]:
    lines = [f"**{title}**", "", "| currency | amount |", "| --- | ---: |"]
    lines += [f"| {cur} | {format_minor(value, cur)} |" for cur, value in amounts.items()]
    if not amounts:
        lines.append("| — | 0 |")
    return [*lines, ""]


def _disputes_table(disputes: dict[str, Any]) -> list[str]:
    lines = [
        f"## Disputes ({disputes['count']})",
        "",
        "| currency | status | count | amount |",
        "| --- | --- | ---: | ---: |",
    ]
    for currency, statuses in disputes["by_currency"].items():
        for status, figures in statuses.items():
            amount = format_minor(figures["amount_minor"], currency)
            lines.append(f"| {currency} | {status} | {figures['count']} | {amount} |")
    if not disputes["by_currency"]:
        lines.append("| — | — | 0 | 0 |")
    return [*lines, ""]


def _matched_set_lines(matched_set: dict[str, Any]) -> list[str]:
    return [
        f"Matched set recorded as {matched_set['recorded_as']}: "
        f"{matched_set['items_written']} item rows written; "
        f"{matched_set['pairs']} bound pairs, digest `{matched_set['digest']}` "
        "(`recon run verify RUN_ID` checks it still holds)",
        "",
    ]


def _cash_tables(cash: dict[str, Any]) -> list[str]:
    lines = [
        "## Cash: settlements",
        "",
        "| discrepancy | count |",
        "| --- | ---: |",
        *[f"| {kind} | {count} |" for kind, count in cash["discrepancies_by_type"].items()],
        "",
        "| currency | lines | gross settled | fees | other | net | payouts | paid out |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    ageing = ["| currency | age (days) | unsettled payments | amount |",
              "| --- | --- | ---: | ---: |"]  # fmt: skip
    fees = ["| currency | fee | amount |", "| --- | --- | ---: |"]
    for currency, figures in cash["by_currency"].items():
        fee_total, payouts = sum(figures["fees_minor"].values()), figures["payouts"]
        amounts = [
            format_minor(value, currency)
            for value in (figures["gross_settled_minor"], fee_total, figures["other_minor"],
                          figures["net_minor"])
        ]  # fmt: skip
        paid_out = format_minor(payouts["amount_minor"], currency)
        lines.append(
            f"| {currency} | {figures['lines']} | {' | '.join(amounts)} "
            f"| {payouts['count']} | {paid_out} |"
        )
        fees += [
            f"| {currency} | {name} | {format_minor(amount, currency)} |"
            for name, amount in figures["fees_minor"].items()
            if amount
        ]
        ageing += [
            f"| {currency} | {label} | {bucket['count']} "
            f"| {format_minor(bucket['amount_minor'], currency)} |"
            for label, bucket in figures["unsettled_ageing"].items()
        ]
    if not cash["by_currency"]:
        lines.append("| — | 0 | 0 | 0 | 0 | 0 | 0 | 0 |")
    return [*lines, "", "**Fees by component**", "", *fees, "",
            "**Ageing of unsettled payments**", "", *ageing, ""]  # fmt: skip


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables; amounts formatted with each currency's exponent."""
    run = report["run"]
    mismatch = report["mismatch_amount_by_currency"]
    unmatched = report["unmatched_amount_by_currency"]
    lines = [
        f"# Reconciliation report — {run['organisation']}",
        "",
        f"Period **{run['period_start']} → {run['period_end']}** · triggered by "
        f"{run['triggered_by']} · finished {run['finished_at']} "
        f"({run['duration_seconds']} s)",
        "",
        f"**Matched: {report['matched_percent']:.2f} %** of {run['counts']['items']} items",
        "",
        *_matched_set_lines(report["matched_set"]),
        "## Discrepancies by type",
        "",
        "| type | count |",
        "| --- | ---: |",
        *[f"| {kind} | {count} |" for kind, count in report["discrepancies_by_type"].items()],
        "",
        "## Discrepancies by severity",
        "",
        "| severity | count |",
        "| --- | ---: |",
        *[f"| {level} | {count} |" for level, count in report["discrepancies_by_severity"].items()],
        "",
        "## Amounts at stake",
        "",
        *_money_table("Amount mismatches (sum of differences)", mismatch),
        *_money_table("Internal payments with no provider record", unmatched["internal"]),
        *_money_table("Provider records with no internal payment", unmatched["provider"]),
        *_disputes_table(report["disputes"]),
        *_cash_tables(report["cash"]["settlements"]),
        "## Period totals",
        "",
        "| side | kind | currency | count | amount |",
        "| --- | --- | --- | ---: | ---: |",
    ]  # fmt: skip
    for side, kinds in report["totals"].items():
        for kind, currencies in kinds.items():
            for currency, figures in sorted(currencies.items()):
                amount = format_minor(figures["amount_minor"], currency)
                lines.append(f"| {side} | {kind} | {currency} | {figures['count']} | {amount} |")
    lines += ["", *render_bank_markdown(report["cash"]["bank"])]
    return "\n".join(lines) + "\n"
