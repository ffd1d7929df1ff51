"""Fixtures of the platform tests: a scratch database for moving the schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from shared.models import Base
from shared.platform.db import make_engine
from tests.conftest import WORKER_ID, database_url_named, drop_database, recreate_database


@pytest.fixture
def scratch_database() -> Iterator[tuple[str, Engine]]:
    """An empty database of its own, for tests that move the schema up and down."""
    name = f"recon_scratch_{WORKER_ID}"
    recreate_database(name)
    url = database_url_named(name)
    engine = make_engine(url)
    yield url, engine
    engine.dispose()
    drop_database(name)


def schema_differences(engine: Engine) -> list:
    """What autogenerate finds between the models and the database's schema."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)
