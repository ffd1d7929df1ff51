"""The discrepancy lifecycle: every transition and the action-log entry it writes.

A discrepancy is opened ``open`` (entry ``opened``, by ``system``); :data:`TRANSITIONS`
says which action may follow from which status and where it leads: ``open →
acknowledged → resolved`` and ``open → resolved``, assigning and noting until resolved,
and resolved is final (a recurrence opens a new discrepancy). :func:`record_transition`
applies one action to a locked row and appends its one entry; triage (:func:`acknowledge`,
:func:`assign`, :func:`add_note`, :func:`resolve`) and the period run's
:func:`auto_resolve` go through it. The incremental engine's batch writes the same
``opened`` and ``auto_resolved`` transitions in a few multi-row statements
(:class:`DiscrepancyChanges`); the other writers open theirs set-based with
``shared.discrepancies.opening``.
The partial unique index on unresolved discrepancies keeps at most one per (org, type,
payment, record) whatever the writers race on: an insert that meets one does nothing.
No function here commits, and none ever touches a payment.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.access.api_keys import Caller
from shared.access.users import find_user
from shared.discrepancies.listing import DiscrepancyView, discrepancy_view, with_subjects
from shared.matching.rules import DISPUTE_LOST, Dispute, Finding
from shared.models import (
    ONE_UNRESOLVED_CONFLICT,
    ReconciliationActionLog,
    ReconciliationDiscrepancy,
    discrepancy_provider,
)
from shared.platform.bulk import array_parameters, column_arrays, expire_rewritten
from shared.platform.errors import InvalidTransition, NotFound, PreconditionFailed, ValidationFailed
from shared.platform.ids import new_id
from shared.platform.logs import get_logger
from shared.platform.metrics import record_discrepancies_opened
from shared.values.text import check_free_text, check_identifier

log = get_logger(__name__)

SYSTEM = "system"
OPENED = "opened"
UNRESOLVED = ("open", "acknowledged")
AUTO_RESOLUTION = "auto_resolved"
AUTO_RESOLUTION_REASON = "the condition no longer holds"
DISPUTE_UPDATED = "dispute_updated"

# status → action (as the action log names it) → status afterwards. An action missing
# from a status's row is refused there with InvalidTransition, and nothing is written.
TRANSITIONS: dict[str, dict[str, str]] = {
    "open": {
        "acknowledged": "acknowledged",
        "assigned": "open",
        "note_added": "open",
        DISPUTE_UPDATED: "open",
        "resolved": "resolved",
        AUTO_RESOLUTION: "resolved",
    },
    "acknowledged": {
        "assigned": "acknowledged",
        "note_added": "acknowledged",
        DISPUTE_UPDATED: "acknowledged",
        "resolved": "resolved",
        AUTO_RESOLUTION: "resolved",
    },
    "resolved": {},
}
# How a refusal names each action: "cannot add a note to a discrepancy that is resolved".
REFUSED_AS = {
    "acknowledged": "acknowledge",
    "assigned": "assign",
    "note_added": "add a note to",
    DISPUTE_UPDATED: "update the dispute of",
    "resolved": "resolve",
    AUTO_RESOLUTION: "auto-resolve",
}
# The time a discrepancy entered a status, stamped when an action moves it there.
_ENTERED_AT = {"acknowledged": "acknowledged_at", "resolved": "resolved_at"}


def next_status(status: str, action: str) -> str:
    """The status ``action`` leads to from ``status``; InvalidTransition if refused there."""
    after = TRANSITIONS[status].get(action)
    if after is None:
        raise InvalidTransition(
            f"cannot {REFUSED_AS[action]} a discrepancy that is {status}", current_status=status
        )
    return after


def record_transition(
    *,
    session: Session,
    discrepancy: ReconciliationDiscrepancy,
    action: str,
    actor: str,
    now: datetime,
    payload: dict[str, Any],
    changes: dict[str, Any] | None = None,
    actor_name: str | None = None,
) -> None:
    """Apply ``action`` to ``discrepancy`` (locked by the caller) and append its one entry.

    The status moves by :data:`TRANSITIONS` (entering ``acknowledged`` or ``resolved``
    stamps its time with ``now``), ``changes`` sets columns, and the version goes up by
    one. A refused action raises InvalidTransition before anything changes.
    """
    after = next_status(discrepancy.status, action)
    if after != discrepancy.status and after in _ENTERED_AT:
        setattr(discrepancy, _ENTERED_AT[after], now)
    for column, value in (changes or {}).items():
        setattr(discrepancy, column, value)
    discrepancy.status = after
    discrepancy.version += 1
    session.add(ReconciliationActionLog(
        org_id=discrepancy.org_id, discrepancy_id=discrepancy.id, action=action, actor=actor,
        actor_name=actor_name, payload=payload,
    ))  # fmt: skip


def auto_resolve(
    *,
    session: Session,
    discrepancy: ReconciliationDiscrepancy,
    now: datetime,
    evidence: dict[str, Any],
) -> None:
    """Resolve as ``system`` a discrepancy whose condition no longer holds, naming why."""
    record_transition(
        session=session,
        discrepancy=discrepancy,
        action=AUTO_RESOLUTION,
        actor=SYSTEM,
        now=now,
        payload=auto_resolved_payload(evidence),
        changes={"resolution": AUTO_RESOLUTION, "resolution_reason": AUTO_RESOLUTION_REASON},
    )


# --- triage: a person's actions -------------------------------------------------------

# The codes a person may resolve with. ``auto_resolved`` is written only by ``system``
# when the condition no longer holds, so it is refused here.
RESOLUTION_CODES = (
    "provider_error",  # the provider's data was wrong (and has been or will be corrected)
    "internal_error_adjusted",  # our ledger was wrong; an adjustment entry fixes it
    "timing_difference",  # both sides agree once late events or settlements land
    "duplicate_refunded",  # a duplicate charge was refunded to the customer
    "false_positive",  # nothing was wrong: the rule misfired on this case
    "written_off",  # the difference is accepted as a loss or gain
    "other",  # anything else; the reason says what
)
SYSTEM_RESOLUTIONS = (AUTO_RESOLUTION,)

MAX_REASON_LENGTH = 2_000
MAX_NOTE_LENGTH = 5_000
MAX_ASSIGNEE_LENGTH = 255
MAX_ADJUSTMENT_REFERENCE_LENGTH = 255


def acknowledge(
    *,
    session: Session,
    caller: Caller,
    discrepancy_id: uuid.UUID,
    expected_version: int | None = None,
    reason: str | None = None,
) -> DiscrepancyView:
    """Mark an open discrepancy as seen (``open → acknowledged``); 409 from any other state.

    A ``reason`` (a bulk action's) is logged with the entry."""
    payload = _with_reason({}, reason)
    locked = _lock(session, caller, discrepancy_id, expected_version)
    return locked.record("acknowledged", payload)


def assign(
    *,
    session: Session,
    caller: Caller,
    discrepancy_id: uuid.UUID,
    assignee: str,
    expected_version: int | None = None,
    reason: str | None = None,
) -> DiscrepancyView:
    """Give an unresolved discrepancy to ``assignee`` (1–255 characters, stripped); a
    ``reason`` (a bulk action's) is logged with the entry."""
    assignee = clean_assignee(assignee)
    reason_field = _with_reason({}, reason)
    locked = _lock(session, caller, discrepancy_id, expected_version)
    payload = {"assignee": assignee, "previous": locked.discrepancy.assignee, **reason_field}
    return locked.record("assigned", payload, assignee=assignee)


def assign_to_person(
    *,
    session: Session,
    caller: Caller,
    discrepancy_id: uuid.UUID,
    email: str,
    expected_version: int | None = None,
) -> DiscrepancyView:
    """Give an unresolved discrepancy to a person of the caller's organisation who may sign
    in (the assignee is their email); ValidationFailed for anyone else."""
    try:
        person = find_user(session=session, org_id=caller.org_id, email=email)
    except NotFound:
        person = None
    if person is None or person.disabled_at is not None:
        raise ValidationFailed("assign to a person of your organisation who can sign in")
    return assign(
        session=session,
        caller=caller,
        discrepancy_id=discrepancy_id,
        assignee=person.email,
        expected_version=expected_version,
    )


def add_note(
    *,
    session: Session,
    caller: Caller,
    discrepancy_id: uuid.UUID,
    note: str,
    expected_version: int | None = None,
) -> DiscrepancyView:
    """Append a note (up to 5,000 characters) to an unresolved discrepancy's trail."""
    note = _text(note, "note", MAX_NOTE_LENGTH, check_free_text)
    locked = _lock(session, caller, discrepancy_id, expected_version)
    return locked.record("note_added", {"note": note})


def resolve(
    *,
    session: Session,
    caller: Caller,
    discrepancy_id: uuid.UUID,
    resolution: str,
    reason: str,
    adjustment_reference: str | None = None,
    expected_version: int | None = None,
) -> DiscrepancyView:
    """Close an open or acknowledged discrepancy for good with a code and a reason.

    ``resolution`` is one of :data:`RESOLUTION_CODES`; ``adjustment_reference`` may cite
    the ledger adjustment made elsewhere, and must for a lost dispute (the provider kept
    the money: the books need an entry). Nothing here changes the payment itself.
    """
    check_resolution(resolution)
    reason = clean_reason(reason)
    adjustment_reference = clean_adjustment_reference(adjustment_reference)
    locked = _lock(session, caller, discrepancy_id, expected_version)
    lost = locked.discrepancy.dispute_status == DISPUTE_LOST
    if lost and locked.discrepancy.status in UNRESOLVED and adjustment_reference is None:
        raise ValidationFailed(
            "a lost dispute is resolved with the adjustment_reference of the ledger entry "
            "that books the loss"
        )
    payload = {
        "resolution": resolution,
        "reason": reason,
        "adjustment_reference": adjustment_reference,
    }
    return locked.record(
        "resolved",
        payload,
        resolution=resolution,
        resolution_reason=reason,
        adjustment_reference=adjustment_reference,
    )


def check_resolution(resolution: str) -> None:
    """ValidationFailed unless ``resolution`` is one of :data:`RESOLUTION_CODES`."""
    if resolution not in RESOLUTION_CODES:
        if resolution in SYSTEM_RESOLUTIONS:
            raise ValidationFailed(f"resolution {resolution!r} is recorded only by the system")
        raise ValidationFailed(f"resolution must be one of {', '.join(RESOLUTION_CODES)}")


def clean_reason(reason: str) -> str:
    """``reason`` stripped: 1–2,000 characters of free text (line breaks allowed)."""
    return _text(reason, "reason", MAX_REASON_LENGTH, check_free_text)


def clean_assignee(assignee: str) -> str:
    """``assignee`` stripped: 1–255 characters on one line."""
    return _text(assignee, "assignee", MAX_ASSIGNEE_LENGTH)


def clean_adjustment_reference(adjustment_reference: str | None) -> str | None:
    """``adjustment_reference`` stripped (1–255 characters on one line), or None."""
    if adjustment_reference is None:
        return None
    return _text(adjustment_reference, "adjustment_reference", MAX_ADJUSTMENT_REFERENCE_LENGTH)


def _with_reason(payload: dict[str, Any], reason: str | None) -> dict[str, Any]:
    return payload if reason is None else {**payload, "reason": clean_reason(reason)}


def _text(
    value: str, field: str, max_length: int, check: Callable[..., str] = check_identifier
) -> str:
    """``value`` stripped; ValidationFailed when empty, too long, or holding characters
    ``check`` refuses (shared/values/text.py: one line for identifiers, line breaks for notes)."""
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be a string")
    stripped = value.strip()
    if not stripped:
        raise ValidationFailed(f"{field} must not be empty")
    if len(stripped) > max_length:
        raise ValidationFailed(f"{field} must be at most {max_length} characters")
    return check(stripped, field=field)


@dataclass(frozen=True)
class _Locked:
    """The caller's discrepancy, row-locked, with its subjects' summaries for the view."""

    session: Session
    caller: Caller
    discrepancy: ReconciliationDiscrepancy
    subjects: tuple[Any, ...]  # payment external_id, record provider, record reference

    def record(self, action: str, payload: dict[str, Any], **changes: Any) -> DiscrepancyView:
        """The caller's ``action`` recorded (:func:`record_transition`); the new view."""
        discrepancy, actor = self.discrepancy, self.caller.actor
        record_transition(
            session=self.session,
            discrepancy=discrepancy,
            action=action,
            actor=actor,
            actor_name=self.caller.actor_name,
            now=datetime.now(UTC),
            payload=payload,
            changes=changes,
        )
        self.session.flush()
        log.info(
            "discrepancy.changed",
            discrepancy_id=str(discrepancy.id),
            action=action,
            version=discrepancy.version,
            actor=actor,
        )
        return discrepancy_view(discrepancy, *self.subjects)


def _lock(
    session: Session, caller: Caller, discrepancy_id: uuid.UUID, expected_version: int | None
) -> _Locked:
    """The caller's discrepancy, row-locked until commit, at ``expected_version`` if given.

    The lock serialises concurrent actions: the second waits, then sees the first's
    outcome (a 409 from ``resolved``, or a 412 when it named the old version). Only the
    discrepancy row is locked, never the payment or provider record it joins.
    """
    row = session.execute(
        with_subjects()
        .where(
            ReconciliationDiscrepancy.id == discrepancy_id,
            ReconciliationDiscrepancy.org_id == caller.org_id,
        )
        .with_for_update(of=ReconciliationDiscrepancy)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if row is None:
        raise NotFound(f"discrepancy {discrepancy_id} does not exist")
    discrepancy = row[0]
    if expected_version is not None and expected_version != discrepancy.version:
        raise PreconditionFailed(
            f"discrepancy is at version {discrepancy.version}, not {expected_version}; "
            "fetch it again and retry",
            current_version=discrepancy.version,
        )
    return _Locked(session, caller, discrepancy, tuple(row[1:]))


# --- the matching engine's batch ------------------------------------------------------


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


def dispute_columns(dispute: Dispute | None) -> dict[str, Any]:
    """The discrepancy columns stating ``dispute`` (all None for another type's finding)."""
    return {
        "dispute_status": dispute.status if dispute else None,
        "dispute_provider_status": dispute.provider_status if dispute else None,
        "dispute_reason": dispute.reason if dispute else None,
        "dispute_evidence_due_at": dispute.evidence_due_at if dispute else None,
    }


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
    "INSERT INTO reconciliation_discrepancies "  # noqa: S608
    f"({', '.join(_DISCREPANCY_COLUMNS)}, provider) "
    f"SELECT v.*, {discrepancy_provider(('payment_id', 'provider_record_id'), prefix='v.')} "
    f"FROM unnest({array_parameters(_DISCREPANCY_COLUMNS)}) "
    f"AS v({', '.join(_DISCREPANCY_COLUMNS)}) {ONE_UNRESOLVED_CONFLICT} DO NOTHING RETURNING id"
)
RESOLVE_DISCREPANCIES = text(
    "UPDATE reconciliation_discrepancies SET status = 'resolved', resolution = :resolution, "
    "resolution_reason = :reason, resolved_at = :now, version = version + 1 "
    "WHERE id = ANY(CAST(:ids AS uuid[]))"
)
LOG_COLUMNS = {"org_id": "uuid", "discrepancy_id": "uuid", "action": "text", "payload": "jsonb"}
INSERT_LOGS = text(
    "INSERT INTO reconciliation_action_logs (org_id, discrepancy_id, action, actor, payload) "  # noqa: S608
    f"SELECT org_id, discrepancy_id, action, '{SYSTEM}', payload "
    f"FROM unnest({array_parameters(LOG_COLUMNS)}) AS v({', '.join(LOG_COLUMNS)})"
)


class DiscrepancyChanges:
    """What one matching batch opens and auto-resolves, written at its end in a few
    multi-row statements (:meth:`write`).

    Its ``auto_resolved`` is the table's, written in one statement rather than row by
    row through :func:`record_transition`: the batch read its discrepancies unresolved and
    locked, where the table allows it, and writes the same row and entry (a test checks).
    """

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
        self._log.append((discrepancy, OPENED, opened_payload(finding, evidence)))
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
                RESOLVE_DISCREPANCIES,
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
        entries = [
            (d.org_id, d.id, action, json.dumps(payload))
            for d, action, payload in self._log
            if d.id in written
        ]
        if entries:
            session.execute(INSERT_LOGS, column_arrays(entries, LOG_COLUMNS))
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
