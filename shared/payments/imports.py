"""Internal payments: the billing side's batch upsert by ``external_id``.

Reconciliation only reads ``payments``; this module is the one place that writes them
(the HTTP import and ``recon payments import`` both call :func:`upsert_payments`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from sqlalchemy import bindparam, func, literal_column, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Session

from shared.access.organizations import get_organization
from shared.models import PAYMENT_STATUSES, PROVIDERS, Payment
from shared.payments.matching import queue_matches
from shared.platform.errors import ValidationFailed, describe_validation_errors
from shared.platform.logs import get_logger
from shared.values.money import AmountMinor, CurrencyCode
from shared.values.text import MAX_TEXT_LENGTH, check_identifier
from shared.values.timestamps import PlausibleUtcInstant

MAX_BATCH = 1_000

# The columns an import may set; everything else (id, org_id, timestamps) is the service's.
WRITABLE_COLUMNS = (
    "provider",
    "provider_reference",
    "amount_minor",
    "currency",
    "status",
    "amount_refunded_minor",
    "customer_ref",
    "occurred_at",
)

log = get_logger(__name__)


def _storable_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refusing it (with the other control characters)
    # here means the INSERT never fails on one item, which would take the whole batch
    # down. Pydantic already refuses unpaired surrogates in every string field.
    check_identifier(value)
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    return value


class PaymentIn(BaseModel):
    """One internal payment as the billing side sends it (unknown fields are refused).

    Validated values are exactly what is stored: currency upper case, ``occurred_at``
    in UTC, amounts integers of minor units (never floats or numeric strings).
    """

    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=MAX_TEXT_LENGTH)
    provider: Literal[PROVIDERS]  # type: ignore[valid-type]
    provider_reference: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT_LENGTH)
    amount_minor: AmountMinor
    currency: CurrencyCode
    status: Literal[PAYMENT_STATUSES]  # type: ignore[valid-type]
    amount_refunded_minor: AmountMinor = 0
    customer_ref: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT_LENGTH)
    occurred_at: PlausibleUtcInstant

    @field_validator("external_id", "provider_reference", "customer_ref")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else _storable_text(value)

    @field_validator("amount_refunded_minor")
    @classmethod
    def _refund_within_amount(cls, value: int, info: ValidationInfo) -> int:
        amount = info.data.get("amount_minor")
        if amount is not None and value > amount:
            raise ValueError("must not exceed amount_minor")
        return value


@dataclass(frozen=True)
class ItemError:
    """Why one item was refused: the field (None for the item as a whole) and a message."""

    field: str | None
    message: str


@dataclass(frozen=True)
class RejectedItem:
    """A refused item, by its 0-based position in the batch."""

    index: int
    errors: list[ItemError]


@dataclass(frozen=True)
class UpsertResult:
    """Exact counts of one batch; ``rejected`` is ordered by index."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RejectedItem] = field(default_factory=list)


def validate_item(item: object) -> PaymentIn | list[ItemError]:
    """``item`` as a PaymentIn, or the reasons it is refused (messages never echo the input)."""
    if not isinstance(item, dict):
        return [ItemError(field=None, message="each payment must be a JSON object")]
    try:
        return PaymentIn.model_validate(item)
    except ValidationError as error:
        return [ItemError(**entry) for entry in describe_validation_errors(error)]


def upsert_payments(*, session: Session, org_id: uuid.UUID, items: list[Any]) -> UpsertResult:
    """Create or update the organisation's payments by ``external_id``; report every item.

    Guarantees:
    - each item is validated on its own; a bad one is rejected with its index and the
      failing fields, and the good ones are still written;
    - an ``external_id`` seen earlier in the batch rejects the later item (whatever the
      earlier one's fate), so the batch never says two things about one payment;
    - more than MAX_BATCH items, or an unknown organisation, refuse the whole batch;
    - the good items are written by one ``INSERT … ON CONFLICT DO UPDATE`` statement:
      each is fully written or (rejected) not at all; a row whose stored values already
      equal the new ones is not rewritten and counts as ``unchanged``;
    - only rows of ``org_id`` are ever touched (the conflict key is org_id + external_id);
    - every created or updated payment is queued for matching in the same transaction
      (``pending_payment_matches``), and a worker woken once it commits.

    The caller owns the transaction.
    """
    if len(items) > MAX_BATCH:
        raise ValidationFailed(
            f"at most {MAX_BATCH} payments per batch ({len(items)} sent); split the batch"
        )
    get_organization(session=session, org_id=org_id)
    first_index: dict[str, int] = {}
    good: list[PaymentIn] = []
    rejected: list[RejectedItem] = []
    for index, item in enumerate(items):
        outcome = validate_item(item)
        errors = outcome if isinstance(outcome, list) else []
        external_id = item.get("external_id") if isinstance(item, dict) else None
        if isinstance(external_id, str):
            earlier = first_index.setdefault(external_id, index)
            if earlier != index:
                errors = [
                    *errors,
                    ItemError(
                        field="external_id",
                        message=f"the same external_id is already at index {earlier}",
                    ),
                ]
        if errors:
            rejected.append(RejectedItem(index=index, errors=errors))
        elif isinstance(outcome, PaymentIn):
            good.append(outcome)
    created, updated, changed_ids = _write(session=session, org_id=org_id, payments=good)
    queue_matches(session=session, org_id=org_id, payment_ids=changed_ids)
    result = UpsertResult(
        created=created,
        updated=updated,
        unchanged=len(good) - created - updated,
        rejected=rejected,
    )
    log.info(
        "payments.upserted",
        org_id=str(org_id),
        created=result.created,
        updated=result.updated,
        unchanged=result.unchanged,
        rejected=len(rejected),
    )
    return result


def _upsert_statement() -> Any:
    """The one upsert, built once: rows arrive as one array parameter per column.

    ``INSERT … SELECT FROM unnest(arrays)`` keeps the SQL text identical whatever the
    batch size, so SQLAlchemy compiles it once and PostgreSQL gets 9 parameters instead
    of 9 per row; a multi-row VALUES clause spent ~0.2 s compiling each 1,000-row batch.
    """
    table = Payment.__table__
    columns = ("external_id", *WRITABLE_COLUMNS)
    rows = (
        func.unnest(*(bindparam(name, type_=ARRAY(table.c[name].type)) for name in columns))
        .table_valued(*columns)
        .render_derived()
    )
    statement = insert(table).from_select(
        ["org_id", *columns],
        select(bindparam("org_id", type_=table.c.org_id.type), *(rows.c[name] for name in columns)),
        # id, created_at and updated_at come from their server defaults, row by row.
        include_defaults=False,
    )
    stored = tuple_(*(table.c[name] for name in WRITABLE_COLUMNS))
    new = tuple_(*(statement.excluded[name] for name in WRITABLE_COLUMNS))
    return statement.on_conflict_do_update(
        index_elements=[table.c.org_id, table.c.external_id],
        set_={
            **{name: statement.excluded[name] for name in WRITABLE_COLUMNS},
            "updated_at": func.now(),
        },
        # A row whose values are all the same is neither rewritten nor returned.
        where=stored.is_distinct_from(new),
    ).returning(
        table.c.id,
        # xmax is 0 on a freshly inserted row version and the updating transaction's id
        # on an updated one: the established way to tell the two apart in RETURNING.
        literal_column("xmax = 0").label("created"),
    )


UPSERT = _upsert_statement()


def _write(
    *, session: Session, org_id: uuid.UUID, payments: list[PaymentIn]
) -> tuple[int, int, list[uuid.UUID]]:
    """One upsert statement; returns (created, updated, ids of created or updated rows)."""
    if not payments:
        return 0, 0, []
    # Rows in external_id order: concurrent imports lock overlapping rows in the same
    # order, so two batches wait for each other instead of deadlocking.
    ordered = sorted(payments, key=lambda payment: payment.external_id)
    parameters: dict[str, Any] = {
        name: [getattr(payment, name) for payment in ordered]
        for name in ("external_id", *WRITABLE_COLUMNS)
    }
    written = session.execute(UPSERT, {"org_id": org_id, **parameters}).all()
    created = sum(1 for row in written if row.created)
    return created, len(written) - created, [row.id for row in written]
