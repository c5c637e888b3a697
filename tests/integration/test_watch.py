"""WatchTaskProgress: snapshot, live events, targets, kinds filter, resume and cleanup."""

from __future__ import annotations

import asyncio
import itertools

import grpc

from tests.integration.helpers import Stub, complete, create, expect_error, register
from tests.integration.watching import (
    CANCELLED,
    COMPLETED,
    CREATED,
    PROGRESS,
    READ_TIMEOUT,
    SNAPSHOT,
    STARTED,
    UNBLOCKED,
    execute,
    expect_end,
    kinds_of,
    next_event,
    next_events,
    progress,
    wait_for_subscribers,
    watch,
)
from workengine.engine import WorkEngine
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb


def assert_increasing(cursors: list[int]) -> None:
    assert all(a < b for a, b in itertools.pairwise(cursors)), cursors


# Task watch


async def test_task_watch_sends_a_snapshot_then_live_events_and_ends_after_completion(stub: Stub) -> None:
    await register(stub)
    task = await create(stub, "watched")
    other = await create(stub, "unrelated")
    call = watch(stub, task_id=task.id)
    try:
        snapshot = await next_event(call)
        assert snapshot.kind == SNAPSHOT
        assert snapshot.task.id == task.id
        assert snapshot.task.status == task_pb2.TASK_STATUS_TODO
        assert snapshot.cursor > 0

        attempt = await execute(stub, task.id)
        other_attempt = await execute(stub, other.id)
        await progress(stub, other.id, other_attempt, 10, "elsewhere")
        await progress(stub, task.id, attempt, 40, "halfway", step="build", files=3)
        await complete(stub, other.id, other_attempt)
        await complete(stub, task.id, attempt)

        started, progressed, completed = await next_events(call, 3)
        assert [started.kind, progressed.kind, completed.kind] == [STARTED, PROGRESS, COMPLETED]
        assert {started.task.id, progressed.task.id, completed.task.id} == {task.id}
        assert_increasing([snapshot.cursor, started.cursor, progressed.cursor, completed.cursor])

        assert started.attempt == attempt
        assert started.task.status == task_pb2.TASK_STATUS_IN_PROGRESS
        assert (progressed.progress, progressed.message) == (40, "halfway")
        assert dict(progressed.metadata) == {"step": "build", "files": 3}
        assert progressed.task.progress == 40
        assert progressed.task.progress_message == "halfway"
        assert progressed.attempt == attempt
        assert completed.task.status == task_pb2.TASK_STATUS_DONE
        assert completed.HasField("event_time")

        await expect_end(call)
    finally:
        call.cancel()


async def test_task_watch_of_a_finished_task_sends_its_snapshot_and_ends(stub: Stub) -> None:
    await register(stub)
    task = await create(stub, "done already")
    await complete(stub, task.id, await execute(stub, task.id))
    call = watch(stub, task_id=task.id)
    try:
        snapshot = await next_event(call)
        assert (snapshot.kind, snapshot.task.status) == (SNAPSHOT, task_pb2.TASK_STATUS_DONE)
        await expect_end(call)
    finally:
        call.cancel()


async def test_task_watch_ends_after_cancellation(stub: Stub) -> None:
    await register(stub)
    task = await create(stub, "doomed")
    call = watch(stub, task_id=task.id)
    try:
        assert (await next_event(call)).kind == SNAPSHOT
        await stub.CancelTask(pb.CancelTaskRequest(task_id=task.id, reason="not needed"))
        cancelled = await next_event(call)
        assert (cancelled.kind, cancelled.message) == (CANCELLED, "not needed")
        assert cancelled.task.status == task_pb2.TASK_STATUS_CANCELLED
        await expect_end(call)
    finally:
        call.cancel()


# Orchestrator and workspace watches


async def test_orchestrator_watch_sends_unfinished_tasks_then_creations_and_unblocks(stub: Stub) -> None:
    await register(stub, "ada")
    await register(stub, "bob")
    finished = await create(stub, "finished")
    await complete(stub, finished.id, await execute(stub, finished.id))
    first = await create(stub, "first")
    waiting = await create(stub, "waiting", depends_on=[first.id])
    await create(stub, "bob's", orchestrator_id="bob")

    call = watch(stub, orchestrator_id="ada")
    try:
        snapshot = await next_events(call, 2)
        assert kinds_of(snapshot) == [(SNAPSHOT, first.id), (SNAPSHOT, waiting.id)]
        assert snapshot[1].task.status == task_pb2.TASK_STATUS_BLOCKED
        assert snapshot[0].cursor == snapshot[1].cursor

        later = await create(stub, "later")
        await create(stub, "bob's second", orchestrator_id="bob")
        await complete(stub, first.id, await execute(stub, first.id))
        sentinel = await create(stub, "sentinel")

        live = await next_events(call, 5)
        assert kinds_of(live) == [
            (CREATED, later.id),
            (STARTED, first.id),
            (COMPLETED, first.id),
            (UNBLOCKED, waiting.id),
            (CREATED, sentinel.id),
        ]
        assert live[0].task.status == task_pb2.TASK_STATUS_TODO
        assert live[3].task.status == task_pb2.TASK_STATUS_TODO
        assert live[3].task.unmet_dependency_count == 0
        assert_increasing([snapshot[0].cursor] + [e.cursor for e in live])
    finally:
        call.cancel()


async def test_workspace_watch_sees_only_its_workspace(stub: Stub) -> None:
    await register(stub, "ada")
    await register(stub, "bob")
    mine = await create(stub, "mine", workspace_id="ws-1")
    await create(stub, "elsewhere", workspace_id="ws-2")
    bobs = await create(stub, "bob's", orchestrator_id="bob", workspace_id="ws-1")

    call = watch(stub, workspace_id="ws-1")
    try:
        assert kinds_of(await next_events(call, 2)) == [(SNAPSHOT, mine.id), (SNAPSHOT, bobs.id)]

        outside = await create(stub, "outside", workspace_id="ws-2")
        await complete(stub, outside.id, await execute(stub, outside.id))
        inside = await create(stub, "inside", orchestrator_id="bob", workspace_id="ws-1")
        await complete(stub, mine.id, await execute(stub, mine.id))

        live = await next_events(call, 3)
        assert kinds_of(live) == [(CREATED, inside.id), (STARTED, mine.id), (COMPLETED, mine.id)]
        assert {e.task.workspace_id for e in live} == {"ws-1"}
    finally:
        call.cancel()


# Kinds filter


async def test_kinds_filter_keeps_only_the_requested_kinds(stub: Stub, engine: WorkEngine) -> None:
    await register(stub)
    call = watch(stub, orchestrator_id="ada", kinds=[STARTED, COMPLETED])
    try:
        first = asyncio.ensure_future(next_event(call))
        await wait_for_subscribers(engine, 1)
        existing = await create(stub, "existing")
        created = await create(stub, "created")
        attempt = await execute(stub, existing.id)
        await progress(stub, existing.id, attempt, 50, "half")
        await complete(stub, existing.id, attempt)
        await complete(stub, created.id, await execute(stub, created.id))

        events = [await first, *await next_events(call, 3)]
        assert kinds_of(events) == [
            (STARTED, existing.id),
            (COMPLETED, existing.id),
            (STARTED, created.id),
            (COMPLETED, created.id),
        ]
    finally:
        call.cancel()


async def test_kinds_filter_with_snapshot_sends_the_snapshot_and_the_requested_kinds(stub: Stub) -> None:
    await register(stub)
    task = await create(stub, "task")
    call = watch(stub, orchestrator_id="ada", kinds=[SNAPSHOT, COMPLETED])
    try:
        assert kinds_of([await next_event(call)]) == [(SNAPSHOT, task.id)]
        await complete(stub, task.id, await execute(stub, task.id))
        assert kinds_of([await next_event(call)]) == [(COMPLETED, task.id)]
    finally:
        call.cancel()


async def test_kinds_filter_without_snapshot_leaves_the_snapshot_out(stub: Stub, engine: WorkEngine) -> None:
    await register(stub)
    existing = await create(stub, "existing")
    call = watch(stub, orchestrator_id="ada", kinds=[STARTED])
    try:
        first = asyncio.ensure_future(next_event(call))
        await wait_for_subscribers(engine, 1)
        await execute(stub, existing.id)
        assert kinds_of([await first]) == [(STARTED, existing.id)]
    finally:
        call.cancel()


async def test_task_watch_with_a_kinds_filter_still_ends_when_the_task_finishes(stub: Stub) -> None:
    await register(stub)
    task = await create(stub, "task")
    call = watch(stub, task_id=task.id, kinds=[SNAPSHOT, PROGRESS])
    try:
        assert (await next_event(call)).kind == SNAPSHOT
        attempt = await execute(stub, task.id)
        await progress(stub, task.id, attempt, 70, "nearly")
        await complete(stub, task.id, attempt)
        event = await next_event(call)
        assert (event.kind, event.progress) == (PROGRESS, 70)
        await expect_end(call)
    finally:
        call.cancel()


# Resume


async def test_resume_after_a_cursor_delivers_exactly_the_missed_events(
    stub: Stub, engine: WorkEngine
) -> None:
    await register(stub)
    task = await create(stub, "task")
    dependent = await create(stub, "dependent", depends_on=[task.id])

    call = watch(stub, orchestrator_id="ada")
    try:
        assert [e.kind for e in await next_events(call, 2)] == [SNAPSHOT, SNAPSHOT]
        attempt = await execute(stub, task.id)
        await progress(stub, task.id, attempt, 20, "begun")
        seen = await next_events(call, 2)
        assert kinds_of(seen) == [(STARTED, task.id), (PROGRESS, task.id)]
        last_cursor = seen[-1].cursor
    finally:
        call.cancel()
    await wait_for_subscribers(engine, 0)

    # Changes made while nobody is watching.
    await progress(stub, task.id, attempt, 80, "almost", stage="final")
    await complete(stub, task.id, attempt)
    later = await create(stub, "later")

    resumed = watch(stub, orchestrator_id="ada", after_cursor=last_cursor)
    try:
        missed = await next_events(resumed, 4)
        assert kinds_of(missed) == [
            (PROGRESS, task.id),
            (COMPLETED, task.id),
            (UNBLOCKED, dependent.id),
            (CREATED, later.id),
        ]
        cursors = [e.cursor for e in missed]
        assert cursors[0] > last_cursor
        assert_increasing(cursors)
        assert (missed[0].progress, missed[0].message, missed[0].attempt) == (80, "almost", attempt)
        assert dict(missed[0].metadata) == {"stage": "final"}

        # Then live events, with nothing replayed twice.
        live = await create(stub, "live")
        after = await next_event(resumed)
        assert (after.kind, after.task.id) == (CREATED, live.id)
        assert after.cursor > cursors[-1]
    finally:
        resumed.cancel()


async def test_resumed_task_watch_replays_every_missed_event_then_ends(stub: Stub) -> None:
    await register(stub)
    task = await create(stub, "task")
    call = watch(stub, task_id=task.id)
    try:
        snapshot = await next_event(call)
        assert snapshot.kind == SNAPSHOT
    finally:
        call.cancel()

    attempt = await execute(stub, task.id)
    await progress(stub, task.id, attempt, 50, "half")
    await complete(stub, task.id, attempt)

    resumed = watch(stub, task_id=task.id, after_cursor=snapshot.cursor)
    try:
        assert [e.kind for e in await next_events(resumed, 3)] == [STARTED, PROGRESS, COMPLETED]
        await expect_end(resumed)
    finally:
        resumed.cancel()


async def test_replayed_events_carry_the_task_state_right_after_each_change(stub: Stub) -> None:
    await register(stub)
    task = await create(stub, "task")
    first = watch(stub, orchestrator_id="ada")
    try:
        created_cursor = (await next_event(first)).cursor
    finally:
        first.cancel()
    attempt = await execute(stub, task.id)
    await progress(stub, task.id, attempt, 30, "a third")
    await complete(stub, task.id, attempt)

    call = watch(stub, orchestrator_id="ada", after_cursor=created_cursor)
    try:
        started, progressed, completed = await next_events(call, 3)
        assert [started.kind, progressed.kind, completed.kind] == [STARTED, PROGRESS, COMPLETED]
        assert started.task.status == task_pb2.TASK_STATUS_IN_PROGRESS
        assert progressed.task.status == task_pb2.TASK_STATUS_IN_PROGRESS
        assert progressed.task.progress == 30
        assert completed.task.status == task_pb2.TASK_STATUS_DONE
    finally:
        call.cancel()


# Errors and cleanup


async def test_watch_without_a_target_is_invalid(stub: Stub) -> None:
    call = watch(stub)
    await expect_error(
        asyncio.wait_for(call.read(), READ_TIMEOUT), grpc.StatusCode.INVALID_ARGUMENT, "target"
    )
    negative = watch(stub, workspace_id="ws-1", after_cursor=-1)
    await expect_error(
        asyncio.wait_for(negative.read(), READ_TIMEOUT), grpc.StatusCode.INVALID_ARGUMENT, "after_cursor"
    )


async def test_watch_of_an_unknown_task_or_orchestrator_is_not_found(stub: Stub) -> None:
    await register(stub)
    for fields in ({"task_id": "missing"}, {"orchestrator_id": "nobody"}):
        call = watch(stub, **fields)
        await expect_error(asyncio.wait_for(call.read(), READ_TIMEOUT), grpc.StatusCode.NOT_FOUND)


async def test_cancelling_a_watch_releases_its_subscription(stub: Stub, engine: WorkEngine) -> None:
    await register(stub)
    task = await create(stub, "task")
    calls = [
        watch(stub, task_id=task.id),
        watch(stub, orchestrator_id="ada"),
        watch(stub, workspace_id="ws-1"),
    ]
    try:
        for call in calls:
            assert (await next_event(call)).kind == SNAPSHOT
        assert engine.hub.subscriber_count == 3
    finally:
        for call in calls:
            call.cancel()
    await wait_for_subscribers(engine, 0)


async def test_a_task_watch_that_ends_releases_its_subscription(stub: Stub, engine: WorkEngine) -> None:
    await register(stub)
    task = await create(stub, "task")
    call = watch(stub, task_id=task.id)
    try:
        assert (await next_event(call)).kind == SNAPSHOT
        assert engine.hub.subscriber_count == 1
        await complete(stub, task.id, await execute(stub, task.id))
        assert [e.kind for e in await next_events(call, 2)] == [STARTED, COMPLETED]
        await expect_end(call)
    finally:
        call.cancel()
    await wait_for_subscribers(engine, 0)
