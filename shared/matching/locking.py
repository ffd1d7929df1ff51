"""The match keys: the advisory locks that serialise work which could match the same pair.

Work on a record or payment takes transaction-level advisory locks on its match keys:
``ref:<org>:<provider>:<provider_reference>`` keys before ``ext:<org>:<external id /
merchant reference>`` keys, each kind in sorted order, so every transaction takes the keys
it shares with another in the same order (no deadlock cycle). An event and a payment change
that could match each other share a key and serialise. Rows are locked (``FOR UPDATE``, in
id order, shared/matching/reading.py) only once the keys are held.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy.orm import Session

from shared.matching.statements import LOCK_KEYS


def reference_key(org_id: uuid.UUID, provider: str, reference: str) -> str:
    """The lock key of everything that matches by this provider reference."""
    return f"ref:{org_id}:{provider}:{reference}"


def external_key(org_id: uuid.UUID, external: str) -> str:
    """The lock key of everything that matches by this external id / merchant reference."""
    return f"ext:{org_id}:{external}"


def lock_keys(*, session: Session, references: Iterable[str], externals: Iterable[str]) -> None:
    """Take these keys' advisory locks in the order every transaction uses, in one statement:
    the ``ref:`` keys sorted, then the ``ext:`` keys sorted (``unnest`` keeps array order)."""
    keys = [*sorted(set(references)), *sorted(set(externals))]
    if keys:
        session.execute(LOCK_KEYS, {"keys": keys})


class HeldKeys:
    """The match keys one transaction holds; taking a key again costs nothing."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.held: set[str] = set()

    def take(self, *, references: Iterable[str] = (), externals: Iterable[str] = ()) -> None:
        """Take the keys not held yet (one statement, in the global order)."""
        references = set(references) - self.held
        externals = set(externals) - self.held
        lock_keys(session=self.session, references=references, externals=externals)
        self.held |= references | externals
