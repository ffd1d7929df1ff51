"""Checksums of table contents: equal before and after means nothing was written."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shared.models import Base

TABLES = tuple(table.name for table in Base.metadata.sorted_tables)


def table_checksum(connection: Connection | Session, table: str) -> str:
    """md5 of every row of ``table`` as text, in a stable order ('' hashes an empty table)."""
    if table not in TABLES:
        raise ValueError(f"{table} is not a table of the schema")
    return connection.execute(
        text(f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t")
    ).scalar_one()


def database_checksum(connection: Connection | Session) -> dict[str, str]:
    """:func:`table_checksum` of every table of the schema, by table name."""
    return {table: table_checksum(connection, table) for table in TABLES}
