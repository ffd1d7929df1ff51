"""Database engine, sessions and the one unit-of-work helper.

Every HTTP request and every task opens exactly one unit of work with
:func:`unit_of_work`; domain functions receive its session as a keyword argument and
never commit on their own. Callbacks registered with :func:`after_commit` run only once
the transaction has committed (so a task is never sent for a write that rolled back).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from shared.platform.settings import get_settings, psycopg_url

_AFTER_COMMIT = "after_commit_callbacks"

SessionFactory = sessionmaker(expire_on_commit=False)
_engine: Engine | None = None


def make_engine(url: str, **options: object) -> Engine:
    """An engine for ``url`` (any postgres scheme; psycopg 3) with the service's pool defaults.

    No pre-ping: it costs a round trip per checkout. A connection found dead instead
    fails its statement, is invalidated with the rest of the pool, and the request
    answers 503 (the task retries); the next one gets a fresh connection.
    """
    if "poolclass" not in options:
        options.setdefault("pool_size", 5)
        options.setdefault("max_overflow", 10)
        options.setdefault("pool_timeout", 5)
    # Statement parameters (payloads, key digests) never appear in errors or their logs.
    options.setdefault("hide_parameters", True)
    return create_engine(psycopg_url(url), **options)


# SQLSTATE classes worth retrying: connection exceptions, transaction rollbacks (deadlock,
# serialization failure) and operator intervention (admin shutdown, cannot connect now).
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "40", "57P")


def is_transient(error: BaseException) -> bool:
    """Whether a database error goes away by retrying: a lost connection, a deadlock, a
    server restarting; not a data-dependent error such as an index row over its limit."""
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    sqlstate = getattr(error.orig, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES)


def get_engine() -> Engine:
    """The process-wide engine, created on first use from ``DATABASE_URL``."""
    global _engine
    if _engine is None:
        _engine = make_engine(get_settings().database_url)
        SessionFactory.configure(bind=_engine)
    return _engine


def dispose_engine() -> None:
    """Drop pooled connections inherited from a parent process (call after fork)."""
    if _engine is not None:
        _engine.dispose(close=False)


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """Open one transaction; commit when the block ends normally, roll back otherwise."""
    get_engine()
    session = SessionFactory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def single_statement() -> Iterator[Connection]:
    """A connection for work that is one SQL statement at a time, each atomic on its own.

    It runs in autocommit, saving the BEGIN and COMMIT round trips: what a statement
    wrote is committed when it returns. This is the webhook hot path's unit of work
    (docs/decisions.md). When the factory is bound to a connection rather than an engine
    (the test harness's rolled-back transaction), that connection is used in a savepoint.
    """
    get_engine()
    bind = SessionFactory.kw["bind"]
    if isinstance(bind, Engine):
        with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection
    else:
        with bind.begin_nested():
            yield bind


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once ``session``'s transaction commits; never if it rolls back."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for callback in session.info.pop(_AFTER_COMMIT, []):
        callback()


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)
