"""Keyset (cursor) pagination: stable while new rows arrive, opaque to callers."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from shared.platform.errors import BadRequest

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR_LENGTH = 512


class InvalidCursor(BadRequest, title="Invalid cursor", type_slug="invalid-cursor"):
    """A cursor this service did not issue (or from another listing)."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing and the cursor of the next (None on the last page)."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(*values: date | uuid.UUID | int) -> str:
    """An opaque cursor holding the sort key of the last row of a page."""
    plain = [value.isoformat() if isinstance(value, date) else str(value) for value in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, types: Sequence[type]) -> tuple[Any, ...]:
    """The sort key inside ``cursor``, converted to ``types``; InvalidCursor if forged."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor("cursor is too long")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(plain, list) or len(plain) != len(types):
            raise ValueError("wrong shape")
        return tuple(_convert(value, kind) for value, kind in zip(plain, types, strict=True))
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise InvalidCursor("cursor is not one this listing issued") from None


def _convert(value: Any, kind: type) -> Any:
    if not isinstance(value, str):
        raise TypeError("cursor values are strings")
    if kind is datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("cursor time without offset")
        return parsed
    if kind is date:
        return date.fromisoformat(value)
    if kind is uuid.UUID:
        return uuid.UUID(value)
    if kind is int:
        number = int(value)
        if not -(2**63) <= number < 2**63:
            raise ValueError("cursor number outside BIGINT")
        return number
    raise TypeError(f"unsupported cursor type {kind}")


def page_of(rows: list[T], limit: int, key: Any) -> Page[T]:
    """Cut ``rows`` (fetched with ``limit + 1``) into a page; ``key(row)`` gives its cursor."""
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(items=rows, next_cursor=encode_cursor(*key(rows[-1])))
    return Page(items=rows, next_cursor=None)


def newest_first(
    query: Select,
    order: tuple[InstrumentedAttribute, InstrumentedAttribute],
    *,
    session: Session,
    cursor: str | None,
    limit: int,
) -> Page[Any]:
    """The page of ``query``'s rows after ``cursor``, latest first by ``order``: a time
    (or date) column, then the id that breaks its ties."""
    moment, row_id = order
    if cursor is not None:
        after = decode_cursor(cursor, (moment.type.python_type, uuid.UUID))
        query = query.where(tuple_(moment, row_id) < tuple_(*after))
    query = query.order_by(moment.desc(), row_id.desc())
    rows = list(session.scalars(query.limit(limit + 1)))
    return page_of(rows, limit, lambda row: (getattr(row, moment.key), getattr(row, row_id.key)))
