"""Migrations that rewrite data keep it: 0006 (due_key without 'infinity') up and down."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from alembic import command
from sqlalchemy import create_engine

from workengine.store.database import sqlalchemy_url
from workengine.store.migrate import alembic_config, migrate

DUE = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def ready_index(connection: psycopg.Connection[tuple[object, ...]]) -> str:
    found = connection.execute(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'tasks_ready_idx'"
    ).fetchone()
    assert found is not None
    return str(found[0])


def test_0006_stores_no_infinity_and_keeps_the_ready_index(empty_database_url: str) -> None:
    migrate(empty_database_url, "0005")
    with psycopg.connect(empty_database_url, autocommit=True) as connection:
        index_before = ready_index(connection)
        connection.execute(
            "INSERT INTO orchestrators (id, display_name, status) VALUES ('ada', 'Ada', 'ONLINE')"
        )
        connection.execute(
            "INSERT INTO tasks (id, orchestrator_id, workspace_id, title, priority, status, due_at) "
            "VALUES ('dated', 'ada', 'ws', 'dated', 2, 'TODO', %s), "
            "('undated', 'ada', 'ws', 'undated', 2, 'TODO', NULL)",
            [DUE],
        )
        assert connection.execute("SELECT count(*) FROM tasks WHERE due_key = 'infinity'").fetchone() == (1,)

    migrate(empty_database_url)
    with psycopg.connect(empty_database_url, autocommit=True) as connection:
        # psycopg's own loaders, in binary as the engine reads: no ±infinity left to refuse.
        cursor = connection.cursor(binary=True)
        keys = {str(i): key for i, key in cursor.execute("SELECT id, due_key FROM tasks")}
        assert keys == {"dated": DUE, "undated": datetime.max.replace(tzinfo=UTC)}
        assert ready_index(connection) == index_before
        # New rows get the new sentinel too.
        connection.execute(
            "INSERT INTO tasks (id, orchestrator_id, workspace_id, title, priority, status) "
            "VALUES ('later', 'ada', 'ws', 'later', 2, 'TODO')"
        )
        assert cursor.execute("SELECT due_key FROM tasks WHERE id = 'later'").fetchone() == (
            datetime.max.replace(tzinfo=UTC),
        )

    engine = create_engine(sqlalchemy_url(empty_database_url))
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
    engine.dispose()
    with psycopg.connect(empty_database_url, autocommit=True) as connection:
        undated = connection.execute("SELECT count(*) FROM tasks WHERE due_key = 'infinity'").fetchone()
        assert undated == (2,)
        assert ready_index(connection) == index_before
