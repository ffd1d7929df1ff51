"""One declaration of a provider record's fields: the columns of ``ProviderRecord``.

A record is held in four shapes, each derived here from the model's columns, so a new
column is declared once (in shared/models/, with its migration) and reaches every shape,
column list and conversion:

- :class:`RecordRow`, the whole row, as a matching batch reads, changes and writes it;
- :class:`RecordState`, what the fold of events keeps (shared/matching/records.py);
- :class:`RecordFacts`, what the rules compare (shared/matching/rules.py, the period run);
- :class:`RecordUpdate`, what one provider event states about the object (every fact
  optional), as the provider adapters parse it.
"""

from __future__ import annotations

import typing
from dataclasses import field, make_dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import BigInteger, DateTime, String
from sqlalchemy.dialects.postgresql import JSONB, UUID

from shared.models import ProviderRecord

# The PostgreSQL type a column's array parameter is cast to, by the column's SQL type.
_POSTGRES_TYPES = ((UUID, "uuid"), (String, "text"), (BigInteger, "bigint"), (JSONB, "jsonb"))


def _postgres_type(column: Any) -> str:
    if isinstance(column.type, DateTime):
        return "timestamptz" if column.type.timezone else "timestamp"
    return next(name for kind, name in _POSTGRES_TYPES if isinstance(column.type, kind))


_TABLE_COLUMNS = ProviderRecord.__table__.columns
# Each column's Python type, as the model declares it (``Mapped[int | None]`` -> ``int | None``).
_PYTHON_TYPES = {
    name: typing.get_args(hint)[0]
    for name, hint in typing.get_type_hints(ProviderRecord).items()
    if name in _TABLE_COLUMNS
}

# Column -> PostgreSQL type, in the table's order (the order of RecordRow's fields).
RECORD_COLUMNS: dict[str, str] = {column.name: _postgres_type(column) for column in _TABLE_COLUMNS}

# The roles the engine gives the columns.
IDENTITY_COLUMNS = ("id", "org_id", "provider", "provider_reference", "created_at")
BINDING_COLUMNS = ("payment_id", "match_method", "matched_at")
# Computed from the folded state (records.derived_status, records.refunded_total).
DERIVED_COLUMNS = ("status", "amount_refunded_minor")
# What folding an event changes (with the binding): every column but the identity.
STATE_COLUMNS = tuple(name for name in RECORD_COLUMNS if name not in IDENTITY_COLUMNS)
# What the fold keeps: the object's reference and every state column it folds itself.
FOLDED_FIELDS = (
    "provider_reference",
    *(
        name
        for name in STATE_COLUMNS
        if name not in (*BINDING_COLUMNS, *DERIVED_COLUMNS, "updated_at")
    ),
)
# The fold's own timestamps: set from the events' times, never stated by one event.
_FOLD_TIMES = ("last_event_at", "status_at", "dispute_at")
# What one event may state about the object (besides its reference and time).
STATED_FIELDS = tuple(name for name in FOLDED_FIELDS[1:] if name not in _FOLD_TIMES)
# What the rules read: every column in table order but the owner and the fold's inner state
# (the rules judge the derived status and refunded total), then the dispute as last stated
# and the binding's payment and method, which a record may lack. This order is the period
# run's select list.
_UNJUDGED = (
    "org_id",
    *(name for name in FOLDED_FIELDS if name in _FOLD_TIMES),
    "payment_status",
    "refunds",
    "reported_refunded_minor",
)
DISPUTE_FIELDS = tuple(name for name in STATED_FIELDS if name.startswith("dispute_"))
_OPTIONAL_FACTS = (*DISPUTE_FIELDS, "payment_id", "match_method")
FACT_FIELDS = (
    *(
        name
        for name in RECORD_COLUMNS
        if name not in (*_UNJUDGED, *BINDING_COLUMNS, *_OPTIONAL_FACTS)
    ),
    *_OPTIONAL_FACTS,
)
# The flags a batch keeps on a row it holds.
ROW_FLAGS = (
    "locked",  # read FOR UPDATE under its ref: key: its state may be written
    "new",  # not in the database yet
    "folded",  # an event changed its state (and maybe its binding)
    "rebound",  # its binding changed
)


def _shape(name: str, names: typing.Iterable[str], doc: str, **options: Any) -> Any:
    """A dataclass with these columns as fields, typed as the model types them."""
    return make_dataclass(
        name,
        [(column, _PYTHON_TYPES[column]) for column in names],
        namespace={"__doc__": doc, "__module__": __name__},
        **options,
    )


RecordRow = make_dataclass(
    "RecordRow",
    [
        *((name, _PYTHON_TYPES[name]) for name in RECORD_COLUMNS),
        *((flag, bool, field(default=False)) for flag in ROW_FLAGS),
    ],
    namespace={
        "__doc__": "A provider record as a batch holds it: read once, changed in memory, "
        "written once.",
        "__module__": __name__,
    },
    eq=False,
    slots=True,
)
RecordState = _shape(
    "RecordState",
    FOLDED_FIELDS,
    "Everything the fold keeps about one provider object.",
    frozen=True,
)
RecordFacts = make_dataclass(
    "RecordFacts",
    [
        *((name, _PYTHON_TYPES[name]) for name in FACT_FIELDS[: -len(_OPTIONAL_FACTS)]),
        *(
            (name, _PYTHON_TYPES[name], field(default=None))
            for name in FACT_FIELDS[-len(_OPTIONAL_FACTS) :]
        ),
    ],
    namespace={
        "__doc__": "A provider record, as the rules see it (``amount_minor`` None: not yet "
        "known; ``dispute_status`` None: never disputed).",
        "__module__": __name__,
    },
    frozen=True,
)
RecordUpdate = make_dataclass(
    "RecordUpdate",
    [
        ("provider_reference", str),
        ("event_at", datetime),
        *(
            (name, dict[str, int], field(default_factory=dict))
            if name == "refunds"
            else (name, _PYTHON_TYPES[name] | None, field(default=None))
            for name in STATED_FIELDS
        ),
    ],
    namespace={
        "__doc__": """What one provider event says about one provider object; ``None`` says nothing.

    ``payment_status`` is the object's base lifecycle (one of models.BASE_STATUSES); refunds
    are kept apart and folded in later, so that refunds and status changes commute.
    ``refunds`` maps a refund id to its amount in minor units (0 withdraws a refund that
    failed or was canceled). ``reported_refunded_minor`` is an absolute refunded total
    when the provider states one (Stripe ``charge.amount_refunded``).
    """,
        "__module__": __name__,
    },
    frozen=True,
)

_facts_of = attrgetter(*FACT_FIELDS)
_folded_of = attrgetter(*FOLDED_FIELDS)


def record_facts(record: RecordRow | ProviderRecord) -> RecordFacts:
    """The rules' view of a record (a RecordRow or a ProviderRecord)."""
    return RecordFacts(*_facts_of(record))


def state_of(record: RecordRow) -> RecordState:
    """The fold's view of a record (its refunds copied: the row may change, the state not)."""
    values = dict(zip(FOLDED_FIELDS, _folded_of(record), strict=True))
    return RecordState(**(values | {"refunds": dict(record.refunds)}))


def copy_state(state: RecordState, record: RecordRow) -> None:
    """Set the record's folded columns to the state's (its reference is its identity)."""
    for name in FOLDED_FIELDS[1:]:
        setattr(record, name, getattr(state, name))
