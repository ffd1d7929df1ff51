"""Triage of discrepancies: listing, detail, and the workflow with its append-only trail.

Lifecycle: ``open → acknowledged → resolved`` and ``open → resolved``; assigning and
adding notes are allowed until resolved; resolved is final (a recurrence opens a new
discrepancy). Every change locks the row, checks the caller's expected version (If-Match),
bumps ``version`` and writes exactly one action-log entry in the same transaction. No
function here commits, and none ever touches a payment.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, or_, select, text, tuple_
from sqlalchemy.orm import Session

from shared.access.api_keys import Caller
from shared.models import (
    Payment,
    ProviderRecord,
    ReconciliationActionLog,
    ReconciliationDiscrepancy,
    ReconciliationItem,
)
from shared.platform.errors import InvalidTransition, NotFound, PreconditionFailed, ValidationFailed
from shared.platform.logs import get_logger
from shared.platform.pagination import InvalidCursor, Page, decode_cursor, page_of
from shared.values.text import check_free_text, check_identifier

log = get_logger(__name__)

# The codes a person may resolve with. ``auto_resolved`` is written only by ``system``
# (shared/matching/engine.py) when the condition no longer holds, so it is refused here.
RESOLUTION_CODES = (
    "provider_error",  # the provider's data was wrong (and has been or will be corrected)
    "internal_error_adjusted",  # our ledger was wrong; an adjustment entry fixes it
    "timing_difference",  # both sides agree once late events or settlements land
    "duplicate_refunded",  # a duplicate charge was refunded to the customer
    "false_positive",  # nothing was wrong: the rule misfired on this case
    "written_off",  # the difference is accepted as a loss or gain
    "other",  # anything else; the reason says what
)
SYSTEM_RESOLUTIONS = ("auto_resolved",)

MAX_REASON_LENGTH = 2_000
MAX_NOTE_LENGTH = 5_000
MAX_ASSIGNEE_LENGTH = 255
MAX_ADJUSTMENT_REFERENCE_LENGTH = 255
# The detail view shows the most recent match results of the subjects, oldest first; an
# often re-evaluated payment can gather many, and the trail of decisions is the action log.
MAX_DETAIL_ITEMS = 200
EXPORT_BATCH = 1_000

SORTS = ("opened_at", "amount")
# Each sort stamps its cursors, so a cursor of one sort is refused by the other.
_SORT_TAGS = {"opened_at": 1, "amount": 2}

_D = ReconciliationDiscrepancy


@dataclass(frozen=True)
class DiscrepancyFilters:
    """Filters of the discrepancy list; ``None`` means "any". ``until`` is exclusive."""

    status: str | None = None
    type: str | None = None
    severity: str | None = None
    assignee: str | None = None
    run_id: uuid.UUID | None = None
    currency: str | None = None
    min_amount: int | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class PaymentSummary:
    """The internal payment a discrepancy concerns."""

    id: uuid.UUID
    external_id: str


@dataclass(frozen=True)
class ProviderRecordSummary:
    """The provider record a discrepancy concerns."""

    id: uuid.UUID
    provider: str
    provider_reference: str


@dataclass(frozen=True)
class DiscrepancyView:
    """A discrepancy as finance sees it, detached from the session."""

    id: uuid.UUID
    type: str
    severity: str
    status: str
    payment: PaymentSummary | None
    provider_record: ProviderRecordSummary | None
    amount_minor: int
    currency: str
    difference_minor: int | None
    assignee: str | None
    resolution: str | None
    resolution_reason: str | None
    adjustment_reference: str | None
    version: int
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None


@dataclass(frozen=True)
class DiscrepancyDetail:
    """A discrepancy with its match results and its whole action log, oldest first."""

    discrepancy: DiscrepancyView
    items: list[ReconciliationItem]
    actions: list[ReconciliationActionLog]


def _summaries() -> Select:
    return (
        select(
            _D,
            Payment.external_id,
            ProviderRecord.provider,
            ProviderRecord.provider_reference,
        )
        .outerjoin(Payment, Payment.id == _D.payment_id)
        .outerjoin(ProviderRecord, ProviderRecord.id == _D.provider_record_id)
    )


# What a view reads of the discrepancy row itself (the list selects only these).
_VIEW_COLUMNS = (
    "id",
    "type",
    "severity",
    "status",
    "payment_id",
    "provider_record_id",
    "amount_minor",
    "currency",
    "difference_minor",
    "assignee",
    "resolution",
    "resolution_reason",
    "adjustment_reference",
    "version",
    "opened_at",
    "acknowledged_at",
    "resolved_at",
)


def _view(
    discrepancy: Any, external_id: Any, provider: Any, provider_reference: Any
) -> DiscrepancyView:
    """The view of ``discrepancy`` (an ORM object or a row of :data:`_VIEW_COLUMNS`)."""
    payment = (
        PaymentSummary(id=discrepancy.payment_id, external_id=external_id)
        if discrepancy.payment_id is not None
        else None
    )
    record = (
        ProviderRecordSummary(
            id=discrepancy.provider_record_id,
            provider=provider,
            provider_reference=provider_reference,
        )
        if discrepancy.provider_record_id is not None
        else None
    )
    return DiscrepancyView(
        id=discrepancy.id,
        type=discrepancy.type,
        severity=discrepancy.severity,
        status=discrepancy.status,
        payment=payment,
        provider_record=record,
        amount_minor=discrepancy.amount_minor,
        currency=discrepancy.currency,
        difference_minor=discrepancy.difference_minor,
        assignee=discrepancy.assignee,
        resolution=discrepancy.resolution,
        resolution_reason=discrepancy.resolution_reason,
        adjustment_reference=discrepancy.adjustment_reference,
        version=discrepancy.version,
        opened_at=discrepancy.opened_at,
        acknowledged_at=discrepancy.acknowledged_at,
        resolved_at=discrepancy.resolved_at,
    )


# Each filter as a condition on a bound parameter of its own name.
_CONDITIONS = {
    "status": _D.status == bindparam("status"),
    "type": _D.type == bindparam("type"),
    "severity": _D.severity == bindparam("severity"),
    "assignee": _D.assignee == bindparam("assignee"),
    "run_id": _D.run_id == bindparam("run_id"),
    "currency": _D.currency == bindparam("currency"),
    "min_amount": _D.amount_minor >= bindparam("min_amount"),
    "since": _D.opened_at >= bindparam("since"),
    "until": _D.opened_at < bindparam("until"),
}


def _sort_key(sort: str) -> tuple[Any, type, Callable[[DiscrepancyView], Any]]:
    if sort == "opened_at":
        return _D.opened_at, datetime, lambda view: view.opened_at
    if sort == "amount":
        return _D.amount_minor, int, lambda view: view.amount_minor
    raise ValidationFailed(f"sort must be one of {', '.join(SORTS)}")


_CUSTOM_PLANS = text("SET LOCAL plan_cache_mode = force_custom_plan")


@cache  # at most 2 sorts x 2**9 sets of filters x with or without a cursor
def _list_statement(sort: str, filtered: frozenset[str], after_cursor: bool) -> Select:
    """The list statement of one shape of request, built once; values are bound when run.

    The page is cut before the joins: when a filter is served by a bitmap scan and a sort
    (a run's rows), joining first would look up every matching row's payment and provider
    record, not just the page's (docs/decisions.md, "Triage API latency").
    """
    column, _, _ = _sort_key(sort)
    query = select(*(getattr(_D, name) for name in _VIEW_COLUMNS)).where(
        _D.org_id == bindparam("org_id"),
        *(condition for name, condition in _CONDITIONS.items() if name in filtered),
    )
    if after_cursor:
        after = (bindparam("after", type_=column.type), bindparam("after_id", type_=_D.id.type))
        query = query.where(tuple_(column, _D.id) < tuple_(*after))
    page = query.order_by(column.desc(), _D.id.desc()).limit(bindparam("limit")).subquery()
    return (
        select(
            page, Payment.external_id, ProviderRecord.provider, ProviderRecord.provider_reference
        )
        .outerjoin(Payment, Payment.id == page.c.payment_id)
        .outerjoin(ProviderRecord, ProviderRecord.id == page.c.provider_record_id)
        .order_by(page.c[column.key].desc(), page.c.id.desc())
    )


def list_discrepancies(
    *,
    session: Session,
    org_id: uuid.UUID,
    filters: DiscrepancyFilters,
    sort: str = "opened_at",
    cursor: str | None = None,
    limit: int,
) -> Page[DiscrepancyView]:
    """One page of the organisation's discrepancies matching ``filters``.

    ``opened_at`` sorts newest first, ``amount`` largest first (raw minor units: filter by
    currency to compare like with like); ties break on id. The keyset cursor holds the sort
    key and id of the last row and is stamped with the sort, so pages never repeat or skip
    a row while new ones arrive, and a cursor of another sort or listing is InvalidCursor.
    """
    _, kind, key = _sort_key(sort)
    values = {name: value for name, value in vars(filters).items() if value is not None}
    parameters = {**values, "org_id": org_id, "limit": limit + 1}
    if cursor is not None:
        tag, parameters["after"], parameters["after_id"] = decode_cursor(
            cursor, (int, kind, uuid.UUID)
        )
        if tag != _SORT_TAGS[sort]:
            raise InvalidCursor(f"cursor belongs to another sort than {sort!r}")
    statement = _list_statement(sort, frozenset(values), cursor is not None)
    # psycopg prepares a statement run five times, and PostgreSQL may then keep one generic
    # plan for every value: for a week's high rows by amount, a sort of the week's 4,305
    # rows (12 ms) instead of an ordered walk that stops at the page (1 ms).
    session.execute(_CUSTOM_PLANS)
    rows = [
        _view(row, row.external_id, row.provider, row.provider_reference)
        for row in session.execute(statement, parameters)
    ]
    return page_of(rows, limit, lambda view: (_SORT_TAGS[sort], key(view), view.id))


def iter_discrepancies(
    *,
    session: Session,
    org_id: uuid.UUID,
    filters: DiscrepancyFilters,
    sort: str = "opened_at",
    batch_size: int = EXPORT_BATCH,
) -> Iterator[DiscrepancyView]:
    """Every discrepancy of ``list_discrepancies``' list, in its order, in keyset batches.

    Memory stays bounded by ``batch_size`` whatever the size of the export (views are
    detached, and the session's identity map holds unmodified rows only weakly).
    """
    cursor: str | None = None
    while True:
        page = list_discrepancies(
            session=session,
            org_id=org_id,
            filters=filters,
            sort=sort,
            cursor=cursor,
            limit=batch_size,
        )
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


# The detail's statements, built once (values are bound when run). A subject the
# discrepancy lacks is bound as NULL, which matches no item.
_R, _A = ReconciliationItem, ReconciliationActionLog
_DETAIL = _summaries().where(_D.id == bindparam("discrepancy_id"), _D.org_id == bindparam("org_id"))
_DETAIL_ITEMS = (
    select(_R)
    .where(
        _R.org_id == bindparam("org_id"),
        or_(
            _R.payment_id == bindparam("payment_id"),
            _R.provider_record_id == bindparam("record_id"),
        ),
    )
    .order_by(_R.created_at.desc(), _R.id.desc())
    .limit(MAX_DETAIL_ITEMS)
)
_DETAIL_ACTIONS = (
    select(_A)
    .where(_A.discrepancy_id == bindparam("discrepancy_id"))
    .order_by(_A.created_at, _A.id)
)


def get_discrepancy(
    *, session: Session, org_id: uuid.UUID, discrepancy_id: uuid.UUID
) -> DiscrepancyDetail:
    """The discrepancy with its subjects' match results and its action log (oldest first).

    A discrepancy of another organisation is NotFound, exactly like a missing one.
    """
    key = {"discrepancy_id": discrepancy_id, "org_id": org_id}
    row = session.execute(_DETAIL, key).one_or_none()
    if row is None:
        raise NotFound(f"discrepancy {discrepancy_id} does not exist")
    view = _view(*row)
    subjects = {"payment_id": row[0].payment_id, "record_id": row[0].provider_record_id}
    recent = list(session.scalars(_DETAIL_ITEMS, {**key, **subjects}))
    actions = list(session.scalars(_DETAIL_ACTIONS, {"discrepancy_id": discrepancy_id}))
    return DiscrepancyDetail(discrepancy=view, items=recent[::-1], actions=actions)


def acknowledge(
    *,
    session: Session,
    caller: Caller,
    discrepancy_id: uuid.UUID,
    expected_version: int | None = None,
) -> DiscrepancyView:
    """Mark an open discrepancy as seen (``open → acknowledged``); 409 from any other state."""
    locked = _lock(session, caller, discrepancy_id, expected_version)
    discrepancy = locked.discrepancy
    if discrepancy.status != "open":
        raise _refused("acknowledge", discrepancy)
    discrepancy.status = "acknowledged"
    discrepancy.acknowledged_at = datetime.now(UTC)
    return _record(session, caller, locked, "acknowledged", {})


def assign(
    *,
    session: Session,
    caller: Caller,
    discrepancy_id: uuid.UUID,
    assignee: str,
    expected_version: int | None = None,
) -> DiscrepancyView:
    """Give an unresolved discrepancy to ``assignee`` (1–255 characters, stripped)."""
    assignee = _text(assignee, "assignee", MAX_ASSIGNEE_LENGTH)
    locked = _lock(session, caller, discrepancy_id, expected_version)
    discrepancy = locked.discrepancy
    if discrepancy.status == "resolved":
        raise _refused("assign", discrepancy)
    previous = discrepancy.assignee
    discrepancy.assignee = assignee
    return _record(
        session, caller, locked, "assigned", {"assignee": assignee, "previous": previous}
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
    discrepancy = locked.discrepancy
    if discrepancy.status == "resolved":
        raise _refused("add a note to", discrepancy)
    return _record(session, caller, locked, "note_added", {"note": note})


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
    the ledger adjustment made elsewhere. Nothing here changes the payment itself.
    """
    if resolution not in RESOLUTION_CODES:
        if resolution in SYSTEM_RESOLUTIONS:
            raise ValidationFailed(f"resolution {resolution!r} is recorded only by the system")
        raise ValidationFailed(f"resolution must be one of {', '.join(RESOLUTION_CODES)}")
    reason = _text(reason, "reason", MAX_REASON_LENGTH, check_free_text)
    if adjustment_reference is not None:
        adjustment_reference = _text(
            adjustment_reference, "adjustment_reference", MAX_ADJUSTMENT_REFERENCE_LENGTH
        )
    locked = _lock(session, caller, discrepancy_id, expected_version)
    discrepancy = locked.discrepancy
    if discrepancy.status == "resolved":
        raise _refused("resolve", discrepancy)
    discrepancy.status = "resolved"
    discrepancy.resolution = resolution
    discrepancy.resolution_reason = reason
    discrepancy.adjustment_reference = adjustment_reference
    discrepancy.resolved_at = datetime.now(UTC)
    payload = {
        "resolution": resolution,
        "reason": reason,
        "adjustment_reference": adjustment_reference,
    }
    return _record(session, caller, locked, "resolved", payload)


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
    discrepancy: ReconciliationDiscrepancy
    summaries: tuple[Any, ...]  # payment external_id, record provider, record reference


def _lock(
    session: Session, caller: Caller, discrepancy_id: uuid.UUID, expected_version: int | None
) -> _Locked:
    """The caller's discrepancy, row-locked until commit, at ``expected_version`` if given.

    The lock serialises concurrent actions: the second waits, then sees the first's
    outcome (a 409 from ``resolved``, or a 412 when it named the old version). Only the
    discrepancy row is locked, never the payment or provider record it joins.
    """
    row = session.execute(
        _summaries()
        .where(_D.id == discrepancy_id, _D.org_id == caller.org_id)
        .with_for_update(of=_D)
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
    return _Locked(discrepancy=discrepancy, summaries=tuple(row[1:]))


def _refused(verb: str, discrepancy: ReconciliationDiscrepancy) -> InvalidTransition:
    return InvalidTransition(
        f"cannot {verb} a discrepancy that is {discrepancy.status}",
        current_status=discrepancy.status,
    )


def _record(
    session: Session, caller: Caller, locked: _Locked, action: str, payload: dict[str, Any]
) -> DiscrepancyView:
    """Bump the version, append the one action-log entry, and return the new view."""
    discrepancy = locked.discrepancy
    discrepancy.version += 1
    session.add(
        ReconciliationActionLog(
            org_id=discrepancy.org_id,
            discrepancy_id=discrepancy.id,
            action=action,
            actor=str(caller.key_id),
            actor_name=caller.key_name,
            payload=payload,
        )
    )
    session.flush()
    log.info(
        "discrepancy.changed",
        discrepancy_id=str(discrepancy.id),
        action=action,
        version=discrepancy.version,
        actor=str(caller.key_id),
    )
    return _view(discrepancy, *locked.summaries)
