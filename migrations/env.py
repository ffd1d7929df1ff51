"""Alembic environment: online migrations against DATABASE_URL (or a URL given by the caller)."""

from alembic import context
from sqlalchemy import pool

from shared.models import Base
from shared.platform.db import make_engine
from shared.platform.settings import get_settings

config = context.config
url = config.attributes.get("database_url") or get_settings().database_url
connection = config.attributes.get("connection")


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        run(conn)
    engine.dispose()
