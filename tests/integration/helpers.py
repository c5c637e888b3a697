"""Small builders shared by the integration tests, so each test reads as its scenario."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import timestamp_pb2

from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

Stub = pb_grpc.WorkEngineServiceStub

PRIORITY = {
    "LOW": task_pb2.TASK_PRIORITY_LOW,
    "MEDIUM": task_pb2.TASK_PRIORITY_MEDIUM,
    "HIGH": task_pb2.TASK_PRIORITY_HIGH,
    "CRITICAL": task_pb2.TASK_PRIORITY_CRITICAL,
}


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


async def register(
    stub: Stub, orchestrator_id: str = "ada", **fields: Any
) -> pb.RegisterOrchestratorResponse:
    fields.setdefault("display_name", orchestrator_id.title())
    response: pb.RegisterOrchestratorResponse = await stub.RegisterOrchestrator(
        pb.RegisterOrchestratorRequest(orchestrator_id=orchestrator_id, **fields)
    )
    return response


async def create(
    stub: Stub,
    title: str = "a task",
    *,
    orchestrator_id: str = "ada",
    workspace_id: str = "ws-1",
    priority: str = "MEDIUM",
    due: datetime | None = None,
    **fields: Any,
) -> task_pb2.Task:
    request = pb.CreateTaskRequest(
        orchestrator_id=orchestrator_id,
        workspace_id=workspace_id,
        title=title,
        priority=PRIORITY[priority],
        **fields,
    )
    if due is not None:
        request.due_time.CopyFrom(timestamp(due))
    response: pb.CreateTaskResponse = await stub.CreateTask(request)
    return response.task


async def claim(stub: Stub, orchestrator_id: str = "ada", **fields: Any) -> pb.ClaimNextTaskResponse:
    response: pb.ClaimNextTaskResponse = await stub.ClaimNextTask(
        pb.ClaimNextTaskRequest(orchestrator_id=orchestrator_id, **fields)
    )
    return response


async def complete(
    stub: Stub, task_id: str, attempt: int, status: Any = pb.COMPLETION_STATUS_COMPLETED, **result: Any
) -> pb.CompleteTaskResponse:
    response: pb.CompleteTaskResponse = await stub.CompleteTask(
        pb.CompleteTaskRequest(
            task_id=task_id, attempt=attempt, status=status, result=task_pb2.TaskResult(**result)
        )
    )
    return response


async def expect_error(call: Any, code: grpc.StatusCode, mentions: str = "") -> grpc.aio.AioRpcError:
    """Awaits `call`, asserting it fails with `code` and a message containing `mentions`."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    error = raised.value
    assert error.code() == code, f"expected {code.name}, got {error.code().name}: {error.details()}"
    assert mentions in (error.details() or ""), error.details()
    return error


def seed_for_plans(connection: psycopg.Connection[Any], first_due_hours: int = 0) -> None:
    """Orchestrator 'ada' with 20,000 tasks (a third DONE, every priority, due hourly from
    `first_due_hours` from now over 200 hours, a fifth undated), analyzed: enough rows that a
    plan reading them all would show, for the tests of the selection statements' plans."""
    connection.execute("INSERT INTO orchestrators (id, display_name, status) VALUES ('ada', 'Ada', 'ONLINE')")
    connection.execute(
        f"""INSERT INTO tasks (id, orchestrator_id, workspace_id, title, priority, status, due_at)
           SELECT 'x' || g, 'ada', 'ws', 't', 1 + g % 4, CASE WHEN g % 3 = 0 THEN 'DONE' ELSE 'TODO' END,
                  CASE WHEN g % 5 = 0 THEN NULL
                       ELSE now() + (g % 200 + {int(first_due_hours)}) * interval '1 hour' END
           FROM generate_series(1, 20000) g"""
    )
    connection.execute("ANALYZE tasks")
