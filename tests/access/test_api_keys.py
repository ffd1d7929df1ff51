"""Authentication keeps ``last_used_at`` to the minute without writing on every request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, text

from shared.access.api_keys import TRIAGE_ROLES, authenticate, create_api_key
from tests.support.factories import make_org


@contextmanager
def statements_sent(session) -> Iterator[list[str]]:
    """The SQL statements the session sends inside the block."""
    sent: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:
        sent.append(statement)

    connection = session.connection()
    event.listen(connection, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        event.remove(connection, "before_cursor_execute", capture)


@pytest.mark.parametrize(
    ("last_used", "rewritten"),
    [
        (None, True),
        (func.now() - text("interval '2 minutes'"), True),
        (func.now() - text("interval '30 seconds'"), False),
    ],
    ids=["never-used", "two-minutes-ago", "thirty-seconds-ago"],
)
def test_last_used_at_is_written_only_when_older_than_a_minute(session, last_used, rewritten):
    issued = create_api_key(session=session, org_id=make_org(session).id, role="owner")
    issued.api_key.last_used_at = last_used
    session.flush()
    with statements_sent(session) as sent:
        caller = authenticate(
            session=session, authorization=f"Bearer {issued.secret}", roles=TRIAGE_ROLES
        )
    assert caller.actor == str(issued.api_key.id)
    updates = [statement for statement in sent if statement.lstrip().upper().startswith("UPDATE")]
    assert len(sent) == 1 + len(updates)  # the lookup, and the rewrite when it is due
    assert bool(updates) is rewritten
    session.expire_all()
    now, stored = session.execute(
        text("SELECT now(), last_used_at FROM api_keys WHERE id = :id"), {"id": issued.api_key.id}
    ).one()
    assert (stored == now) is rewritten
