"""Graceful stop: watch streams end at once with UNAVAILABLE, long polls answer "no task";
and shutdown ends even when a cancellation lands just as what it interrupts is woken."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import grpc
import psycopg
import pytest
from google.protobuf import duration_pb2

from tests.integration.helpers import Stub, claim, create, register
from tests.integration.replicas import NO_SAFETY_POLL
from workengine.api.server import start_server
from workengine.domain.errors import Unavailable
from workengine.engine import WorkEngine
from workengine.engine.events import EventHub, WatchTarget
from workengine.engine.feed import EventFeed, FeedSettings
from workengine.store.database import APPLICATION_NAME, Database, libpq_url
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc


async def test_stop_ends_streams_and_long_polls_promptly(engine: WorkEngine) -> None:
    running = await start_server(engine, "127.0.0.1", 0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        await register(stub)
        task = await create(stub)
        watch = stub.WatchTaskProgress(pb.WatchTaskProgressRequest(task_id=task.id))
        snapshot = await asyncio.wait_for(watch.read(), timeout=5)
        assert isinstance(snapshot, pb.WatchTaskProgressResponse)
        await claim(stub)  # nothing else is ready: the long poll below waits
        poll = asyncio.create_task(claim(stub, wait=duration_pb2.Duration(seconds=30)))
        await asyncio.sleep(0.3)

        started = time.monotonic()
        await running.stop(grace=10)
        assert time.monotonic() - started < 5, "stop waited for the grace period"

        polled = await asyncio.wait_for(poll, timeout=5)
        assert not polled.HasField("context")
        # The STARTED event may still be buffered before the end of the stream.
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            for _ in range(10):
                await asyncio.wait_for(watch.read(), timeout=5)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "after_cursor" in (ended.value.details() or "")
    assert engine.hub.subscriber_count == 0


# Python 3.11's asyncio.wait_for returned the awaited result instead of raising when its caller
# was cancelled after that result was ready: the cancellation was lost. The feed's tailer and
# live watches waited that way. In CI this hung a two-replica test's teardown for over ten
# minutes: the watched replica's tailer was woken in the same loop iteration as close()
# cancelled it, went on looping, and close() awaited it forever.

# Closing takes milliseconds; a hang must fail the test, not stall the suite.
PROMPTLY = 5.0


async def test_a_feed_closed_just_after_its_tailer_was_woken_stops(engine: WorkEngine) -> None:
    # A feed of its own, so a tailer outliving close() cannot hang the engine fixture's
    # teardown as well; polling every 600 s, so the tailer sits in its timed wait.
    feed = EventFeed(engine.db, EventHub(), FeedSettings(listen=False, poll_interval=NO_SAFETY_POLL))
    target = WatchTarget(orchestrator_id="ada")
    first = await feed.subscribe(target)
    await asyncio.sleep(0.2)  # the tailer reads once, then waits with a timeout: it has a subscriber
    # The last watch ends and a new one starts, which wakes the tailer (subscribing is what
    # positions it); close() cancels it before it has run again.
    feed.unsubscribe(first)
    subscription = await feed.subscribe(target)
    closing = asyncio.ensure_future(feed.close())
    done, _ = await asyncio.wait({closing}, timeout=PROMPTLY)
    feed.unsubscribe(subscription)
    assert closing in done, "close() still waits for the feed's tailer"
    closing.result()


async def test_a_live_watch_cancelled_as_it_is_woken_ends_cancelled(stub: Stub, engine: WorkEngine) -> None:
    """A cancelled watch that went on would keep its subscription (and the feed's tailer
    polling for it) although its client is gone."""
    await register(stub)
    task = await create(stub)
    # keep_open and bookmarks: the watch waits for its next event with a timeout.
    watching = engine.watcher.watch(
        WatchTarget(task_id=task.id), keep_open=True, bookmark_interval=timedelta(hours=1)
    )
    async with asyncio.timeout(PROMPTLY):
        await anext(watching)  # the snapshot
    reading = asyncio.ensure_future(anext(watching))
    await asyncio.sleep(0.2)  # waiting for a live event
    engine.hub.close()  # wakes its subscription...
    reading.cancel()  # ...and the reader is cancelled before it has run again
    try:
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(PROMPTLY):
                await reading
    finally:
        await watching.aclose()


async def test_a_connection_returned_after_the_pool_closed_is_closed_not_kept(database_url: str) -> None:
    database = Database(database_url)
    async with database.autocommit() as reading:
        await database.close()  # a session still running when the server stops
        await reading.orchestrators.get("ada")
    await asyncio.sleep(0.1)  # the close is scheduled, not awaited

    assert database.pool.checked_out == 0
    assert await _open_pool_connections(database) == 0
    with pytest.raises(Unavailable):
        async with database.autocommit():
            pass


async def _open_pool_connections(database: Database) -> int:
    # Through a fresh connection of our own: the pool must not hand one out any more.
    async with await psycopg.AsyncConnection.connect(libpq_url(database.url)) as admin:
        cursor = await admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s AND pid <> pg_backend_pid()",
            (APPLICATION_NAME,),
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])
