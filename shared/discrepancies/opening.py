"""Discrepancies opened set-based, each with its ``opened`` action-log entry, and many
auto-resolved at once: for the period run (staged with COPY, opened at its end), disputes,
settlements and bank statements. The transitions are the lifecycle's
(``shared.discrepancies.lifecycle``); the partial unique index on unresolved
discrepancies (``ONE_UNRESOLVED_CONFLICT``) makes a finding that already has one open
nothing.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.discrepancies.lifecycle import (
    AUTO_RESOLUTION,
    AUTO_RESOLUTION_REASON,
    INSERT_LOGS,
    LOG_COLUMNS,
    OPENED,
    RESOLVE_DISCREPANCIES,
    SYSTEM,
    auto_resolved_payload,
    dispute_columns,
    opened_payload,
)
from shared.matching.rules import Finding
from shared.models import (
    CASH_SUBJECTS,
    ONE_UNRESOLVED_CONFLICT,
    ReconciliationDiscrepancy,
    discrepancy_provider,
)
from shared.platform.bulk import array_parameters, column_arrays, expire_rewritten
from shared.platform.ids import new_id
from shared.platform.metrics import record_discrepancies_opened

_OPEN_COLUMNS = {
    "id": "uuid",
    "type": "text",
    "severity": "text",
    "payment_id": "uuid",
    "provider_record_id": "uuid",
    **dict.fromkeys(CASH_SUBJECTS, "uuid"),
    "amount_minor": "bigint",
    "currency": "text",
    "difference_minor": "bigint",
    **dict.fromkeys(("dispute_status", "dispute_provider_status", "dispute_reason"), "text"),
    "dispute_evidence_due_at": "timestamptz",
}
# A finding that already has an unresolved discrepancy opens nothing.
_OPEN_ONCE = f"{ONE_UNRESOLVED_CONFLICT} DO NOTHING"
_OPENED_COLUMNS = f"org_id, run_id, status, opened_at, {', '.join(_OPEN_COLUMNS)}, provider"
_OPEN_DISCREPANCIES = text(
    f"INSERT INTO reconciliation_discrepancies ({_OPENED_COLUMNS}) "  # noqa: S608
    f"SELECT :org_id, :run_id, 'open', :now, v.*, {discrepancy_provider(prefix='v.')} "
    f"FROM unnest({array_parameters(_OPEN_COLUMNS)}) AS v({', '.join(_OPEN_COLUMNS)}) "
    f"{_OPEN_ONCE} RETURNING id"
)

# Openings staged by a period run (COPY, batch by batch), opened at its end set-based.
STAGED_OPENINGS = "pg_temp.staged_openings"
STAGED_OPENING_COLUMNS = (*_OPEN_COLUMNS, "payload")
CREATE_STAGED_OPENINGS = text(
    "CREATE TEMPORARY TABLE staged_openings ("
    + ", ".join(f"{name} {kind}" for name, kind in _OPEN_COLUMNS.items())
    + ", payload jsonb NOT NULL) ON COMMIT DROP"
)
# One INSERT … SELECT each, in one statement: the log entries of the rows written (the
# foreign key is checked at the statement's end, once both are in).
_OPEN_STAGED = text(
    "WITH opened AS ("  # noqa: S608
    f"INSERT INTO reconciliation_discrepancies ({_OPENED_COLUMNS}) "
    f"SELECT :org_id, :run_id, 'open', :now, {', '.join(_OPEN_COLUMNS)}, "
    f"{discrepancy_provider()} FROM {STAGED_OPENINGS} ORDER BY id {_OPEN_ONCE} "
    "RETURNING id, type"
    "), logged AS ("
    "INSERT INTO reconciliation_action_logs (org_id, discrepancy_id, action, actor, payload) "
    f"SELECT :org_id, s.id, '{OPENED}', '{SYSTEM}', s.payload "
    f"FROM {STAGED_OPENINGS} AS s JOIN opened USING (id)"
    ") SELECT type, count(*) AS count FROM opened GROUP BY type"
)


def _opening_row(key: uuid.UUID, f: Finding) -> tuple:
    """The discrepancy a finding opens, in ``_OPEN_COLUMNS`` order."""
    return (
        key, f.type, f.severity, f.payment_id, f.provider_record_id,
        *(getattr(f, subject) for subject in CASH_SUBJECTS), f.amount_minor, f.currency,
        f.difference_minor, *dispute_columns(f.dispute).values(),
    )  # fmt: skip


def staged_opening(finding: Finding, evidence: dict[str, Any]) -> tuple:
    """The row of ``STAGED_OPENINGS`` (in ``STAGED_OPENING_COLUMNS`` order) of a finding."""
    return (*_opening_row(new_id(), finding), json.dumps(opened_payload(finding, evidence)))


def open_staged_discrepancies(
    *, session: Session, org_id: uuid.UUID, run_id: uuid.UUID, now: datetime
) -> int:
    """Open a discrepancy for each staged finding that has no unresolved one yet, with its
    ``opened`` action-log entry; how many opened."""
    opened = session.execute(_OPEN_STAGED, {"org_id": org_id, "run_id": run_id, "now": now})
    total = 0
    for discrepancy_type, count in opened:
        record_discrepancies_opened(discrepancy_type, count, session=session)
        total += count
    return total


def open_discrepancies(
    *,
    session: Session,
    org_id: uuid.UUID,
    findings: Sequence[Finding],
    now: datetime,
    evidence: dict[str, Any],
    run_id: uuid.UUID | None = None,
) -> int:
    """Open a discrepancy for each finding that has no unresolved one yet, with its
    ``opened`` action-log entry: one multi-row statement each. Returns how many opened."""
    if not findings:
        return 0
    by_id = {new_id(): finding for finding in findings}
    rows = [_opening_row(key, finding) for key, finding in by_id.items()]
    opened = list(
        session.scalars(
            _OPEN_DISCREPANCIES,
            {"org_id": org_id, "run_id": run_id, "now": now} | column_arrays(rows, _OPEN_COLUMNS),
        )
    )
    if not opened:
        return 0
    entries = [
        (org_id, key, OPENED, json.dumps(opened_payload(by_id[key], evidence))) for key in opened
    ]
    session.execute(INSERT_LOGS, column_arrays(entries, LOG_COLUMNS))
    for discrepancy_type, count in Counter(by_id[key].type for key in opened).items():
        record_discrepancies_opened(discrepancy_type, count, session=session)
    return len(opened)


def auto_resolve_many(
    *,
    session: Session,
    org_id: uuid.UUID,
    resolved: dict[uuid.UUID, dict[str, Any]],
    now: datetime,
) -> int:
    """Resolve as ``system`` the unresolved discrepancies ``resolved`` names (id → evidence
    of why the condition no longer holds), each with its ``auto_resolved`` entry: the
    statements the batch writes with. The caller holds their rows locked. Returns how many."""
    if not resolved:
        return 0
    session.execute(
        RESOLVE_DISCREPANCIES,
        {"ids": list(resolved), "resolution": AUTO_RESOLUTION, "reason": AUTO_RESOLUTION_REASON,
         "now": now},
    )  # fmt: skip
    entries = [
        (org_id, key, AUTO_RESOLUTION, json.dumps(auto_resolved_payload(evidence)))
        for key, evidence in resolved.items()
    ]
    session.execute(INSERT_LOGS, column_arrays(entries, LOG_COLUMNS))
    expire_rewritten(session, ReconciliationDiscrepancy, list(resolved))
    return len(resolved)
