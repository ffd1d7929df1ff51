"""Reading imported settlements: files, their originals, payouts with their lines' sums.

A payout's lines are the lines of the same organisation, provider and currency whose
batch is the payout's id (Adyen's batch number, Stripe's payout id), payout rows
excepted; ``difference_minor`` is the payout's amount minus their net.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, select, tuple_
from sqlalchemy.orm import Session

from shared.models import SettlementFile, SettlementFileChunk, SettlementLine, SettlementPayout
from shared.platform.errors import NotFound
from shared.platform.pagination import Page, newest_first

# The most lines a payout's detail lists; ``line_count`` says how many it has.
MAX_DETAIL_LINES = 1_000
FEE_COLUMNS = {
    "commission": SettlementLine.commission_minor,
    "markup": SettlementLine.markup_minor,
    "scheme_fee": SettlementLine.scheme_fee_minor,
    "interchange": SettlementLine.interchange_minor,
    "processing": SettlementLine.processing_minor,
    "other": SettlementLine.other_fee_minor,
}


@dataclass(frozen=True)
class PayoutView:
    """A payout with the count and net of its lines, and the difference to its amount."""

    payout: SettlementPayout
    line_count: int
    lines_net_minor: int

    @property
    def difference_minor(self) -> int:
        """The payout's amount minus its lines' net (0 when they agree)."""
        return self.payout.amount_minor - self.lines_net_minor


@dataclass(frozen=True)
class PayoutDetail:
    """A payout, its fees by component, and its first MAX_DETAIL_LINES lines."""

    view: PayoutView
    fees: dict[str, int]
    lines: list[SettlementLine]


@dataclass(frozen=True)
class PayoutFilters:
    """The payout list's filters; ``since`` inclusive and ``until`` exclusive, on booked_at."""

    status: str | None = None
    currency: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_files(
    *, session: Session, org_id: uuid.UUID, cursor: str | None, limit: int
) -> Page[SettlementFile]:
    """The organisation's imported files, newest first."""
    query = select(SettlementFile).where(SettlementFile.org_id == org_id)
    order = (SettlementFile.imported_at, SettlementFile.id)
    return newest_first(query, order, session=session, cursor=cursor, limit=limit)


def get_file(*, session: Session, org_id: uuid.UUID, file_id: uuid.UUID) -> SettlementFile:
    """The organisation's file ``file_id``, or NotFound."""
    file = session.get(SettlementFile, file_id)
    if file is None or file.org_id != org_id:
        raise NotFound(f"settlement file {file_id} does not exist")
    return file


def original_chunks(*, session: Session, file_id: uuid.UUID) -> Iterator[bytes]:
    """The file's original bytes, one stored chunk at a time, in order."""
    positions = session.scalars(
        select(SettlementFileChunk.position)
        .where(SettlementFileChunk.file_id == file_id)
        .order_by(SettlementFileChunk.position)
    ).all()
    for position in positions:
        yield session.scalar(
            select(SettlementFileChunk.data).where(
                SettlementFileChunk.file_id == file_id, SettlementFileChunk.position == position
            )
        )


def list_payouts(
    *,
    session: Session,
    org_id: uuid.UUID,
    filters: PayoutFilters,
    cursor: str | None,
    limit: int,
) -> Page[PayoutView]:
    """The organisation's payouts, newest booked first, each with its lines' sums."""
    query: Select = select(SettlementPayout).where(SettlementPayout.org_id == org_id)
    for column, value in (
        (SettlementPayout.status, filters.status),
        (SettlementPayout.currency, filters.currency),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(SettlementPayout.booked_at >= filters.since)
    if filters.until is not None:
        query = query.where(SettlementPayout.booked_at < filters.until)
    order = (SettlementPayout.booked_at, SettlementPayout.id)
    page = newest_first(query, order, session=session, cursor=cursor, limit=limit)
    sums = _line_sums(session, page.items)
    views = [PayoutView(payout, *sums.get(_batch_of(payout), (0, 0))) for payout in page.items]
    return Page(items=views, next_cursor=page.next_cursor)


def get_payout(*, session: Session, org_id: uuid.UUID, payout_id: uuid.UUID) -> PayoutDetail:
    """The organisation's payout ``payout_id`` with its fees and lines, or NotFound."""
    payout = session.get(SettlementPayout, payout_id)
    if payout is None or payout.org_id != org_id:
        raise NotFound(f"settlement payout {payout_id} does not exist")
    of_payout = _lines_of([payout])
    fees = session.execute(
        select(*(func.coalesce(func.sum(column), 0) for column in FEE_COLUMNS.values())).where(
            of_payout
        )
    ).one()
    lines = session.scalars(
        select(SettlementLine)
        .where(of_payout)
        .order_by(SettlementLine.booked_at, SettlementLine.id)
        .limit(MAX_DETAIL_LINES)
    ).all()
    count, net = _line_sums(session, [payout]).get(_batch_of(payout), (0, 0))
    return PayoutDetail(
        view=PayoutView(payout, count, net),
        fees=dict(zip(FEE_COLUMNS, map(int, fees), strict=True)),
        lines=list(lines),
    )


def payout_of_line(*, session: Session, line: SettlementLine) -> SettlementPayout | None:
    """The payout whose lines include ``line`` (None: a payout row, or a batch no payout
    states yet)."""
    if line.line_type == "payout" or line.batch_id is None:
        return None
    return session.scalar(
        select(SettlementPayout).where(
            SettlementPayout.org_id == line.org_id,
            SettlementPayout.provider == line.provider,
            SettlementPayout.payout_id == line.batch_id,
            SettlementPayout.currency == line.net_currency,
        )
    )


def _batch_of(payout: SettlementPayout) -> tuple[str, str, str]:
    return payout.provider, payout.payout_id, payout.currency


def _lines_of(payouts: Sequence[SettlementPayout]) -> ColumnElement[bool]:
    return (
        (SettlementLine.org_id == payouts[0].org_id)
        & (SettlementLine.line_type != "payout")
        & tuple_(SettlementLine.provider, SettlementLine.batch_id, SettlementLine.net_currency).in_(
            [_batch_of(payout) for payout in payouts]
        )
    )


def _line_sums(
    session: Session, payouts: Sequence[SettlementPayout]
) -> dict[tuple[str, str, str], tuple[int, int]]:
    if not payouts:
        return {}
    batch = (SettlementLine.provider, SettlementLine.batch_id, SettlementLine.net_currency)
    rows = session.execute(
        select(*batch, func.count(), func.sum(SettlementLine.net_minor))
        .where(_lines_of(payouts))
        .group_by(*batch)
    )
    return {
        (provider, batch_id, currency): (count, int(net))
        for provider, batch_id, currency, count, net in rows
    }
