"""Edges of the event log a review reproduced as failures, kept as regressions: a quiet
scope's catch-up after pruning, resuming after a task's end, transactions of other databases
(and other applications) that must not stall delivery, snapshot cursors that cover what the
snapshot shows, rows of unknown kinds, and listener reconnect backoff."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tests.integration.helpers import Stub, complete, create, register
from tests.integration.replicas import (
    NO_SAFETY_POLL,
    ReplicaFactory,
    listener_pids,
    terminate,
    wait_for_listeners,
)
from tests.integration.watching import (
    COMPLETED,
    SNAPSHOT,
    execute,
    expect_end,
    next_event,
    progress,
    watch,
)
from workengine.domain.model import Bookmark, EventKind, EventScope, TaskEvent
from workengine.engine import WorkEngine, execution
from workengine.engine.events import EventHub, WatchTarget
from workengine.engine.feed import EventFeed, FeedSettings
from workengine.store.database import Database
from workengine.v1 import work_engine_service_pb2 as pb


async def _admin(url: str) -> psycopg.AsyncConnection[tuple[Any, ...]]:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


@pytest.fixture
async def unrelated_open_transaction(database_server_url: str) -> AsyncIterator[int]:
    """A session in ANOTHER database of the same cluster (e.g. some other application sharing the
    PostgreSQL server, or an operator's psql left in BEGIN) holding a transaction id."""
    connection = await psycopg.AsyncConnection.connect(database_server_url)
    cursor = await connection.execute("SELECT pg_current_xact_id()::text::bigint")
    row = await cursor.fetchone()
    assert row is not None
    try:
        yield int(row[0])
    finally:
        await connection.rollback()
        await connection.close()


async def _next(stream: AsyncIterator[TaskEvent | Bookmark]) -> TaskEvent:
    event = await asyncio.wait_for(anext(stream), 5.0)
    assert isinstance(event, TaskEvent), "no bookmarks were asked for"
    return event


# A quiet scope's live stream overflows after retention pruned other scopes' events past its
# last cursor: it catches up from where the feed dropped, not OUT_OF_RANGE.


async def test_live_overflow_catch_up_survives_pruning_of_other_scopes(
    replica: ReplicaFactory,
) -> None:
    engine, stub, _ = await replica(
        FeedSettings(subscriber_buffer=2, retention=timedelta(0), prune_interval=NO_SAFETY_POLL)
    )
    await register(stub)
    watched = await create(stub, "watched", workspace_id="ws-quiet")
    busy = await create(stub, "busy", workspace_id="ws-busy")

    stream = engine.watcher.watch(WatchTarget(workspace_id="ws-quiet"))
    try:
        snapshot = await _next(stream)
        assert snapshot.kind is EventKind.SNAPSHOT
        # Other workspaces keep working; the retention expires their events.
        busy_attempt = await execute(stub, busy.id)
        for percent in (10, 20, 30):
            await progress(stub, busy.id, busy_attempt, percent)
        await asyncio.sleep(0.3)
        assert await engine.feed.prune() > 0
        # Now a burst in the watched (and continuously connected) workspace, faster than the
        # consumer reads: its buffer overflows and it must catch up from the table.
        attempt = await execute(stub, watched.id)
        for percent in range(1, 6):
            await progress(stub, watched.id, attempt, percent)
        for _ in range(100):
            if engine.hub.overflows:
                break
            await asyncio.sleep(0.02)
        assert engine.hub.overflows >= 1

        received = [await _next(stream) for _ in range(6)]
        assert [e.kind for e in received] == [EventKind.STARTED] + [EventKind.PROGRESS] * 5
    finally:
        await stream.aclose()


# A task watch resumed at (or after) the task's terminal event ends.


async def test_a_task_watch_resumed_after_its_terminal_event_ends(stub: Stub, engine: WorkEngine) -> None:
    await register(stub)
    task = await create(stub, "task")
    call = watch(stub, task_id=task.id)
    assert (await next_event(call)).kind == SNAPSHOT
    await complete(stub, task.id, await execute(stub, task.id))
    events = [await next_event(call) for _ in range(2)]
    assert events[-1].kind == COMPLETED
    await expect_end(call)

    # The client reconnects with the last cursor it got (e.g. after a network error racing
    # the end of the stream): there is nothing left to send and the task has finished.
    resumed = watch(stub, task_id=task.id, after_cursor=events[-1].cursor)
    try:
        await expect_end(resumed)
    finally:
        resumed.cancel()


# A transaction of another database (or application) holding an xid must not stop live
# streams or long-poll wake-ups.


async def test_a_long_poll_claim_wakes_for_new_work_while_another_database_has_an_open_transaction(
    stub: Stub, monkeypatch: pytest.MonkeyPatch, unrelated_open_transaction: int
) -> None:
    monkeypatch.setattr(execution, "CLAIM_RECHECK_SECONDS", NO_SAFETY_POLL)
    await register(stub)
    claim = asyncio.ensure_future(
        stub.ClaimNextTask(pb.ClaimNextTaskRequest(orchestrator_id="ada", wait={"seconds": 20}))
    )
    await asyncio.sleep(0.3)
    assert not claim.done()
    task = await create(stub, "arrives later")  # created through the same server process
    response: pb.ClaimNextTaskResponse = await asyncio.wait_for(claim, timeout=3)
    assert response.context.task.id == task.id


async def test_progress_reaches_a_watcher_while_another_database_has_an_open_transaction(
    stub: Stub, unrelated_open_transaction: int
) -> None:
    await register(stub)
    task = await create(stub, "task")
    attempt = await execute(stub, task.id)
    call = watch(stub, task_id=task.id)
    try:
        assert (await next_event(call)).kind == SNAPSHOT
        await progress(stub, task.id, attempt, 42)
        assert (await next_event(call)).task.progress == 42  # READ_TIMEOUT is 5 s
    finally:
        call.cancel()


# A SNAPSHOT's cursor covers what the snapshot shows: resuming from it repeats nothing.


async def test_resuming_from_a_snapshot_cursor_does_not_repeat_what_the_snapshot_showed(
    stub: Stub, database_url: str
) -> None:
    await register(stub)
    task = await create(stub, "task")
    in_flight = await psycopg.AsyncConnection.connect(database_url)  # a concurrent write transaction
    try:
        await in_flight.execute("SELECT pg_current_xact_id()")
        attempt = await execute(stub, task.id)
        await progress(stub, task.id, attempt, 20, "twenty")
        call = watch(stub, task_id=task.id)
        snapshot = await next_event(call)
        call.cancel()
        assert (snapshot.kind, snapshot.task.progress, snapshot.task.attempt) == (SNAPSHOT, 20, attempt)
    finally:
        await in_flight.rollback()
        await in_flight.close()

    # The client lost its connection right after the snapshot and resumes from its cursor.
    resumed = watch(stub, task_id=task.id, after_cursor=snapshot.cursor)
    try:
        repeated = []
        with contextlib.suppress(TimeoutError):
            while True:
                event = await asyncio.wait_for(next_event(resumed), 1.0)
                repeated.append((event.kind, event.task.progress))
        assert repeated == [], f"already reflected in the snapshot, sent again: {repeated}"
    finally:
        resumed.cancel()


# A snapshot remembers only its own scope's positions above the watermark.


async def test_snapshot_seen_positions_are_bounded_by_the_scope(
    stub: Stub, engine: WorkEngine, unrelated_open_transaction: int
) -> None:
    await register(stub)
    busy = await create(stub, "busy", workspace_id="ws-busy")
    for i in range(5):
        await create(stub, f"quiet {i}", workspace_id="ws-quiet")
    attempt = await execute(stub, busy.id)
    for percent in range(1, 101):  # events of another workspace, above the held watermark
        await progress(stub, busy.id, attempt, percent)

    async with engine.db.autocommit() as session:
        snapshot = await session.events.snapshot(EventScope.WORKSPACE, "ws-quiet", 1000)
    assert len(snapshot.tasks) == 5
    # None of ws-quiet's events are above the watermark: nothing needs remembering.
    assert len(snapshot.seen_positions) == 0, (
        f"{len(snapshot.seen_positions)} foreign positions shipped (once per task row) and kept"
    )


# An event row of a kind this version does not know (written by a newer replica during a
# rolling upgrade) is skipped; live delivery goes on.


async def test_a_row_the_tailer_cannot_decode_does_not_stop_live_delivery(
    stub: Stub, engine: WorkEngine, database_url: str
) -> None:
    await register(stub)
    other = await create(stub, "written by a newer replica")
    task = await create(stub, "task")
    attempt = await execute(stub, task.id)
    call = watch(stub, task_id=task.id)
    try:
        assert (await next_event(call)).kind == SNAPSHOT
        async with await _admin(database_url) as connection:
            await connection.execute(
                "INSERT INTO task_events (position, task_id, orchestrator_id, workspace_id, kind, status) "
                "SELECT (pg_current_xact_id()::text::bigint << 20) + 1, id, orchestrator_id, workspace_id, "
                "'ARCHIVED', status FROM tasks WHERE id = %s",
                (other.id,),
            )
        await asyncio.sleep(0.5)
        await progress(stub, task.id, attempt, 42)
        assert (await next_event(call)).task.progress == 42
    finally:
        call.cancel()


# The listener's reconnect backoff starts over after each successful connection.


async def test_listener_reconnects_promptly_after_earlier_drops_were_recovered(
    replica: ReplicaFactory,
    database_url: str,
) -> None:
    watched, _, _ = await replica(FeedSettings(safety_poll_interval=NO_SAFETY_POLL))
    await wait_for_listeners(database_url, 1)
    for _ in range(5):  # five separate, each fully recovered, connection losses
        before = frozenset(await listener_pids(database_url))
        await terminate(database_url, list(before))
        await wait_for_listeners(database_url, 1, besides=before)
        await asyncio.sleep(0.2)

    before = frozenset(await listener_pids(database_url))
    started = time.monotonic()
    await terminate(database_url, list(before))
    await wait_for_listeners(database_url, 1, besides=before)
    assert time.monotonic() - started < 1.0, "the sixth reconnect waited out an ever-growing backoff"
    assert watched.feed.listener is not None


async def test_a_second_overflow_while_sending_the_held_events_loses_nothing(replica: ReplicaFactory) -> None:
    # The reliability harness lost ~1,000 events of a slow stream: its queue overflowed again
    # while the events it held from the first overflow were being sent, which moved the
    # catch-up's start past the events dropped the first time.
    engine, stub, _ = await replica(FeedSettings(subscriber_buffer=2))
    await register(stub)
    task = await create(stub, "task")
    attempt = await execute(stub, task.id)
    stream = engine.watcher.watch(WatchTarget(task_id=task.id), keep_open=True)

    async def published() -> None:
        async with engine.db.autocommit() as session:
            head = await session.events.head_position()
        for _ in range(500):
            if engine.hub.position >= head:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the feed did not publish the events")

    async def next_progress() -> int:
        event = await asyncio.wait_for(anext(stream), 5)
        assert isinstance(event, TaskEvent)
        return event.task.progress

    snapshot = await anext(stream)
    assert isinstance(snapshot, TaskEvent) and snapshot.kind is EventKind.SNAPSHOT
    for percent in range(1, 6):  # 1 and 2 are held; 3 overflows; 4 and 5 are dropped
        await progress(stub, task.id, attempt, percent)
    await published()
    first = await next_progress()  # sends what was held, one at a time
    for percent in range(6, 9):  # 6 and 7 queue again; 8 overflows a second time
        await progress(stub, task.id, attempt, percent)
    await published()

    received = [first] + [await next_progress() for _ in range(7)]

    assert received == list(range(1, 9))
    assert engine.hub.overflows >= 2
    await stream.aclose()


async def test_a_feed_started_by_its_first_subscriber_polls_without_listen(
    stub: Stub, database_url: str
) -> None:
    # A feed nobody called start() on (an engine embedded in a program, not served) starts with
    # its first subscriber; without LISTEN, its poll alone brings another process's events.
    database = Database(database_url, pool_size=2)
    feed = EventFeed(database, EventHub(), FeedSettings(listen=False, poll_interval=0.05))
    await register(stub)
    subscription = await feed.subscribe(WatchTarget(orchestrator_id="ada"))
    try:
        task = await create(stub)  # committed by the server's engine, a stranger to this feed
        async with asyncio.timeout(5):
            event = await subscription.next()
        assert event is not None and (event.kind, event.task.id) == (EventKind.CREATED, task.id)
    finally:
        feed.unsubscribe(subscription)
        await feed.close()
        await database.close()
