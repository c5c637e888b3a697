"""Extra server "processes" on the test database, and what a test needs to see or break
their connections to it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import psycopg

from tests.integration.helpers import Stub
from workengine.engine import WorkEngine
from workengine.engine.feed import FeedSettings
from workengine.store.listener import APPLICATION_NAME

# Long enough that a delivery within a test's read timeout cannot come from the safety poll.
NO_SAFETY_POLL = 600.0


class Replica(NamedTuple):
    engine: WorkEngine
    stub: Stub
    target: str


ReplicaFactory = Callable[[FeedSettings], Awaitable[Replica]]


async def admin(database_url: str) -> psycopg.AsyncConnection[tuple[Any, ...]]:
    return await psycopg.AsyncConnection.connect(database_url, autocommit=True)


async def listener_pids(database_url: str) -> list[int]:
    async with await admin(database_url) as connection:
        cursor = await connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            (APPLICATION_NAME,),
        )
        return [int(row[0]) for row in await cursor.fetchall()]


async def wait_for_listeners(database_url: str, count: int, *, besides: frozenset[int] = frozenset()) -> None:
    for _ in range(250):
        if len(set(await listener_pids(database_url)) - besides) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} listening connections")


async def terminate(database_url: str, pids: list[int]) -> None:
    async with await admin(database_url) as connection:
        for pid in pids:
            await connection.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def wait_until_gone(database_url: str, pids: list[int]) -> None:
    for _ in range(250):
        async with await admin(database_url) as connection:
            cursor = await connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
            )
            row = await cursor.fetchone()
        if row is not None and row[0] == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"backends {pids} still running")
