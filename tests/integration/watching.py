"""Opening and reading WatchTaskProgress streams in tests."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.protobuf import struct_pb2

from tests.integration.helpers import Stub
from workengine.engine import WorkEngine
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb

READ_TIMEOUT = 5.0

SNAPSHOT = task_pb2.TASK_EVENT_KIND_SNAPSHOT
CREATED = task_pb2.TASK_EVENT_KIND_CREATED
STARTED = task_pb2.TASK_EVENT_KIND_STARTED
PROGRESS = task_pb2.TASK_EVENT_KIND_PROGRESS
COMPLETED = task_pb2.TASK_EVENT_KIND_COMPLETED
UNBLOCKED = task_pb2.TASK_EVENT_KIND_UNBLOCKED
CANCELLED = task_pb2.TASK_EVENT_KIND_CANCELLED
BOOKMARK = task_pb2.TASK_EVENT_KIND_BOOKMARK


def watch(stub: Stub, **fields: Any) -> Any:
    """Opens a WatchTaskProgress stream; the caller reads it and cancels it."""
    return stub.WatchTaskProgress(pb.WatchTaskProgressRequest(**fields))


async def next_event(call: Any) -> task_pb2.TaskEvent:
    response = await asyncio.wait_for(call.read(), timeout=READ_TIMEOUT)
    assert response is not grpc.aio.EOF, "the stream ended before the expected event"
    event: task_pb2.TaskEvent = response.event
    return event


async def next_events(call: Any, count: int) -> list[task_pb2.TaskEvent]:
    return [await next_event(call) for _ in range(count)]


async def expect_end(call: Any) -> None:
    response = await asyncio.wait_for(call.read(), timeout=READ_TIMEOUT)
    assert response is grpc.aio.EOF, f"expected the stream to end, got {response}"
    assert await call.code() == grpc.StatusCode.OK


async def wait_for_subscribers(engine: WorkEngine, count: int) -> None:
    """Polls until the server's event hub has exactly `count` subscribers."""
    for _ in range(250):
        if engine.hub.subscriber_count == count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"hub has {engine.hub.subscriber_count} subscribers, expected {count}")


async def execute(stub: Stub, task_id: str, orchestrator_id: str = "ada") -> int:
    response: pb.ExecuteTaskResponse = await stub.ExecuteTask(
        pb.ExecuteTaskRequest(orchestrator_id=orchestrator_id, task_id=task_id)
    )
    assert response.outcome == pb.EXECUTE_OUTCOME_STARTED
    return response.attempt


async def progress(
    stub: Stub, task_id: str, attempt: int, percent: int, message: str = "", **metadata: Any
) -> None:
    details = struct_pb2.Struct()
    details.update(metadata)
    await stub.UpdateTaskProgress(
        pb.UpdateTaskProgressRequest(
            task_id=task_id, attempt=attempt, progress=percent, message=message, metadata=details
        )
    )


def kinds_of(events: list[task_pb2.TaskEvent]) -> list[tuple[int, str]]:
    return [(e.kind, e.task.id) for e in events]
