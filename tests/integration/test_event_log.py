"""The event log under watches: commit order, retention, keep_open, slow and cancelled
subscribers, and delivery across server processes (LISTEN/NOTIFY, polling, reconnects).

"Another process" here is a second WorkEngine with its own pool, feed and listener on its
own gRPC port, sharing the test database; tests/e2e/test_replicas.py does the same with two
`workengine serve` processes.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta

import grpc
import pytest

from tests.integration.helpers import Stub, complete, create, expect_error, register
from tests.integration.replicas import (
    NO_SAFETY_POLL,
    ReplicaFactory,
    admin,
    listener_pids,
    terminate,
    wait_for_listeners,
    wait_until_gone,
)
from tests.integration.watching import (
    BOOKMARK,
    COMPLETED,
    CREATED,
    PROGRESS,
    SNAPSHOT,
    STARTED,
    execute,
    expect_end,
    next_event,
    next_events,
    progress,
    wait_for_subscribers,
    watch,
)
from workengine.domain.model import EventKind, EventPage
from workengine.engine import WorkEngine, execution
from workengine.engine.feed import FeedSettings
from workengine.store.events import EventStore
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

# A client that reads slowly: no window growth, a small per-stream window.
SMALL_WINDOW = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 8192)]


async def watched_and_writer(
    replica: ReplicaFactory, database_url: str, settings: FeedSettings
) -> tuple[WorkEngine, Stub, Stub, task_pb2.Task, int]:
    """Two server processes, both listening: one to watch through, one to write through; and a
    task started through the writer (engine and stub of the first, stub of the second, the
    task, its attempt)."""
    watched, watched_stub, _ = await replica(settings)
    _, writer, _ = await replica(settings)
    await wait_for_listeners(database_url, 2)
    await register(writer)
    task = await create(writer, "task")
    attempt = await execute(writer, task.id)
    return watched, watched_stub, writer, task, attempt


# Commit order


async def test_an_event_waits_for_an_older_open_transaction_and_arrives_after_it(
    stub: Stub, engine: WorkEngine
) -> None:
    """The reviewer's gap: an event committed after a later-numbered one was skipped on resume.

    Here transaction A records an event first and stays open while B's progress commits. The
    stream must not show B before A, so a subscriber that resumes from B's cursor cannot skip A.
    """
    await register(stub)
    task = await create(stub, "task")
    attempt = await execute(stub, task.id)
    call = watch(stub, task_id=task.id)
    try:
        assert (await next_event(call)).kind == SNAPSHOT
        read = asyncio.ensure_future(next_event(call))
        async with engine.db.transaction() as older:
            current = await older.tasks.get(task.id)
            assert current is not None
            await older.events.record(EventKind.PROGRESS, current, progress=10, message="older")
            await progress(stub, task.id, attempt, 20, "newer")
            await asyncio.sleep(0.3)
            assert not read.done(), "an event was delivered while an older transaction was open"
        first, second = await read, await next_event(call)
        assert [(e.kind, e.message) for e in (first, second)] == [(PROGRESS, "older"), (PROGRESS, "newer")]
        assert first.cursor < second.cursor

        resumed = watch(stub, task_id=task.id, after_cursor=first.cursor)
        try:
            assert (await next_event(resumed)).message == "newer"
        finally:
            resumed.cancel()
    finally:
        call.cancel()


# Retention


async def test_a_cursor_older_than_the_retention_is_out_of_range(replica: ReplicaFactory) -> None:
    engine, stub, _ = await replica(FeedSettings(retention=timedelta(0), prune_interval=NO_SAFETY_POLL))
    await register(stub)
    task = await create(stub, "task")
    first = await next_event(call := watch(stub, task_id=task.id))
    call.cancel()
    attempt = await execute(stub, task.id)
    await progress(stub, task.id, attempt, 50)

    assert await engine.feed.prune() >= 3  # CREATED, STARTED, PROGRESS
    error = await expect_error(
        next_event(watch(stub, task_id=task.id, after_cursor=first.cursor)),
        grpc.StatusCode.OUT_OF_RANGE,
        "after_cursor",
    )
    assert "pruned" in (error.details() or "")

    fresh = watch(stub, task_id=task.id)  # the way back: a new snapshot and its cursor
    try:
        snapshot = await next_event(fresh)
        assert (snapshot.kind, snapshot.task.progress) == (SNAPSHOT, 50)
        await complete(stub, task.id, attempt)
        assert (await next_event(fresh)).kind == COMPLETED
    finally:
        fresh.cancel()
    resumed = watch(stub, task_id=task.id, after_cursor=snapshot.cursor)
    try:
        assert (await next_event(resumed)).kind == COMPLETED
    finally:
        resumed.cancel()


async def test_pruning_keeps_events_younger_than_the_retention(replica: ReplicaFactory) -> None:
    engine, stub, _ = await replica(FeedSettings(retention=timedelta(hours=1)))
    await register(stub)
    task = await create(stub, "task")
    assert await engine.feed.prune() == 0
    call = watch(stub, task_id=task.id, after_cursor=1)
    try:
        assert (await next_event(call)).kind == CREATED
    finally:
        call.cancel()


async def test_a_cursor_ahead_of_the_log_is_out_of_range(stub: Stub) -> None:
    await register(stub)
    task = await create(stub, "task")
    await expect_error(
        next_event(watch(stub, task_id=task.id, after_cursor=1 << 62)),
        grpc.StatusCode.OUT_OF_RANGE,
        "after_cursor: 4611686018427387904 is ahead of the event log",
    )


# Bookmarks


async def test_an_idle_watch_gets_bookmarks_that_keep_its_cursor_past_pruned_events(
    replica: ReplicaFactory,
) -> None:
    engine, stub, _ = await replica(FeedSettings(retention=timedelta(0), prune_interval=NO_SAFETY_POLL))
    await register(stub)
    quiet = await create(stub, "quiet", workspace_id="ws-quiet")
    busy = await create(stub, "busy", workspace_id="ws-busy")
    call = watch(stub, task_id=quiet.id, bookmark_interval={"seconds": 1})
    try:
        assert (await next_event(call)).kind == SNAPSHOT
        busy_attempt = await execute(stub, busy.id)
        for percent in (10, 20):  # other scopes move the log on
            await progress(stub, busy.id, busy_attempt, percent)
        bookmark = await next_event(call)
        assert bookmark.kind == BOOKMARK and not bookmark.HasField("task")
        assert bookmark.cursor >= engine.feed.position > 0
    finally:
        call.cancel()

    assert await engine.feed.prune() > 0  # everything so far is gone, the busy task's events too
    attempt = await execute(stub, quiet.id)
    resumed = watch(stub, task_id=quiet.id, after_cursor=bookmark.cursor)
    try:
        started = await next_event(resumed)
        assert (started.kind, started.task.id, started.attempt) == (STARTED, quiet.id, attempt)
    finally:
        resumed.cancel()


async def test_bookmarks_are_not_sent_unless_asked_for_and_the_interval_is_checked(stub: Stub) -> None:
    await register(stub)
    task = await create(stub, "task")
    call = watch(stub, task_id=task.id)
    try:
        assert (await next_event(call)).kind == SNAPSHOT
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(call.read(), timeout=1.5)
    finally:
        call.cancel()
    for seconds in (0, 7200):
        await expect_error(
            next_event(watch(stub, task_id=task.id, bookmark_interval={"seconds": seconds, "nanos": 1})),
            grpc.StatusCode.INVALID_ARGUMENT,
            "bookmark_interval: must be between 1 second and 1 hour",
        )


# keep_open


async def test_keep_open_keeps_a_task_watch_after_the_task_finishes(stub: Stub, engine: WorkEngine) -> None:
    await register(stub)
    task = await create(stub, "task")
    call = watch(stub, task_id=task.id, keep_open=True)
    try:
        assert (await next_event(call)).kind == SNAPSHOT
        await complete(stub, task.id, await execute(stub, task.id))
        assert [e.kind for e in await next_events(call, 2)] == [STARTED, COMPLETED]
        await asyncio.sleep(0.2)
        assert engine.hub.subscriber_count == 1, "the stream ended although keep_open was set"
    finally:
        call.cancel()
    await wait_for_subscribers(engine, 0)


async def test_without_keep_open_a_task_watch_ends_after_the_terminal_event(stub: Stub) -> None:
    await register(stub)
    task = await create(stub, "task")
    call = watch(stub, task_id=task.id)
    assert (await next_event(call)).kind == SNAPSHOT
    await complete(stub, task.id, await execute(stub, task.id))
    assert [e.kind for e in await next_events(call, 2)] == [STARTED, COMPLETED]
    await expect_end(call)


# Slow and cancelled subscribers


async def test_a_slow_subscriber_catches_up_from_the_table_without_holding_up_a_fast_one(
    replica: ReplicaFactory,
) -> None:
    engine, stub, target = await replica(FeedSettings(subscriber_buffer=4))
    await register(stub)
    task = await create(stub, "task")
    attempt = await execute(stub, task.id)
    bulky = "x" * 4_000  # a few events fill the HTTP/2 windows, so the server-side stream blocks
    async with grpc.aio.insecure_channel(target, options=SMALL_WINDOW) as slow_channel:
        slow = watch(pb_grpc.WorkEngineServiceStub(slow_channel), task_id=task.id)
        fast = watch(stub, task_id=task.id)
        try:
            assert (await next_event(slow)).kind == SNAPSHOT
            assert (await next_event(fast)).kind == SNAPSHOT
            for percent in range(1, 51):
                await progress(stub, task.id, attempt, percent, note=bulky)
            # The fast subscriber has everything while the slow one has not read at all.
            assert [e.task.progress for e in await next_events(fast, 50)] == list(range(1, 51))
            assert engine.hub.overflows >= 1, "the slow subscriber never fell behind its buffer"
            received = await next_events(slow, 50)
            assert [e.task.progress for e in received] == list(range(1, 51))
            assert len({e.cursor for e in received}) == 50
        finally:
            slow.cancel()
            fast.cancel()


async def test_cancelled_streams_release_their_tasks_subscriptions_and_connections(
    stub: Stub, engine: WorkEngine
) -> None:
    await register(stub)
    task = await create(stub, "task")
    await wait_for_subscribers(engine, 0)
    await asyncio.sleep(0.1)
    baseline_tasks = len(asyncio.all_tasks())

    calls = [watch(stub, task_id=task.id) for _ in range(10)]
    calls += [watch(stub, orchestrator_id="ada") for _ in range(10)]
    for call in calls:
        assert (await next_event(call)).kind == SNAPSHOT
    assert engine.hub.subscriber_count == 20
    for call in calls:
        call.cancel()

    await wait_for_subscribers(engine, 0)
    for _ in range(100):
        if len(asyncio.all_tasks()) <= baseline_tasks and engine.db.pool.checked_out == 0:
            break
        await asyncio.sleep(0.05)
    assert len(asyncio.all_tasks()) <= baseline_tasks
    assert engine.db.pool.checked_out == 0


async def test_a_stream_past_its_deadline_ends_and_releases_its_subscription(
    stub: Stub, engine: WorkEngine
) -> None:
    await register(stub)
    task = await create(stub, "task")
    call = stub.WatchTaskProgress(pb.WatchTaskProgressRequest(task_id=task.id), timeout=0.5)
    assert (await next_event(call)).kind == SNAPSHOT
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await asyncio.wait_for(call.read(), timeout=5)
    assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await wait_for_subscribers(engine, 0)


async def test_the_tailer_survives_an_unexpected_read_failure(
    stub: Stub, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = iter([RuntimeError("injected")])
    real_tail = EventStore.tail

    async def failing_once(self: EventStore, after: int, limit: int) -> EventPage:
        for failure in failures:
            raise failure
        return await real_tail(self, after, limit)

    monkeypatch.setattr(EventStore, "tail", failing_once)
    await register(stub)
    task = await create(stub, "task")
    call = watch(stub, task_id=task.id)
    try:
        assert (await next_event(call)).kind == SNAPSHOT
        attempt = await execute(stub, task.id)
        await progress(stub, task.id, attempt, 70)
        assert [(e.kind, e.task.progress) for e in await next_events(call, 2)] == [
            (STARTED, 0),
            (PROGRESS, 70),
        ]
    finally:
        call.cancel()


# Across processes


async def test_an_update_through_one_process_reaches_a_subscriber_of_another_through_listen(
    replica: ReplicaFactory, database_url: str
) -> None:
    _, watched_stub, _ = await replica(FeedSettings(safety_poll_interval=NO_SAFETY_POLL))
    _, writer, _ = await replica(FeedSettings(safety_poll_interval=NO_SAFETY_POLL))
    await wait_for_listeners(database_url, 2)
    await register(writer)
    task = await create(writer, "task")
    call = watch(watched_stub, orchestrator_id="ada")
    try:
        assert (await next_event(call)).kind == SNAPSHOT
        attempt = await execute(writer, task.id)
        for percent in (10, 20, 30):
            await progress(writer, task.id, attempt, percent, f"step {percent}")
        await complete(writer, task.id, attempt)
        events = await next_events(call, 5)
        assert [(e.kind, e.task.progress) for e in events] == [
            (STARTED, 0),
            (PROGRESS, 10),
            (PROGRESS, 20),
            (PROGRESS, 30),
            (COMPLETED, 100),
        ]
        assert [e.cursor for e in events] == sorted({e.cursor for e in events})
    finally:
        call.cancel()


async def test_an_event_far_larger_than_a_notify_payload_crosses_processes(
    replica: ReplicaFactory, database_url: str
) -> None:
    """NOTIFY payloads stop just under 8000 bytes; only the cursor travels, the row is read."""
    _, watched_stub, writer, task, attempt = await watched_and_writer(
        replica, database_url, FeedSettings(safety_poll_interval=NO_SAFETY_POLL)
    )
    call = watch(watched_stub, task_id=task.id)
    try:
        assert (await next_event(call)).kind == SNAPSHOT
        await progress(writer, task.id, attempt, 50, "m" * 2_000, blob="b" * 60_000)
        event = await next_event(call)
        blob = event.metadata.fields["blob"].string_value
        assert (event.kind, len(event.message), len(blob)) == (PROGRESS, 2_000, 60_000)
    finally:
        call.cancel()


async def test_without_listen_a_subscriber_sees_another_process_by_polling(
    replica: ReplicaFactory, database_url: str
) -> None:
    _, watched_stub, _ = await replica(FeedSettings(listen=False, poll_interval=0.05))
    _, writer, _ = await replica(FeedSettings(listen=False, poll_interval=0.05))
    assert await listener_pids(database_url) == []
    await register(writer)
    task = await create(writer, "task")
    call = watch(watched_stub, task_id=task.id)
    try:
        assert (await next_event(call)).kind == SNAPSHOT
        attempt = await execute(writer, task.id)
        await progress(writer, task.id, attempt, 60, "polled")
        await complete(writer, task.id, attempt)
        assert [e.kind for e in await next_events(call, 3)] == [STARTED, PROGRESS, COMPLETED]
        await expect_end(call)
    finally:
        call.cancel()


async def test_a_terminated_listener_reconnects_and_its_subscribers_miss_nothing(
    replica: ReplicaFactory, database_url: str
) -> None:
    watched, watched_stub, writer, task, attempt = await watched_and_writer(
        replica, database_url, FeedSettings(safety_poll_interval=NO_SAFETY_POLL)
    )
    call = watch(watched_stub, task_id=task.id)
    try:
        assert (await next_event(call)).kind == SNAPSHOT
        await progress(writer, task.id, attempt, 10)
        assert (await next_event(call)).task.progress == 10

        before = frozenset(await listener_pids(database_url))
        await terminate(database_url, list(before))
        # Committed while nobody listens: must come through the catch-up after reconnecting.
        await progress(writer, task.id, attempt, 20)
        await progress(writer, task.id, attempt, 30)
        await wait_for_listeners(database_url, 2, besides=before)
        await progress(writer, task.id, attempt, 40)

        assert [e.task.progress for e in await next_events(call, 3)] == [20, 30, 40]
        assert watched.feed.listener is not None and watched.feed.listener.connections >= 2
    finally:
        call.cancel()


async def test_subscribers_survive_every_database_connection_being_terminated(
    replica: ReplicaFactory, database_url: str
) -> None:
    """What a database restart looks like to a server: every connection it had is gone."""
    _, watched_stub, writer, task, attempt = await watched_and_writer(replica, database_url, FeedSettings())
    call = watch(watched_stub, orchestrator_id="ada")
    try:
        assert (await next_event(call)).kind == SNAPSHOT
        async with await admin(database_url) as connection:
            cursor = await connection.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            pids = [int(row[0]) for row in await cursor.fetchall()]
        await terminate(database_url, pids)
        # pg_terminate_backend only signals: wait until they are gone, so no update below can
        # commit on a connection that dies before answering (an ambiguous commit the client
        # would retry, recording the update twice).
        await wait_until_gone(database_url, pids)
        for percent in (25, 50, 75):
            await _retry_unavailable(functools.partial(progress, writer, task.id, attempt, percent))
        await _retry_unavailable(functools.partial(complete, writer, task.id, attempt))
        events = await next_events(call, 4)
        assert [(e.kind, e.task.progress) for e in events] == [
            (PROGRESS, 25),
            (PROGRESS, 50),
            (PROGRESS, 75),
            (COMPLETED, 100),
        ]
    finally:
        call.cancel()


async def _retry_unavailable(send: Callable[[], Awaitable[object]]) -> None:
    """A client's retry of a call that failed because its server lost the database."""
    for _ in range(50):
        try:
            await send()
            return
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            await asyncio.sleep(0.1)
    raise AssertionError("still UNAVAILABLE")


async def test_a_long_poll_claim_wakes_for_work_created_through_another_process(
    replica: ReplicaFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(execution, "CLAIM_RECHECK_SECONDS", NO_SAFETY_POLL)
    _, claimer, _ = await replica(FeedSettings(safety_poll_interval=NO_SAFETY_POLL))
    _, writer, _ = await replica(FeedSettings(safety_poll_interval=NO_SAFETY_POLL))
    await register(writer)
    claim = asyncio.ensure_future(
        claimer.ClaimNextTask(pb.ClaimNextTaskRequest(orchestrator_id="ada", wait={"seconds": 20}))
    )
    await asyncio.sleep(0.3)
    assert not claim.done()
    task = await create(writer, "arrives later")
    response: pb.ClaimNextTaskResponse = await asyncio.wait_for(claim, timeout=10)
    assert response.context.task.id == task.id
