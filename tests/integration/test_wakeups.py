"""Work that becomes ready later: BLOCKED tasks with a retry time, and long-polling claims
that wake on the event that made work ready, not on a timer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from tests.integration.helpers import Stub, claim, complete, create, expect_error, register
from workengine.engine import WorkEngine
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb


def seconds(value: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(value), nanos=int(value % 1 * 1e9))


async def block(stub: Stub, task_id: str, attempt: int, retry_after: duration_pb2.Duration | None) -> Any:
    return await stub.CompleteTask(
        pb.CompleteTaskRequest(
            task_id=task_id,
            attempt=attempt,
            status=pb.COMPLETION_STATUS_BLOCKED,
            result=task_pb2.TaskResult(error="rate limited"),
            retry_after=retry_after,
        )
    )


async def test_a_blocked_task_with_retry_after_comes_back_by_itself(stub: Stub) -> None:
    await register(stub)
    task = await create(stub)
    first = await claim(stub)
    blocked = await block(stub, task.id, first.attempt, seconds(1))
    assert blocked.task.status == task_pb2.TASK_STATUS_BLOCKED and blocked.task.HasField("retry_time")
    assert blocked.task.status_reason == "rate limited"
    waiting = asyncio.create_task(claim(stub, wait=seconds(10)))

    began = time.monotonic()
    again = await waiting

    assert again.context.task.id == task.id and again.attempt == first.attempt + 1
    assert 0.5 < time.monotonic() - began < 3
    assert not again.context.task.HasField("retry_time")
    history = (await stub.GetTask(pb.GetTaskRequest(task_id=task.id))).attempts
    assert [a.outcome for a in history] == [
        task_pb2.ATTEMPT_OUTCOME_BLOCKED,
        task_pb2.ATTEMPT_OUTCOME_RUNNING,
    ]


async def test_a_repeated_blocked_completion_with_retry_after_is_harmless(stub: Stub) -> None:
    await register(stub)
    task = await create(stub)
    claimed = await claim(stub)
    first = await block(stub, task.id, claimed.attempt, seconds(60))
    repeat = await block(stub, task.id, claimed.attempt, seconds(60))
    assert repeat.task.retry_time == first.task.retry_time
    await expect_error(
        block(stub, task.id, claimed.attempt, seconds(120)), grpc.StatusCode.FAILED_PRECONDITION, "different"
    )


async def test_retry_after_is_validated(stub: Stub) -> None:
    await register(stub)
    task = await create(stub)
    claimed = await claim(stub)
    await expect_error(
        block(stub, task.id, claimed.attempt, seconds(0.5)), grpc.StatusCode.INVALID_ARGUMENT, "retry_after"
    )
    await expect_error(
        block(stub, task.id, claimed.attempt, seconds(31 * 86_400)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "retry_after",
    )
    await expect_error(
        stub.CompleteTask(
            pb.CompleteTaskRequest(
                task_id=task.id,
                attempt=claimed.attempt,
                status=pb.COMPLETION_STATUS_COMPLETED,
                retry_after=seconds(5),
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "retry_after",
    )


async def test_a_waiting_claim_wakes_when_a_lease_expires(stub: Stub) -> None:
    await register(stub)
    task = await create(stub, lease_duration=seconds(1))
    await claim(stub)  # a daemon that then dies
    waiting = asyncio.create_task(claim(stub, wait=seconds(20)))

    began = time.monotonic()
    rescued = await waiting

    assert rescued.context.task.id == task.id and rescued.attempt == 2
    assert time.monotonic() - began < 3


async def test_a_waiting_claim_wakes_when_a_failed_task_is_retried(stub: Stub) -> None:
    await register(stub)
    task = await create(stub)
    first = await claim(stub)
    await complete(stub, task.id, first.attempt, pb.COMPLETION_STATUS_FAILED, error="boom")
    waiting = asyncio.create_task(claim(stub, wait=seconds(20)))
    await asyncio.sleep(0.3)

    began = time.monotonic()
    await stub.RetryTask(pb.RetryTaskRequest(task_id=task.id))
    again = await waiting

    assert again.context.task.id == task.id and time.monotonic() - began < 1


def count_calls(engine: WorkEngine, name: str) -> list[int]:
    """Counts calls of one of the execution flow's methods (instance attribute shadows it)."""
    calls = [0]
    original: Callable[..., Awaitable[Any]] = getattr(engine.execution, name)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return await original(*args, **kwargs)

    setattr(engine.execution, name, counted)
    return calls


async def test_idle_long_polls_do_not_query_the_database(stub: Stub, engine: WorkEngine) -> None:
    await register(stub)
    attempts = count_calls(engine, "_claim_once")
    waiting = [asyncio.create_task(claim(stub, wait=seconds(30))) for _ in range(20)]
    await asyncio.sleep(0.5)
    assert attempts[0] == 20  # each looked once

    await asyncio.sleep(3)  # idle: no work, no re-checks
    assert attempts[0] == 20

    await create(stub)
    done, pending = await asyncio.wait(waiting, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1 and (await done.pop()).HasField("context")
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


@pytest.mark.parametrize("retry_after", [None, seconds(3600)])
async def test_a_blocked_report_keeps_the_task_blocked_until_its_time(stub: Stub, retry_after: Any) -> None:
    await register(stub)
    task = await create(stub)
    claimed = await claim(stub)
    await block(stub, task.id, claimed.attempt, retry_after)
    await asyncio.sleep(0.5)  # a few reaper rounds
    found = (await stub.GetTask(pb.GetTaskRequest(task_id=task.id))).task
    assert found.status == task_pb2.TASK_STATUS_BLOCKED
    assert found.HasField("retry_time") == (retry_after is not None)
