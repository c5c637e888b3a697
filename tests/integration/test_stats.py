"""GetExecutionStats: counts, success rate, completion-time percentiles and the time range.

Completion times come from the clock, so each test runs its tasks through claim/complete and
then pins started_at/completed_at (and created_at, for the range) in SQL. Percentiles are
exact within PERCENTILE_PRECISION (test_stats_rollup.py checks that against random data).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg
import pytest

from tests.integration.helpers import Stub, claim, complete, create, expect_error, register, timestamp
from workengine.domain.statistics import PERCENTILE_PRECISION
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb

BASE = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


async def finish(
    stub: Stub,
    title: str,
    status: Any = pb.COMPLETION_STATUS_COMPLETED,
    *,
    orchestrator_id: str = "ada",
    priority: str = "MEDIUM",
) -> str:
    """Creates a task and runs it through claim and complete; returns its id."""
    task = await create(stub, title, orchestrator_id=orchestrator_id, priority=priority)
    claimed = await claim(stub, orchestrator_id)
    assert claimed.context.task.id == task.id
    await complete(
        stub,
        task.id,
        claimed.attempt,
        status=status,
        error="" if status == pb.COMPLETION_STATUS_COMPLETED else "broke",
    )
    return task.id


def pin_duration(database_url: str, task_id: str, seconds: float) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "UPDATE tasks SET started_at = %s, completed_at = %s WHERE id = %s",
            (BASE, BASE + timedelta(seconds=seconds), task_id),
        )


def pin_created(database_url: str, task_id: str, created_at: datetime) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("UPDATE tasks SET created_at = %s WHERE id = %s", (created_at, task_id))


async def stats(stub: Stub, orchestrator_id: str = "ada", **fields: Any) -> pb.GetExecutionStatsResponse:
    request = pb.GetExecutionStatsRequest(orchestrator_id=orchestrator_id)
    for name, value in fields.items():
        getattr(request, name).CopyFrom(timestamp(value))
    response: pb.GetExecutionStatsResponse = await stub.GetExecutionStats(request)
    return response


async def test_completion_times_average_and_percentiles(stub: Stub, database_url: str) -> None:
    await register(stub, "ada")
    await register(stub, "bob")
    for index, seconds in enumerate((30, 10, 40, 20)):
        pin_duration(database_url, await finish(stub, f"done {index}"), seconds)
    # Neither a FAILED task nor another orchestrator's task counts towards completion times.
    pin_duration(database_url, await finish(stub, "failed", pb.COMPLETION_STATUS_FAILED), 1000)
    pin_duration(database_url, await finish(stub, "bob's", orchestrator_id="bob"), 500)

    result = await stats(stub)
    assert (result.total_tasks, result.completed_tasks, result.failed_tasks) == (5, 4, 1)
    assert result.success_rate_percent == pytest.approx(80.0)
    assert result.average_completion_seconds == pytest.approx(25.0)
    assert result.p50_completion_seconds == pytest.approx(25.0, rel=PERCENTILE_PRECISION)
    assert result.p95_completion_seconds == pytest.approx(38.5, rel=PERCENTILE_PRECISION)


async def test_counts_by_status_and_priority(stub: Stub) -> None:
    await register(stub, "ada")
    await finish(stub, "done high", priority="HIGH")
    await finish(stub, "done low", priority="LOW")
    await finish(stub, "failed", pb.COMPLETION_STATUS_FAILED, priority="HIGH")
    await create(stub, "todo", priority="CRITICAL")
    dropped = await create(stub, "dropped", priority="HIGH")
    await stub.CancelTask(pb.CancelTaskRequest(task_id=dropped.id))

    result = await stats(stub)
    assert (result.total_tasks, result.completed_tasks, result.failed_tasks) == (5, 2, 1)
    assert result.success_rate_percent == pytest.approx(200 / 3)
    assert {(c.status, c.count) for c in result.by_status} == {
        (task_pb2.TASK_STATUS_DONE, 2),
        (task_pb2.TASK_STATUS_FAILED, 1),
        (task_pb2.TASK_STATUS_TODO, 1),
        (task_pb2.TASK_STATUS_CANCELLED, 1),
    }
    assert {(c.priority, c.count) for c in result.by_priority} == {
        (task_pb2.TASK_PRIORITY_CRITICAL, 1),
        (task_pb2.TASK_PRIORITY_HIGH, 3),
        (task_pb2.TASK_PRIORITY_LOW, 1),
    }


async def test_nothing_finished_gives_zero_rates_and_times(stub: Stub) -> None:
    await register(stub, "ada")
    empty = await stats(stub)
    assert (empty.total_tasks, empty.completed_tasks, empty.failed_tasks) == (0, 0, 0)
    assert empty.success_rate_percent == 0.0
    assert (empty.average_completion_seconds, empty.p50_completion_seconds, empty.p95_completion_seconds) == (
        0.0,
        0.0,
        0.0,
    )
    assert list(empty.by_status) == []
    assert list(empty.by_priority) == []

    await create(stub, "todo")
    await create(stub, "running")
    await claim(stub)
    pending = await stats(stub)
    assert (pending.total_tasks, pending.completed_tasks, pending.failed_tasks) == (2, 0, 0)
    assert pending.success_rate_percent == 0.0
    assert pending.average_completion_seconds == 0.0
    assert pending.p95_completion_seconds == 0.0


async def test_failed_tasks_are_counted_against_the_success_rate(stub: Stub, database_url: str) -> None:
    await register(stub, "ada")
    pin_duration(database_url, await finish(stub, "done"), 12)
    for index in range(3):
        await finish(stub, f"failed {index}", pb.COMPLETION_STATUS_FAILED)

    result = await stats(stub)
    assert (result.total_tasks, result.completed_tasks, result.failed_tasks) == (4, 1, 3)
    assert result.success_rate_percent == pytest.approx(25.0)
    assert result.average_completion_seconds == pytest.approx(12.0)
    assert result.p50_completion_seconds == pytest.approx(12.0, rel=PERCENTILE_PRECISION)
    assert result.p95_completion_seconds == pytest.approx(12.0, rel=PERCENTILE_PRECISION)

    await register(stub, "bob")
    await finish(stub, "only failure", pb.COMPLETION_STATUS_FAILED, orchestrator_id="bob")
    only_failed = await stats(stub, "bob")
    assert (only_failed.completed_tasks, only_failed.failed_tasks) == (0, 1)
    assert only_failed.success_rate_percent == 0.0
    assert only_failed.average_completion_seconds == 0.0


async def test_time_range_includes_start_and_excludes_end(stub: Stub, database_url: str) -> None:
    await register(stub, "ada")
    for hour, seconds in ((9, 100), (10, 10), (11, 30), (12, 1000)):
        task_id = await finish(stub, f"at {hour}")
        pin_duration(database_url, task_id, seconds)
        pin_created(database_url, task_id, BASE.replace(hour=hour))
    failed = await finish(stub, "failed at 10:30", pb.COMPLETION_STATUS_FAILED)
    pin_created(database_url, failed, BASE.replace(hour=10, minute=30))

    start, end = BASE.replace(hour=10), BASE.replace(hour=12)
    inside = await stats(stub, start_time=start, end_time=end)
    assert (inside.total_tasks, inside.completed_tasks, inside.failed_tasks) == (3, 2, 1)
    assert inside.average_completion_seconds == pytest.approx(20.0)
    assert inside.p50_completion_seconds == pytest.approx(20.0, rel=PERCENTILE_PRECISION)
    assert inside.success_rate_percent == pytest.approx(200 / 3)

    from_ten = await stats(stub, start_time=start)
    assert (from_ten.total_tasks, from_ten.completed_tasks) == (4, 3)
    until_noon = await stats(stub, end_time=end)
    assert (until_noon.total_tasks, until_noon.completed_tasks) == (4, 3)
    everything = await stats(stub)
    assert everything.total_tasks == 5
    nothing = await stats(stub, start_time=BASE.replace(hour=13), end_time=BASE.replace(hour=14))
    assert (nothing.total_tasks, nothing.success_rate_percent, nothing.average_completion_seconds) == (
        0,
        0.0,
        0.0,
    )


async def test_end_time_must_be_after_start_time(stub: Stub) -> None:
    await register(stub, "ada")
    await expect_error(
        stats(stub, start_time=BASE, end_time=BASE), grpc.StatusCode.INVALID_ARGUMENT, "end_time"
    )
    await expect_error(
        stats(stub, start_time=BASE, end_time=BASE - timedelta(seconds=1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "end_time",
    )


async def test_stats_of_an_unknown_orchestrator_is_not_found(stub: Stub) -> None:
    await register(stub, "ada")
    await expect_error(stats(stub, "nobody"), grpc.StatusCode.NOT_FOUND)
    await expect_error(stats(stub, ""), grpc.StatusCode.INVALID_ARGUMENT, "orchestrator_id")
