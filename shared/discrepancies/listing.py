"""Reading discrepancies: the filtered list a page at a time, its CSV export, and one
discrepancy with its match results and action log.

Nothing here writes; every change goes through :mod:`shared.discrepancies.lifecycle`.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, literal, or_, select, text, tuple_
from sqlalchemy.orm import Session

from shared.models import (
    CASH_SUBJECTS,
    Payment,
    ProviderRecord,
    ReconciliationActionLog,
    ReconciliationDiscrepancy,
    ReconciliationItem,
)
from shared.platform.errors import NotFound, ValidationFailed
from shared.platform.pagination import InvalidCursor, Page, decode_cursor, page_of
from shared.values.money import format_minor

# The detail view shows the most recent match results of the subjects, oldest first; an
# often re-evaluated payment can gather many, and the trail of decisions is the action log.
MAX_DETAIL_ITEMS = 200
EXPORT_BATCH = 1_000

SORTS = ("opened_at", "amount")
# Each sort stamps its cursors, so a cursor of one sort is refused by the other.
_SORT_TAGS = {"opened_at": 1, "amount": 2}

_D = ReconciliationDiscrepancy
UNRESOLVED_BELOW = "resolved"


@dataclass(frozen=True)
class DiscrepancyFilters:
    """Filters of the discrepancy list; ``None`` means "any". ``until`` is exclusive; amounts are
    minor units, both bounds inclusive. ``unresolved`` (True) keeps the open and
    acknowledged ones: the console's queue."""

    status: str | None = None
    unresolved: bool | None = None
    type: str | None = None
    severity: str | None = None
    assignee: str | None = None
    run_id: uuid.UUID | None = None
    currency: str | None = None
    min_amount: int | None = None
    max_amount: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    dispute_status: str | None = None
    provider: str | None = None


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
    # DisputeOpened only (``amount_minor`` is then the disputed amount).
    dispute_status: str | None
    dispute_provider_status: str | None
    dispute_reason: str | None
    dispute_evidence_due_at: datetime | None
    # The cash chain's subjects (null for a payment's or provider record's discrepancy).
    settlement_line_id: uuid.UUID | None
    settlement_payout_id: uuid.UUID | None
    bank_statement_id: uuid.UUID | None
    bank_entry_id: uuid.UUID | None
    # Whom it is about, from its subjects when opened (null when none names a provider).
    provider: str | None


@dataclass(frozen=True)
class DiscrepancyDetail:
    """A discrepancy with its match results and its whole action log, oldest first."""

    discrepancy: DiscrepancyView
    items: list[ReconciliationItem]
    actions: list[ReconciliationActionLog]


# The view's fields read from the discrepancy row as they are; its two subjects are read
# as their ids (the list selects only these columns).
_SUBJECTS = {"payment": "payment_id", "provider_record": "provider_record_id"}
_OWN_FIELDS = tuple(field.name for field in fields(DiscrepancyView) if field.name not in _SUBJECTS)
_VIEW_COLUMNS = (*_OWN_FIELDS, *_SUBJECTS.values())


def with_subjects() -> Select:
    """The discrepancy with its payment's external id and its record's provider and
    reference (the values :func:`discrepancy_view` takes after the row)."""
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


def discrepancy_view(
    discrepancy: Any, external_id: Any, provider: Any, provider_reference: Any
) -> DiscrepancyView:
    """The view of ``discrepancy`` (an ORM object or a row of the view's columns)."""
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
    own = {name: getattr(discrepancy, name) for name in _OWN_FIELDS}
    return DiscrepancyView(payment=payment, provider_record=record, **own)


# Each filter as a condition on a bound parameter of its own name: the one statement of
# the filter rules, for the list and for every summary of it (shared/discrepancies/ageing.py).
FILTER_CONDITIONS = {
    "status": _D.status == bindparam("status"),
    # "open" and "acknowledged" sort before "resolved": a range the list indexes check in
    # the index, where ``status IN (…)`` or ``<>`` is a filter on every fetched row.
    "unresolved": _D.status < literal(UNRESOLVED_BELOW),
    "type": _D.type == bindparam("type"),
    "severity": _D.severity == bindparam("severity"),
    "assignee": _D.assignee == bindparam("assignee"),
    "run_id": _D.run_id == bindparam("run_id"),
    "currency": _D.currency == bindparam("currency"),
    "min_amount": _D.amount_minor >= bindparam("min_amount"),
    "max_amount": _D.amount_minor <= bindparam("max_amount"),
    "since": _D.opened_at >= bindparam("since"),
    "until": _D.opened_at < bindparam("until"),
    "dispute_status": _D.dispute_status == bindparam("dispute_status"),
    "provider": _D.provider == bindparam("provider"),
}


def filter_values(filters: DiscrepancyFilters) -> dict[str, Any]:
    """The filters that are set, by name: the values bound to :data:`FILTER_CONDITIONS`
    (a flag such as ``unresolved`` is set when true)."""
    return {
        name: value
        for name, value in vars(filters).items()
        if value is not None and value is not False
    }


def filter_conditions(filtered: frozenset[str]) -> list[Any]:
    """The conditions of the filters named in ``filtered`` (values bound when run)."""
    return [condition for name, condition in FILTER_CONDITIONS.items() if name in filtered]


def _sort_key(sort: str) -> tuple[Any, type, Callable[[DiscrepancyView], Any]]:
    if sort == "opened_at":
        return _D.opened_at, datetime, lambda view: view.opened_at
    if sort == "amount":
        return _D.amount_minor, int, lambda view: view.amount_minor
    raise ValidationFailed(f"sort must be one of {', '.join(SORTS)}")


_CUSTOM_PLANS = text("SET LOCAL plan_cache_mode = force_custom_plan")


@cache  # at most 2 sorts x 2**11 sets of filters x with or without a cursor
def _list_statement(sort: str, filtered: frozenset[str], after_cursor: bool) -> Select:
    """The list statement of one shape of request, built once; values are bound when run.

    The page is cut before the joins: when a filter is served by a bitmap scan and a sort
    (a run's rows), joining first would look up every matching row's payment and provider
    record, not just the page's (docs/decisions.md, "Triage API latency").
    """
    column, _, _ = _sort_key(sort)
    query = select(*(getattr(_D, name) for name in _VIEW_COLUMNS)).where(
        _D.org_id == bindparam("org_id"),
        *filter_conditions(filtered),
    )
    if after_cursor:
        after = (bindparam("after", type_=column.type), bindparam("after_id", type_=_D.id.type))
        query = query.where(tuple_(column, _D.id) < tuple_(*after))
    page = query.order_by(column.desc(), _D.id.desc()).limit(bindparam("limit")).subquery()
    return (
        select(
            page,
            Payment.external_id,
            ProviderRecord.provider.label("record_provider"),
            ProviderRecord.provider_reference,
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
    values = filter_values(filters)
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
        discrepancy_view(row, row.external_id, row.record_provider, row.provider_reference)
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


# --- CSV export -----------------------------------------------------------------------

CSV_COLUMNS = (
    "id",
    "type",
    "severity",
    "status",
    "currency",
    "amount",
    "amount_minor",
    "difference",
    "difference_minor",
    "payment_id",
    "payment_external_id",
    "provider_record_id",
    "provider",
    "provider_reference",
    "assignee",
    "resolution",
    "version",
    "opened_at",
    "acknowledged_at",
    "resolved_at",
    "dispute_status",
    "dispute_provider_status",
    "dispute_reason",
    "dispute_evidence_due_at",
    *CASH_SUBJECTS,
)
# A cell starting with one of these is run as a formula by spreadsheet programs; free
# text from outside (external ids, references, assignees) is prefixed with a quote.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_CHUNK = 64 * 1024


def csv_chunks(views: Iterable[DiscrepancyView], chunk_size: int = CSV_CHUNK) -> Iterator[str]:
    """The header line, then one line per view, in pieces of about ``chunk_size``
    characters (the last may be shorter), for streaming as they are read."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for view in views:
        writer.writerow(csv_row(view))
        if buffer.tell() >= chunk_size:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def csv_row(view: DiscrepancyView) -> list[str | int]:
    """One CSV line: money formatted with the currency's exponent and raw in minor units."""
    payment, record = view.payment, view.provider_record
    difference = view.difference_minor
    return [
        str(view.id),
        view.type,
        view.severity,
        view.status,
        view.currency,
        format_minor(view.amount_minor, view.currency),
        view.amount_minor,
        "" if difference is None else format_minor(difference, view.currency),
        "" if difference is None else difference,
        str(payment.id) if payment else "",
        safe_cell(payment.external_id) if payment else "",
        str(record.id) if record else "",
        view.provider or "",
        safe_cell(record.provider_reference) if record else "",
        safe_cell(view.assignee or ""),
        view.resolution or "",
        view.version,
        view.opened_at.isoformat(),
        view.acknowledged_at.isoformat() if view.acknowledged_at else "",
        view.resolved_at.isoformat() if view.resolved_at else "",
        view.dispute_status or "",
        safe_cell(view.dispute_provider_status or ""),
        safe_cell(view.dispute_reason or ""),
        view.dispute_evidence_due_at.isoformat() if view.dispute_evidence_due_at else "",
        *(str(getattr(view, subject) or "") for subject in CASH_SUBJECTS),
    ]


def safe_cell(text: str) -> str:
    """Free text made inert for spreadsheets (no formula injection): a provider's dispute
    status and reason are free text from outside too."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


# --- one discrepancy ------------------------------------------------------------------

# The detail's statements, built once (values are bound when run). A subject the
# discrepancy lacks is bound as NULL, which matches no item.
_R, _A = ReconciliationItem, ReconciliationActionLog
_DETAIL = with_subjects().where(
    _D.id == bindparam("discrepancy_id"), _D.org_id == bindparam("org_id")
)
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
    view = discrepancy_view(*row)
    subjects = {"payment_id": row[0].payment_id, "record_id": row[0].provider_record_id}
    recent = list(session.scalars(_DETAIL_ITEMS, {**key, **subjects}))
    actions = list(session.scalars(_DETAIL_ACTIONS, {"discrepancy_id": discrepancy_id}))
    return DiscrepancyDetail(discrepancy=view, items=recent[::-1], actions=actions)
