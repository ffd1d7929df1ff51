"""The discrepancy lifecycle: opening, auto-resolving, and their action-log entries.

The incremental engine (a batch's :class:`DiscrepancyChanges`), the period run
(:func:`open_discrepancies`, :func:`auto_resolve`) and triage all change discrepancies
through this module, so each transition and the log entry it writes are defined once.
The partial unique index on unresolved discrepancies keeps at most one per (org, type,
payment, record) whatever the writers race on: an insert that meets one does nothing.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.matching.rules import Finding
from shared.models import ReconciliationActionLog, ReconciliationDiscrepancy
from shared.platform.bulk import array_parameters, column_arrays, expire_rewritten
from shared.platform.ids import new_id
from shared.platform.metrics import record_discrepancies_opened

SYSTEM = "system"
UNRESOLVED = ("open", "acknowledged")
AUTO_RESOLUTION = "auto_resolved"
AUTO_RESOLUTION_REASON = "the condition no longer holds"


@dataclass(eq=False, slots=True)
class DiscrepancyRow:
    """An unresolved discrepancy a batch read, or one it opened (``finding`` set)."""

    id: uuid.UUID
    org_id: uuid.UUID
    type: str
    payment_id: uuid.UUID | None
    provider_record_id: uuid.UUID | None
    finding: Finding | None = None
    resolved: bool = False

    @property
    def key(self) -> tuple[str, uuid.UUID | None, uuid.UUID | None]:
        return (self.type, self.payment_id, self.provider_record_id)


def opened_payload(finding: Finding, evidence: dict[str, Any]) -> dict[str, Any]:
    """The action-log payload of a discrepancy opened for ``finding``."""
    return {"finding": finding.evidence, "source": evidence}


def auto_resolved_payload(evidence: dict[str, Any]) -> dict[str, Any]:
    """The action-log payload of a discrepancy resolved because it no longer holds."""
    return {"reason": AUTO_RESOLUTION_REASON, "evidence": evidence}


_DISCREPANCY_COLUMNS = {
    "id": "uuid",
    "org_id": "uuid",
    "type": "text",
    "severity": "text",
    "status": "text",
    "payment_id": "uuid",
    "provider_record_id": "uuid",
    "amount_minor": "bigint",
    "currency": "text",
    "difference_minor": "bigint",
    "opened_at": "timestamptz",
    "resolution": "text",
    "resolution_reason": "text",
    "resolved_at": "timestamptz",
    "version": "integer",
}
_INSERT_DISCREPANCIES = text(
    f"INSERT INTO reconciliation_discrepancies ({', '.join(_DISCREPANCY_COLUMNS)}) "  # noqa: S608
    f"SELECT * FROM unnest({array_parameters(_DISCREPANCY_COLUMNS)}) "
    "ON CONFLICT (org_id, type, payment_id, provider_record_id) WHERE status <> 'resolved' "
    "DO NOTHING RETURNING id"
)
_RESOLVE_DISCREPANCIES = text(
    "UPDATE reconciliation_discrepancies SET status = 'resolved', resolution = :resolution, "
    "resolution_reason = :reason, resolved_at = :now, version = version + 1 "
    "WHERE id = ANY(CAST(:ids AS uuid[]))"
)
_LOG_COLUMNS = {"org_id": "uuid", "discrepancy_id": "uuid", "action": "text", "payload": "jsonb"}
_INSERT_LOGS = text(
    "INSERT INTO reconciliation_action_logs (org_id, discrepancy_id, action, actor, payload) "  # noqa: S608
    f"SELECT org_id, discrepancy_id, action, '{SYSTEM}', payload "
    f"FROM unnest({array_parameters(_LOG_COLUMNS)}) AS v({', '.join(_LOG_COLUMNS)})"
)


class DiscrepancyChanges:
    """What one matching batch opens and auto-resolves, written at its end in a few
    multi-row statements (:meth:`write`)."""

    def __init__(self) -> None:
        self.opened: list[DiscrepancyRow] = []
        self._resolved: list[DiscrepancyRow] = []
        self._log: list[tuple[DiscrepancyRow, str, dict[str, Any]]] = []

    def open(self, org_id: uuid.UUID, finding: Finding, evidence: dict[str, Any]) -> DiscrepancyRow:
        """A new discrepancy for ``finding``, with its ``opened`` entry (written later)."""
        discrepancy = DiscrepancyRow(
            new_id(),
            org_id,
            finding.type,
            finding.payment_id,
            finding.provider_record_id,
            finding=finding,
        )
        self.opened.append(discrepancy)
        self._log.append((discrepancy, "opened", opened_payload(finding, evidence)))
        return discrepancy

    def auto_resolve(self, discrepancy: DiscrepancyRow, evidence: dict[str, Any]) -> None:
        """Resolve ``discrepancy`` as ``system`` (one opened in this batch is written resolved)."""
        discrepancy.resolved = True
        if discrepancy.finding is None:
            self._resolved.append(discrepancy)
        self._log.append((discrepancy, AUTO_RESOLUTION, auto_resolved_payload(evidence)))

    def write(self, session: Session, now: datetime) -> set[uuid.UUID]:
        """Resolve, then insert (a key resolved and found again opens anew), then log.

        A discrepancy another transaction opened meanwhile is not opened twice, and only
        those written get their action-log entries. Returns the ids written.
        """
        written: set[uuid.UUID] = set()
        if self._resolved:
            session.execute(
                _RESOLVE_DISCREPANCIES,
                {
                    "ids": [d.id for d in self._resolved],
                    "resolution": AUTO_RESOLUTION,
                    "reason": AUTO_RESOLUTION_REASON,
                    "now": now,
                },
            )
            written |= {d.id for d in self._resolved}
        if self.opened:
            written |= set(
                session.scalars(
                    _INSERT_DISCREPANCIES,
                    column_arrays(self._opened_rows(now), _DISCREPANCY_COLUMNS),
                )
            )
        log = [
            (d.org_id, d.id, action, json.dumps(payload))
            for d, action, payload in self._log
            if d.id in written
        ]
        if log:
            session.execute(_INSERT_LOGS, column_arrays(log, _LOG_COLUMNS))
        opened = Counter(d.type for d in self.opened if d.id in written)
        for discrepancy_type, count in opened.items():
            record_discrepancies_opened(discrepancy_type, count, session=session)
        expire_rewritten(session, ReconciliationDiscrepancy, [d.id for d in self._resolved])
        return written

    def _opened_rows(self, now: datetime) -> list[tuple]:
        return [
            (
                d.id,
                d.org_id,
                d.type,
                d.finding.severity,
                "resolved" if d.resolved else "open",
                d.payment_id,
                d.provider_record_id,
                d.finding.amount_minor,
                d.finding.currency,
                d.finding.difference_minor,
                now,
                AUTO_RESOLUTION if d.resolved else None,
                AUTO_RESOLUTION_REASON if d.resolved else None,
                now if d.resolved else None,
                2 if d.resolved else 1,
            )
            for d in self.opened
        ]


# --- Opening and resolving for the period run ----------------------------------------


_OPEN_COLUMNS = {
    "id": "uuid",
    "type": "text",
    "severity": "text",
    "payment_id": "uuid",
    "provider_record_id": "uuid",
    "amount_minor": "bigint",
    "currency": "text",
    "difference_minor": "bigint",
}
_OPEN_DISCREPANCIES = text(
    "INSERT INTO reconciliation_discrepancies "  # noqa: S608
    f"(org_id, run_id, status, opened_at, {', '.join(_OPEN_COLUMNS)}) "
    f"SELECT :org_id, :run_id, 'open', :now, * FROM unnest({array_parameters(_OPEN_COLUMNS)}) "
    "ON CONFLICT (org_id, type, payment_id, provider_record_id) WHERE status <> 'resolved' "
    "DO NOTHING RETURNING id"
)


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
    rows = [
        (key, f.type, f.severity, f.payment_id, f.provider_record_id, f.amount_minor, f.currency,
         f.difference_minor)
        for key, f in by_id.items()
    ]  # fmt: skip
    opened = list(
        session.scalars(
            _OPEN_DISCREPANCIES,
            {"org_id": org_id, "run_id": run_id, "now": now} | column_arrays(rows, _OPEN_COLUMNS),
        )
    )
    if not opened:
        return 0
    log = [
        (org_id, key, "opened", json.dumps(opened_payload(by_id[key], evidence))) for key in opened
    ]
    session.execute(_INSERT_LOGS, column_arrays(log, _LOG_COLUMNS))
    for discrepancy_type, count in Counter(by_id[key].type for key in opened).items():
        record_discrepancies_opened(discrepancy_type, count, session=session)
    return len(opened)


def auto_resolve(
    *,
    session: Session,
    discrepancy: ReconciliationDiscrepancy,
    now: datetime,
    evidence: dict[str, Any],
) -> None:
    """Resolve as ``system`` a discrepancy whose condition no longer holds, naming why."""
    discrepancy.status = "resolved"
    discrepancy.resolution = AUTO_RESOLUTION
    discrepancy.resolution_reason = AUTO_RESOLUTION_REASON
    discrepancy.resolved_at = now
    discrepancy.version += 1
    session.add(
        ReconciliationActionLog(
            org_id=discrepancy.org_id,
            discrepancy_id=discrepancy.id,
            action=AUTO_RESOLUTION,
            actor=SYSTEM,
            payload=auto_resolved_payload(evidence),
        )
    )
