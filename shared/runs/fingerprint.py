"""The fingerprint of a run's matched set: how many (payment, record) bindings its period's
payments have, and an order-independent digest of those pairs.

A run records exceptions, not every clean pair; the fingerprint is what lets an auditor
prove later that the matched set is still the one the run saw. Each pair hashes to 64
bits in SQL (``uuid_hash_extended``, the record's id seeded with the payment's hash);
the digest is their sum modulo 2**64, so computing it costs one aggregate over the pairs
and no order. The run takes it in the statement that splits its period; verification
recomputes it from the bindings as they are now.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

DIGEST_MODULUS = 2**64
# Over rows ``{payment}`` × ``{record}`` of a LEFT JOIN: payments with no record count for
# nothing.
PAIRS_SQL = "count({record})"
DIGEST_SQL = "coalesce(sum(uuid_hash_extended({record}, uuid_hash_extended({payment}, 0))), 0)"

_CURRENT = text(
    f"SELECT {PAIRS_SQL.format(record='r.id')} AS pairs, "  # noqa: S608 - constant fragments
    f"{DIGEST_SQL.format(record='r.id', payment='p.id')} AS digest "
    "FROM payments AS p JOIN provider_records AS r ON r.payment_id = p.id "
    "WHERE p.org_id = :org AND p.occurred_at >= :start AND p.occurred_at < :end"
)


@dataclass(frozen=True)
class MatchedSet:
    """A matched set's fingerprint: its pairs and their digest (16 hex digits)."""

    pairs: int
    digest: str

    @classmethod
    def of(cls, pairs: int, digest_sum: int) -> MatchedSet:
        """The fingerprint from SQL's count and (unbounded) sum of the pairs' hashes."""
        return cls(pairs, f"{int(digest_sum) % DIGEST_MODULUS:016x}")


def current_matched_set(
    *, session: Session, org_id: uuid.UUID, start: datetime, end: datetime
) -> MatchedSet:
    """The fingerprint of the bindings the period's payments have now."""
    row = session.execute(_CURRENT, {"org": org_id, "start": start, "end": end}).one()
    return MatchedSet.of(row.pairs, row.digest)
