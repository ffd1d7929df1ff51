"""Row ids are UUID version 7, in time order, whether Python or PostgreSQL makes them."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from shared.models import Base, Organization
from shared.platform.ids import SQL_NEW_ID, new_id


def milliseconds(value: uuid.UUID) -> int:
    return value.int >> 80


def assert_version_7_now(value: uuid.UUID) -> None:
    assert (value.version, value.variant) == (7, uuid.RFC_4122)
    assert abs(milliseconds(value) / 1000 - time.time()) < 60


def test_new_ids_are_version_7_and_sort_in_the_order_they_were_made():
    made = []
    for _ in range(3):
        made.append(new_id())
        time.sleep(0.002)
    for value in made:
        assert_version_7_now(value)
    assert made == sorted(made)
    assert len({new_id() for _ in range(10_000)}) == 10_000


def test_an_id_made_for_a_past_moment_carries_its_milliseconds():
    at = datetime(2026, 11, 30, 12, 34, 56, 789_000, tzinfo=UTC)
    assert milliseconds(new_id(at)) == int(at.timestamp() * 1000)
    assert new_id(at).version == 7


def test_postgresql_makes_the_same_kind_of_id_and_in_time_order(session):
    first = session.scalar(text(f"SELECT {SQL_NEW_ID}"))
    time.sleep(0.002)
    second = session.scalar(text(f"SELECT {SQL_NEW_ID}"))
    for value in (first, second):
        assert_version_7_now(value)
    assert first < second
    made = session.execute(
        text(
            f"SELECT count(DISTINCT id), count(*) FILTER (WHERE substr(id::text, 15, 1) <> '7' "
            "OR substr(id::text, 20, 1) NOT IN ('8', '9', 'a', 'b')) "
            f"FROM (SELECT {SQL_NEW_ID} AS id FROM generate_series(1, 100000)) AS made"
        )
    ).one()
    assert tuple(made) == (100_000, 0)  # all distinct, none of another version or variant


def test_every_id_column_defaults_to_a_time_ordered_id(session):
    defaults = dict(
        session.execute(
            text(
                "SELECT table_name, column_default FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND column_name = 'id'"
            )
        ).all()
    )
    tables = {table.name for table in Base.metadata.sorted_tables if "id" in table.c}
    assert tables <= set(defaults)
    assert {defaults[name] for name in tables} == {SQL_NEW_ID}


def test_rows_get_version_7_ids_from_sql_and_from_the_orm(session):
    from_sql = session.scalar(
        text("INSERT INTO organizations (name) VALUES ('By SQL') RETURNING id")
    )
    organization = Organization(name="By ORM")
    session.add(organization)
    session.flush()
    assert_version_7_now(from_sql)
    assert_version_7_now(organization.id)
