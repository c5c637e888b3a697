"""The engine's reads for the dashboard (engine/monitoring.py) and the watch of every task."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tests.integration.helpers import claim, complete, create, register
from workengine.domain.errors import InvalidArgument, NotFound
from workengine.domain.model import EventKind, TaskEvent, TaskStatus
from workengine.engine import WorkEngine, monitoring
from workengine.engine.events import WatchTarget
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

Stub = pb_grpc.WorkEngineServiceStub


async def test_throughput_counts_completions_and_failures_per_minute(engine: WorkEngine, stub: Stub) -> None:
    await register(stub, "ada")
    for i in range(3):
        await create(stub, task_id=f"t-{i}")
    for status in (
        pb.COMPLETION_STATUS_COMPLETED,
        pb.COMPLETION_STATUS_COMPLETED,
        pb.COMPLETION_STATUS_FAILED,
    ):
        claimed = await claim(stub)
        await complete(stub, claimed.context.task.id, claimed.attempt, status)
    found = await engine.monitoring.throughput(60)
    assert sum(m.completed for m in found.minutes) == 2
    assert sum(m.failed for m in found.minutes) == 1
    assert len(found.minutes) in (60, 61)  # every minute of the hour, the current one included
    assert found.counted_since == found.since


async def test_throughput_says_where_it_stopped_counting_when_the_hour_had_too_many_events(
    engine: WorkEngine, stub: Stub, monkeypatch: pytest.MonkeyPatch
) -> None:
    await register(stub, "ada")
    for i in range(4):
        await create(stub, task_id=f"t-{i}")
    monkeypatch.setattr(monitoring, "THROUGHPUT_MAX_EVENTS", 2)
    found = await engine.monitoring.throughput(60)
    assert found.counted_since > found.since


async def test_a_task_history_pages_back_from_the_newest(engine: WorkEngine, stub: Stub) -> None:
    await register(stub, "ada")
    await create(stub, task_id="t-1")
    claimed = await claim(stub)
    for percent in (10, 20, 30, 40):
        await stub.UpdateTaskProgress(
            pb.UpdateTaskProgressRequest(task_id="t-1", attempt=claimed.attempt, progress=percent)
        )
    first = await engine.monitoring.task_history("t-1", 0, 3)
    rest = await engine.monitoring.task_history("t-1", first[-1].cursor, 3)
    kinds = [(e.kind, e.progress) for e in first + rest]
    assert kinds == [
        (EventKind.PROGRESS, 40),
        (EventKind.PROGRESS, 30),
        (EventKind.PROGRESS, 20),
        (EventKind.PROGRESS, 10),
        (EventKind.STARTED, 0),
        (EventKind.CREATED, 0),
    ]
    with pytest.raises(NotFound):
        await engine.monitoring.task_history("nothing", 0, 3)
    with pytest.raises(InvalidArgument) as raised:
        await engine.monitoring.task_history("t-1", 0, 501)
    assert raised.value.field == "limit"


async def test_links_show_dependencies_and_the_first_dependents_with_their_count(
    engine: WorkEngine, stub: Stub
) -> None:
    await register(stub, "ada")
    await create(stub, task_id="base")
    for i in range(3):
        await create(stub, task_id=f"child-{i}", depends_on=["base"])
    child, _ = await engine.tasks.get_with_attempts("child-0")
    base, _ = await engine.tasks.get_with_attempts("base")
    assert [(d.task_id, d.status) for d in (await engine.monitoring.links(child)).dependencies] == [
        ("base", TaskStatus.TODO)
    ]
    links = await engine.monitoring.links(base, dependents_limit=2)
    assert [d.task_id for d in links.dependents] == ["child-0", "child-1"]
    assert (links.dependents_total, links.dependencies) == (3, ())


async def test_status_counts_are_right_before_and_after_the_rollup_folds(
    engine: WorkEngine, stub: Stub
) -> None:
    await register(stub, "ada")
    await register(stub, "bob")
    for i in range(3):
        await create(stub, task_id=f"t-{i}")
    claimed = await claim(stub)
    await complete(stub, claimed.context.task.id, claimed.attempt)
    expected = {"ada": {TaskStatus.TODO: 2, TaskStatus.DONE: 1}}
    assert await engine.monitoring.status_counts(["ada", "bob"]) == expected
    await engine.stats.fold()
    assert await engine.monitoring.status_counts(["ada", "bob"]) == expected
    with pytest.raises(InvalidArgument) as raised:
        await engine.monitoring.status_counts(["ok", "not ok"])
    assert raised.value.field == "orchestrator_ids[1]"


async def test_a_watch_of_everything_opens_with_the_running_tasks_then_follows_every_orchestrator(
    engine: WorkEngine, stub: Stub
) -> None:
    for name in ("ada", "bob"):
        await register(stub, name)
        await create(stub, task_id=f"{name}-waiting", orchestrator_id=name)
    await create(stub, task_id="ada-running")
    running = await claim(stub, "ada")  # ada-waiting was created first: it runs
    watch = engine.watcher.watch(
        WatchTarget(everything=True), keep_open=True, bookmark_interval=timedelta(seconds=1)
    )
    seen: list[TaskEvent] = []
    try:
        first = await anext(watch)
        assert isinstance(first, TaskEvent)
        assert (first.kind, first.task.id) == (EventKind.SNAPSHOT, running.context.task.id)
        await create(stub, task_id="bob-new", orchestrator_id="bob")
        await stub.UpdateTaskProgress(
            pb.UpdateTaskProgressRequest(task_id=running.context.task.id, attempt=1, progress=5)
        )
        async with asyncio.timeout(10):
            while len(seen) < 2:
                item = await anext(watch)
                if isinstance(item, TaskEvent):
                    seen.append(item)
    finally:
        await watch.aclose()
    assert [(e.kind, e.task.id) for e in seen] == [
        (EventKind.CREATED, "bob-new"),
        (EventKind.PROGRESS, running.context.task.id),
    ]
