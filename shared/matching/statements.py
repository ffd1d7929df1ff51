"""The SQL text of the matching engine, one statement per read, lock and write of a batch.

Keys travel as parallel arrays, so each statement's text is the same whatever the batch
size: SQLAlchemy compiles it once and psycopg prepares it on the server. Column lists come
from the one declaration of a record's fields (shared/matching/record_fields.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import text

from shared.discrepancies.lifecycle import UNRESOLVED
from shared.matching.record_fields import BINDING_COLUMNS, RECORD_COLUMNS, STATE_COLUMNS
from shared.matching.rules import PaymentFacts
from shared.platform.bulk import array_parameters

PAYMENT_COLUMNS = ("org_id", *(column.name for column in fields(PaymentFacts)))

NO_JIT = text("SET LOCAL jit = off")
LOCK_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(hashtextextended(key, 0))) "
    "FROM unnest(CAST(:keys AS text[])) AS key"
)
REFERENCES = {"ref_org": "uuid", "ref_provider": "text", "ref": "text"}
EXTERNALS = {"ext_org": "uuid", "ext_provider": "text", "ext": "text"}
_RECORD_SELECT = ", ".join(f"r.{name}" for name in RECORD_COLUMNS)
_PAYMENT_SELECT = ", ".join(f"p.{name}" for name in PAYMENT_COLUMNS)


def _each_key(keys: str, found: str) -> str:
    """The rows ``found`` (a SELECT of ``id``, reading its key from ``k``) for each key of
    ``keys`` (``unnest(…) AS k(…)``), one index lookup per key.

    A lateral subquery kept apart by ``OFFSET 0`` is planned once per key as a lookup of
    one value, which an index answers however stale the statistics; a join over all keys
    at once is planned on guessed row counts, and without statistics PostgreSQL guesses a
    hash join over every row of the table (docs/decisions.md, "Index-shaped lookups").
    """
    return f"SELECT m.id FROM {keys} CROSS JOIN LATERAL ({found} OFFSET 0) AS m"  # noqa: S608


def _rows_by_id(
    table: str, alias: str, select: str, ids: str, *, lock: bool, still: str = "true"
) -> str:
    """``select`` over the rows of ``table`` whose ids ``ids`` (a UNION ALL of id lists)
    finds, each read by primary key and, with ``lock``, locked, in id order; ``still`` is
    checked again on the row as locked (a concurrent change may have ended its match)."""
    for_update = " FOR UPDATE" if lock else ""
    return (
        f"SELECT {select} FROM (SELECT DISTINCT f.id FROM ({ids}) AS f(id) ORDER BY f.id) AS w "  # noqa: S608
        f"CROSS JOIN LATERAL (SELECT * FROM {table} {alias} WHERE {alias}.id = w.id "
        f"AND {still}{for_update} OFFSET 0) AS {alias} ORDER BY {alias}.id"
    )


_REFERENCE_KEYS = f"unnest({array_parameters(REFERENCES)}) AS k(org_id, provider, reference)"
_EXTERNAL_KEYS = f"unnest({array_parameters(EXTERNALS)}) AS k(org_id, provider, external)"
_GIVEN_IDS = "SELECT unnest(CAST(:ids AS uuid[]))"

STORED_KEYS = text(
    "SELECT r.org_id, r.provider, r.merchant_reference, r.payment_id "  # noqa: S608
    f"FROM {_REFERENCE_KEYS} CROSS JOIN LATERAL (SELECT * FROM provider_records r "
    "WHERE r.org_id = k.org_id AND r.provider = k.provider AND r.provider_reference = k.reference "
    "OFFSET 0) AS r"
)
# The payments stating these provider references, those of these external ids, and these ids.
LOAD_PAYMENTS = text(
    _rows_by_id(
        "payments",
        "p",
        _PAYMENT_SELECT,
        " UNION ALL ".join(
            (
                _each_key(
                    _REFERENCE_KEYS,
                    "SELECT p.id FROM payments p WHERE p.org_id = k.org_id "
                    "AND p.provider = k.provider AND p.provider_reference = k.reference",
                ),
                _each_key(
                    _EXTERNAL_KEYS,
                    "SELECT p.id FROM payments p WHERE p.org_id = k.org_id "
                    "AND p.external_id = k.external AND p.provider = k.provider",
                ),
                _GIVEN_IDS,
            )
        ),
        lock=False,
    )
)
# The records of these provider references, those a payment's bind looks at (its
# references and the records bound to it), and these ids; locked in id order.
LOCK_RECORDS = text(
    _rows_by_id(
        "provider_records",
        "r",
        _RECORD_SELECT,
        " UNION ALL ".join(
            (
                _each_key(
                    _REFERENCE_KEYS,
                    "SELECT r.id FROM provider_records r WHERE r.org_id = k.org_id "
                    "AND r.provider = k.provider AND r.provider_reference = k.reference",
                ),
                _each_key(
                    _EXTERNAL_KEYS,
                    "SELECT r.id FROM provider_records r WHERE r.org_id = k.org_id "
                    "AND r.merchant_reference = k.external AND r.provider = k.provider "
                    "AND r.merchant_reference IS NOT NULL",
                ),
                _each_key(
                    "unnest(CAST(:payment_ids AS uuid[])) AS k(payment_id)",
                    "SELECT r.id FROM provider_records r WHERE r.payment_id = k.payment_id",
                ),
                _GIVEN_IDS,
            )
        ),
        lock=True,
    )
)
LOAD_CUSTOMERS = text(
    f"SELECT {_RECORD_SELECT} "  # noqa: S608
    "FROM unnest(CAST(:orgs AS uuid[]), CAST(:customers AS text[]), "
    "CAST(:earliest AS timestamptz[]), CAST(:latest AS timestamptz[])) "
    "AS k(org_id, customer_ref, earliest, latest) "
    "CROSS JOIN LATERAL (SELECT * FROM provider_records r WHERE r.org_id = k.org_id "
    "AND r.customer_ref = k.customer_ref AND r.occurred_at BETWEEN k.earliest AND k.latest "
    "OFFSET 0) AS r"
)
_UNRESOLVED = f"d.status IN ({', '.join(repr(status) for status in UNRESOLVED)})"
LOCK_DISCREPANCIES = text(
    _rows_by_id(
        "reconciliation_discrepancies",
        "d",
        "d.id, d.org_id, d.type, d.payment_id, d.provider_record_id",
        " UNION ALL ".join(
            (
                _each_key(
                    "unnest(CAST(:payment_ids AS uuid[])) AS k(payment_id)",
                    "SELECT d.id FROM reconciliation_discrepancies d "  # noqa: S608
                    f"WHERE d.payment_id = k.payment_id AND {_UNRESOLVED}",
                ),
                _each_key(
                    "unnest(CAST(:record_ids AS uuid[])) AS k(record_id)",
                    "SELECT d.id FROM reconciliation_discrepancies d "  # noqa: S608
                    "WHERE d.provider_record_id = k.record_id AND d.payment_id IS NULL "
                    f"AND {_UNRESOLVED}",
                ),
            )
        ),
        lock=True,
        still=_UNRESOLVED,
    )
)
# Heuristic candidates. A payment is unbound when no record is bound to it: the ids bound
# in the database come along, the batch knows which of them it rebound.
PAYMENTS_NEAR = text(
    f"SELECT {_PAYMENT_SELECT}, "  # noqa: S608
    "ARRAY(SELECT r.id FROM provider_records r WHERE r.payment_id = p.id) AS bound "
    "FROM payments p WHERE p.org_id = :org_id AND p.provider = :provider "
    "AND p.currency = :currency AND p.amount_minor = :amount "
    "AND p.occurred_at BETWEEN :earliest AND :latest"
)
RECORDS_NEAR = text(
    f"SELECT {_RECORD_SELECT} FROM provider_records r WHERE r.org_id = :org_id "  # noqa: S608
    "AND r.provider = :provider AND r.currency = :currency AND r.amount_minor = :amount "
    "AND r.occurred_at BETWEEN :earliest AND :latest AND r.payment_id IS NULL"
)
INSERT_RECORDS = text(
    f"INSERT INTO provider_records ({', '.join(RECORD_COLUMNS)}) "  # noqa: S608
    f"SELECT * FROM unnest({array_parameters(RECORD_COLUMNS)})"
)


def _update_records(columns: Sequence[str]) -> Any:
    """``UPDATE provider_records`` of these columns from one array per column."""
    assignments = ", ".join(f"{name} = v.{name}" for name in columns)
    arrays = array_parameters({"id": "uuid"} | {name: RECORD_COLUMNS[name] for name in columns})
    return text(
        f"UPDATE provider_records AS r SET {assignments} "  # noqa: S608
        f"FROM unnest({arrays}) AS v(id, {', '.join(columns)}) WHERE r.id = v.id"
    )


UPDATE_RECORDS = _update_records(STATE_COLUMNS)
UPDATE_BINDINGS = _update_records(BINDING_COLUMNS)
ITEM_COLUMNS = {
    "org_id": "uuid",
    "payment_id": "uuid",
    "provider_record_id": "uuid",
    "outcome": "text",
    "match_method": "text",
    "amount_difference_minor": "bigint",
}
INSERT_ITEMS = text(
    f"INSERT INTO reconciliation_items ({', '.join(ITEM_COLUMNS)}) "  # noqa: S608
    f"SELECT * FROM unnest({array_parameters(ITEM_COLUMNS)})"
)

RecordKey = tuple[uuid.UUID, str, str]  # (org, provider, provider reference or external id)
