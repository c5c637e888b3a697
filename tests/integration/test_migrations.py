"""Migrations that rewrite data keep it: 0006 (due_key without 'infinity') up and down; and
what it stores loads in any session time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from alembic import command
from psycopg import sql
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from workengine.domain.model import NewOrchestrator, NewTask, SelectionCriteria, TaskFilter
from workengine.domain.scoring import UNDATED
from workengine.engine import WorkEngine
from workengine.store.database import Database, sqlalchemy_url
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
        assert keys == {"dated": DUE, "undated": UNDATED}
        assert ready_index(connection) == index_before
        # New rows get the new sentinel too.
        connection.execute(
            "INSERT INTO tasks (id, orchestrator_id, workspace_id, title, priority, status) "
            "VALUES ('later', 'ada', 'ws', 'later', 2, 'TODO')"
        )
        assert cursor.execute("SELECT due_key FROM tasks WHERE id = 'later'").fetchone() == (UNDATED,)

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


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "America/Adak"])
async def test_tasks_with_and_without_due_times_work_in_a_session_time_zone_off_utc(
    database_url: str, zone: str
) -> None:
    """psycopg returns timestamps in the session's time zone (the database's or role's
    `timezone` setting, PGTZ): the undated sentinel must still be a datetime Python holds there,
    and every instant must come back the same."""
    name = str(make_url(database_url).database)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("ALTER DATABASE {} SET timezone = {}").format(sql.Identifier(name), sql.Literal(zone))
        )
    engine = WorkEngine(Database(database_url), clock=lambda: DUE - timedelta(hours=1))
    try:
        await engine.access.register(NewOrchestrator(id="ada", display_name="Ada"), None)
        undated = await engine.tasks.create(
            NewTask(id="undated", orchestrator_id="ada", workspace_id="ws", title="u")
        )
        dated = await engine.tasks.create(
            NewTask(id="dated", orchestrator_id="ada", workspace_id="ws", title="d", due_at=DUE)
        )
        assert undated.due_at is None and dated.due_at == DUE
        first = await engine.execution.claim_next("ada", SelectionCriteria())
        second = await engine.execution.claim_next("ada", SelectionCriteria())
        assert first is not None and second is not None
        assert [first.context.task.id, second.context.task.id] == ["dated", "undated"]
        listed = await engine.tasks.list_page(TaskFilter(orchestrator_id="ada"), 10, "")
        assert {t.id: t.due_at for t in listed.items} == {"undated": None, "dated": DUE}
    finally:
        await engine.close()


def test_a_database_a_newer_release_migrated_is_left_as_it_is(empty_database_url: str) -> None:
    """During a rolling upgrade, or after a rollback, this release meets a database the next one
    migrated: it runs on it unchanged (docs/development.md, "Migrations and rolling upgrades"),
    so `serve` must start rather than fail to find that revision."""
    assert migrate(empty_database_url) is None
    with psycopg.connect(empty_database_url, autocommit=True) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    assert migrate(empty_database_url) == "9999"
    with psycopg.connect(empty_database_url, autocommit=True) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("9999",)]
