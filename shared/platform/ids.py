"""Row ids: UUID version 7 (RFC 9562), time-ordered.

48 bits of milliseconds since the epoch, the version, random bits, the variant. Rows
made one after the other get ids that sort in the same order, so every B-tree on an id
column — each table's primary key, and the foreign-key columns that name other rows —
is written near its right edge instead of at random pages all over it: fewer pages
read, dirtied and logged per insert (docs/decisions.md, "Time-ordered row ids"). Ids are
not secrets: knowing one grants nothing, since every lookup is scoped by organisation.

The application makes ids with :func:`new_id`; PostgreSQL, for rows written in bulk by
SQL, with the function ``recon_uuid7()`` (migration 0006, :data:`SQL_NEW_ID`), which is
every id column's default.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from uuid_utils.compat import uuid7

# The same rule in SQL: a column default and the id expression of INSERT … SELECT.
SQL_NEW_ID = "recon_uuid7()"


def new_id(at: datetime | None = None) -> uuid.UUID:
    """A new version 7 id for a row made now (or, for generated test data, at ``at``)."""
    if at is None:
        return uuid7()
    return uuid7(nanoseconds=int(at.timestamp() * 1_000_000) * 1_000)
