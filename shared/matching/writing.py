"""The writing stage of a matching batch: every change, once, at the end.

One multi-row statement per kind: the new records, the records whose state an event
changed, the records only rebound, the discrepancies (shared/discrepancies/lifecycle.py)
and the reconciliation items.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from shared.discrepancies.lifecycle import DiscrepancyChanges
from shared.matching.batch_rows import BatchRows
from shared.matching.record_fields import BINDING_COLUMNS, RECORD_COLUMNS, STATE_COLUMNS, RecordRow
from shared.matching.statements import (
    INSERT_ITEMS,
    INSERT_RECORDS,
    ITEM_COLUMNS,
    UPDATE_BINDINGS,
    UPDATE_RECORDS,
)
from shared.models import ProviderRecord
from shared.platform.bulk import column_arrays, expire_rewritten


def write_changes(
    *,
    session: Session,
    rows: BatchRows,
    discrepancies: DiscrepancyChanges,
    items: list[tuple[Any, ...]],
    now: datetime,
) -> None:
    """Write what the batch changed.

    A discrepancy another transaction opened meanwhile is not opened twice (the
    unresolved index), and only those written get their action-log entries.
    """
    records = rows.records.values()
    new = [r for r in records if r.new]
    folded = [r for r in records if r.folded and not r.new]
    rebound = [r for r in records if r.rebound and not r.folded and not r.new]
    if new:
        _execute(session, INSERT_RECORDS, new, RECORD_COLUMNS)
    if folded:
        _execute(session, UPDATE_RECORDS, folded, ("id", *STATE_COLUMNS))
    if rebound:
        _execute(session, UPDATE_BINDINGS, rebound, ("id", *BINDING_COLUMNS))
    discrepancies.write(session, now)
    if items:
        session.execute(INSERT_ITEMS, column_arrays(items, ITEM_COLUMNS))
    expire_rewritten(session, ProviderRecord, [r.id for r in [*folded, *rebound]])


def _execute(
    session: Session, statement: Any, records: list[RecordRow], columns: Iterable[str]
) -> None:
    columns = tuple(columns)
    rows = [
        [
            json.dumps(record.refunds) if name == "refunds" else getattr(record, name)
            for name in columns
        ]
        for record in records
    ]
    session.execute(statement, column_arrays(rows, columns))
