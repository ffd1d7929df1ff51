"""Database engine, sessions and the one unit-of-work helper.

Every HTTP request and every task opens exactly one unit of work with
:func:`unit_of_work`; domain functions receive its session as a keyword argument and
never commit on their own. Callbacks registered with :func:`after_commit` run only once
the transaction has committed (so a task is never sent for a write that rolled back).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import get_settings, psycopg_url

_AFTER_COMMIT = "after_commit_callbacks"

SessionFactory = sessionmaker(expire_on_commit=False)
_engine: Engine | None = None


def make_engine(url: str, **options: object) -> Engine:
    """An engine for ``url`` (any postgres scheme; psycopg 3) with the service's pool defaults."""
    options.setdefault("pool_pre_ping", True)
    if "poolclass" not in options:
        options.setdefault("pool_size", 5)
        options.setdefault("max_overflow", 10)
        options.setdefault("pool_timeout", 5)
    return create_engine(psycopg_url(url), **options)


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
