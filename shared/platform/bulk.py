"""Set-based statements over parallel arrays: one statement text whatever the row count.

Rows travel as one array parameter per column (``unnest(CAST(:a AS uuid[]), …)``), so
SQLAlchemy compiles each statement once and psycopg prepares it on the server. Rows too
many to hold travel by ``COPY`` (:func:`copy_rows`), as they are produced.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from psycopg import Copy
from sqlalchemy.orm import Session


def array_parameters(columns: Mapping[str, str]) -> str:
    """``CAST(:name AS type[])`` for each column, comma-separated, for an ``unnest(…)``."""
    return ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in columns.items())


def column_arrays(rows: Sequence[Sequence[Any]], names: Iterable[str]) -> dict[str, list]:
    """The rows turned into one list per column, keyed by the column names in order (empty
    lists when there are no rows)."""
    names = list(names)
    columns = list(zip(*rows, strict=True)) or [()] * len(names)
    return {name: list(column) for name, column in zip(names, columns, strict=True)}


def expire_rewritten(session: Session, model: type, ids: Iterable[uuid.UUID]) -> None:
    """Expire the session's ORM copies of rows a Core statement rewrote behind its back."""
    for row_id in ids:
        instance = session.identity_map.get(session.identity_key(model, row_id))
        if instance is not None:
            session.expire(instance)


@contextmanager
def copy_rows(session: Session, table: str, columns: Sequence[str]) -> Iterator[Copy]:
    """``COPY table (columns) FROM STDIN`` in the session's transaction: each
    ``write_row`` streams to the server as it is written, so memory stays flat whatever
    the row count. The session runs no other statement until the block ends."""
    raw = session.connection().connection.driver_connection
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        yield copy
