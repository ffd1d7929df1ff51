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

LOCK_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(hashtextextended(key, 0))) "
    "FROM unnest(CAST(:keys AS text[])) AS key"
)
REFERENCES = {"ref_org": "uuid", "ref_provider": "text", "ref": "text"}
EXTERNALS = {"ext_org": "uuid", "ext_provider": "text", "ext": "text"}
_RECORD_SELECT = ", ".join(f"r.{name}" for name in RECORD_COLUMNS)
_PAYMENT_SELECT = ", ".join(f"p.{name}" for name in PAYMENT_COLUMNS)

STORED_KEYS = text(
    "SELECT r.org_id, r.provider, r.merchant_reference, r.payment_id FROM provider_records r "  # noqa: S608
    f"JOIN unnest({array_parameters(REFERENCES)}) AS k(org_id, provider, reference) "
    "ON r.org_id = k.org_id AND r.provider = k.provider AND r.provider_reference = k.reference"
)
LOAD_PAYMENTS = text(
    f"SELECT {_PAYMENT_SELECT} FROM payments p WHERE p.id IN ("  # noqa: S608
    "SELECT p.id FROM payments p "
    f"JOIN unnest({array_parameters(REFERENCES)}) AS k(org_id, provider, reference) "
    "ON p.org_id = k.org_id AND p.provider = k.provider AND p.provider_reference = k.reference "
    "UNION ALL SELECT p.id FROM payments p "
    f"JOIN unnest({array_parameters(EXTERNALS)}) AS k(org_id, provider, external_id) "
    "ON p.org_id = k.org_id AND p.external_id = k.external_id AND p.provider = k.provider "
    "UNION ALL SELECT unnest(CAST(:ids AS uuid[])))"
)
# The records of these provider references, those a payment's bind looks at (its
# references and the records bound to it), and these ids; locked in id order.
LOCK_RECORDS = text(
    f"SELECT {_RECORD_SELECT} FROM provider_records r WHERE r.id IN ("  # noqa: S608
    "SELECT r.id FROM provider_records r "
    f"JOIN unnest({array_parameters(REFERENCES)}) AS k(org_id, provider, reference) "
    "ON r.org_id = k.org_id AND r.provider = k.provider AND r.provider_reference = k.reference "
    "UNION ALL SELECT r.id FROM provider_records r "
    f"JOIN unnest({array_parameters(EXTERNALS)}) AS k(org_id, provider, merchant_reference) "
    "ON r.org_id = k.org_id AND r.merchant_reference = k.merchant_reference "
    "AND r.provider = k.provider AND r.merchant_reference IS NOT NULL "
    "UNION ALL SELECT r.id FROM provider_records r "
    "WHERE r.payment_id = ANY(CAST(:payment_ids AS uuid[])) "
    "UNION ALL SELECT unnest(CAST(:ids AS uuid[]))) "
    "ORDER BY r.id FOR UPDATE"
)
LOAD_CUSTOMERS = text(
    f"SELECT {_RECORD_SELECT} FROM provider_records r "  # noqa: S608
    "JOIN unnest(CAST(:orgs AS uuid[]), CAST(:customers AS text[])) AS k(org_id, customer_ref) "
    "ON r.org_id = k.org_id AND r.customer_ref = k.customer_ref "
    "WHERE r.occurred_at BETWEEN :earliest AND :latest"
)
LOCK_DISCREPANCIES = text(
    "SELECT id, org_id, type, payment_id, provider_record_id FROM reconciliation_discrepancies "  # noqa: S608
    f"WHERE status IN ({', '.join(repr(status) for status in UNRESOLVED)}) "
    "AND (payment_id = ANY(CAST(:payment_ids AS uuid[])) "
    "OR (payment_id IS NULL AND provider_record_id = ANY(CAST(:record_ids AS uuid[])))) "
    "ORDER BY id FOR UPDATE"
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
