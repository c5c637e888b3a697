"""A newer release's migration runs while this code serves (a rolling upgrade, docs/development.md):
columns it adds to the tables this code reads with `*` change the rows its prepared statements
return, which PostgreSQL refuses ("cached plan must not change result type"). Every call still
answers: a statement on its own runs again once its connection forgot its prepared statements,
a transaction runs again after its rollback, on a pool whose older connections retire."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import cast

import psycopg
import pytest

from workengine.client import AsyncWorkEngineClient
from workengine.v1 import task_pb2

# Every table whose rows some statement returns whole.
TABLES = ("tasks", "orchestrators", "task_events", "task_attempts")
# psycopg prepares a statement on its sixth run on a connection.
WARM_UP = 8


async def lifecycle(client: AsyncWorkEngineClient, title: str) -> str:
    """Most of what a server changes: a task created, claimed, reported on and finished; then
    what it reads. Returns the task's id."""
    task = await client.create_task("ada", "ws-1", title)
    todo = client.list_tasks(orchestrator_id="ada", statuses=[task_pb2.TASK_STATUS_TODO])
    assert [t.id async for t in todo] == [task.id]
    claimed = await client.claim_next_task("ada", identity="schema-test")
    assert claimed.context.task.id == task.id
    await client.update_task_progress(task.id, claimed.attempt, 50)
    await client.heartbeat(task.id, claimed.attempt)
    await client.complete_task(task.id, claimed.attempt)
    await reads(client, task.id)
    return task.id


async def reads(client: AsyncWorkEngineClient, task_id: str) -> None:
    """Statements on their own (no transaction): a task, its attempts, its watch, a replay of
    the log, the orchestrator, the statistics."""
    assert (await client.get_task(task_id)).status == task_pb2.TASK_STATUS_DONE
    assert len(await client.get_task_attempts(task_id)) == 1
    kinds = [event.kind async for event in client.watch_task_progress(task_id=task_id)]
    assert kinds == [task_pb2.TASK_EVENT_KIND_SNAPSHOT]  # DONE already: the stream ends there
    await replay_first_event(client)
    assert (await client.get_orchestrator("ada")).id == "ada"
    assert [o.id async for o in client.list_orchestrators()] == ["ada"]
    assert (await client.get_execution_stats("ada")).completed_tasks >= 1


async def replay_first_event(client: AsyncWorkEngineClient) -> None:
    stream = cast(
        AsyncGenerator[task_pb2.TaskEvent, None],
        client.watch_task_progress(orchestrator_id="ada", after_cursor=1),
    )
    async with contextlib.aclosing(stream):
        first = await anext(stream)
    assert first.kind == task_pb2.TASK_EVENT_KIND_CREATED


@pytest.mark.parametrize("first", ["statement", "transaction"])
async def test_every_call_answers_after_a_migration_adds_columns_under_prepared_statements(
    target: str, database_url: str, first: str
) -> None:
    """`first`: what meets the change first, a statement on its own (run again at once) or a
    transaction (run again by the engine, after the pool retires its connections)."""
    async with AsyncWorkEngineClient(target) as client:
        await client.register_orchestrator("Ada", orchestrator_id="ada")
        done = [await lifecycle(client, f"before {n}") for n in range(WARM_UP)]
        with psycopg.connect(database_url, autocommit=True) as migration:
            for table in TABLES:
                migration.execute(f"ALTER TABLE {table} ADD COLUMN added_by_a_newer_release text")
        if first == "statement":
            await reads(client, done[-1])
        for n in range(WARM_UP):
            await lifecycle(client, f"after {n}")
