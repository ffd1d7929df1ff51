"""Bulk triage: one action, with one reason, on up to 500 discrepancies at once.

Each discrepancy goes through the lifecycle's own function (:func:`acknowledge`,
:func:`assign` or :func:`resolve`), so it gets its own action-log entry and the
transition rules stay in one place. A row the action cannot apply to — not in the
organisation, a transition its status refuses, a stale version, a lost dispute resolved
without an adjustment reference — is listed with its problem, and the others go on.

Partial failure: everything happens in the caller's one transaction, each row inside a
savepoint of its own, so a refused row leaves no trace and the rows that succeeded commit
together when the unit of work does. Rows are locked in id order, so two bulk calls over
overlapping sets queue rather than deadlock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from shared.access.api_keys import Caller
from shared.discrepancies.lifecycle import (
    acknowledge,
    assign,
    check_resolution,
    clean_adjustment_reference,
    clean_assignee,
    clean_reason,
    resolve,
)
from shared.discrepancies.listing import DiscrepancyView
from shared.platform.errors import (
    InvalidTransition,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from shared.platform.logs import get_logger

log = get_logger(__name__)

MAX_BULK_DISCREPANCIES = 500
BULK_ACTIONS = ("acknowledge", "assign", "resolve")
# The refusals that concern one row; any other error ends the whole call.
ROW_FAILURES = (NotFound, InvalidTransition, PreconditionFailed, ValidationFailed)


@dataclass(frozen=True)
class BulkTarget:
    """One discrepancy to change, at ``expected_version`` when given (else any)."""

    id: uuid.UUID
    expected_version: int | None = None


@dataclass(frozen=True)
class BulkChange:
    """The action and its one reason; ``assignee`` for assign, ``resolution`` (and
    ``adjustment_reference`` where the rules need one) for resolve."""

    action: str
    reason: str
    assignee: str | None = None
    resolution: str | None = None
    adjustment_reference: str | None = None


@dataclass(frozen=True)
class BulkFailure:
    """A row left unchanged: its problem type (as the single action's problem+json would
    name it: ``not-found``, ``invalid-transition``, ``precondition-failed`` for a stale
    version, ``validation-failed``), why, and the row's status or version when known."""

    id: uuid.UUID
    problem: str
    detail: str
    current_status: str | None = None
    current_version: int | None = None


@dataclass(frozen=True)
class BulkOutcome:
    """The rows changed (their new views) and the rows refused, each in request order."""

    changed: list[DiscrepancyView]
    failed: list[BulkFailure]


def apply_bulk(
    *, session: Session, caller: Caller, targets: Sequence[BulkTarget], change: BulkChange
) -> BulkOutcome:
    """Apply ``change`` to each target that allows it; list the others with their problem.

    Input that is wrong for every row — no target or more than 500, an id twice, an
    unknown action, a bad reason, assignee or resolution — is ValidationFailed before
    anything is read or written. Never commits (the caller's unit of work does).
    """
    apply_one = _action(change)
    _check_targets(targets)
    changed: dict[uuid.UUID, DiscrepancyView] = {}
    failed: dict[uuid.UUID, BulkFailure] = {}
    for target in sorted(targets, key=lambda target: target.id):
        try:
            with session.begin_nested():
                changed[target.id] = apply_one(
                    session=session,
                    caller=caller,
                    discrepancy_id=target.id,
                    expected_version=target.expected_version,
                )
        except ROW_FAILURES as error:
            failed[target.id] = BulkFailure(
                id=target.id,
                problem=error.type_slug,
                detail=error.detail,
                current_status=error.extra.get("current_status"),
                current_version=error.extra.get("current_version"),
            )
    log.info(
        "discrepancy.bulk_changed",
        action=change.action,
        changed=len(changed),
        failed=len(failed),
        actor=caller.actor,
    )
    order = [target.id for target in targets]
    return BulkOutcome(
        changed=[changed[key] for key in order if key in changed],
        failed=[failed[key] for key in order if key in failed],
    )


def _check_targets(targets: Sequence[BulkTarget]) -> None:
    if not targets:
        raise ValidationFailed("name at least one discrepancy")
    if len(targets) > MAX_BULK_DISCREPANCIES:
        raise ValidationFailed(
            f"at most {MAX_BULK_DISCREPANCIES} discrepancies at once, not {len(targets)}"
        )
    seen: set[uuid.UUID] = set()
    for target in targets:
        if target.id in seen:
            raise ValidationFailed(f"discrepancy {target.id} is named twice")
        seen.add(target.id)


def _action(change: BulkChange) -> Callable[..., DiscrepancyView]:
    """The lifecycle call for one row, its arguments checked once for the whole call."""
    if change.action not in BULK_ACTIONS:
        raise ValidationFailed(f"action must be one of {', '.join(BULK_ACTIONS)}")
    reason = clean_reason(change.reason)
    given = {
        name
        for name in ("assignee", "resolution", "adjustment_reference")
        if getattr(change, name) is not None
    }
    allowed = {
        "acknowledge": set(),
        "assign": {"assignee"},
        "resolve": {"resolution", "adjustment_reference"},
    }[change.action]
    if given - allowed:
        raise ValidationFailed(f"{', '.join(sorted(given - allowed))} is not for {change.action}")
    arguments: dict[str, Any] = {"reason": reason}
    if change.action == "acknowledge":
        return partial(acknowledge, **arguments)
    if change.action == "assign":
        if change.assignee is None:
            raise ValidationFailed("assign needs an assignee")
        return partial(assign, **arguments, assignee=clean_assignee(change.assignee))
    if change.resolution is None:
        raise ValidationFailed("resolve needs a resolution")
    check_resolution(change.resolution)
    adjustment_reference = clean_adjustment_reference(change.adjustment_reference)
    return partial(
        resolve,
        **arguments,
        resolution=change.resolution,
        adjustment_reference=adjustment_reference,
    )
