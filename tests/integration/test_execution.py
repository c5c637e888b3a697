"""ExecuteTask, PrepareTaskContext, UpdateTaskProgress and CompleteTask: outcomes and errors."""

from __future__ import annotations

import math
from typing import Any

import grpc
import psycopg
from google.protobuf import struct_pb2

from tests.integration.helpers import Stub, claim, complete, create, expect_error, register
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb


async def execute(stub: Stub, task_id: str, orchestrator_id: str = "ada") -> pb.ExecuteTaskResponse:
    response: pb.ExecuteTaskResponse = await stub.ExecuteTask(
        pb.ExecuteTaskRequest(orchestrator_id=orchestrator_id, task_id=task_id)
    )
    return response


async def progress(stub: Stub, task_id: str, attempt: int, percent: int) -> pb.UpdateTaskProgressResponse:
    response: pb.UpdateTaskProgressResponse = await stub.UpdateTaskProgress(
        pb.UpdateTaskProgressRequest(task_id=task_id, attempt=attempt, progress=percent)
    )
    return response


async def test_execute_starts_a_todo_task_and_returns_its_context(stub: Stub) -> None:
    await register(stub, charter={"mission": "ship it", "values": ["care"]})
    dependency = await create(stub, "dependency")
    await complete(stub, dependency.id, (await execute(stub, dependency.id)).attempt)
    task = await create(stub, "main", depends_on=[dependency.id], channel_id="ch-1")
    related = await create(stub, "sibling")
    await create(stub, "elsewhere", workspace_id="ws-2")

    started = await execute(stub, task.id)
    assert started.outcome == pb.EXECUTE_OUTCOME_STARTED
    assert started.attempt == 1
    context = started.context
    assert context.task.status == task_pb2.TASK_STATUS_IN_PROGRESS
    assert context.orchestrator.charter.mission == "ship it"
    assert [(d.task_id, d.status, d.met) for d in context.dependencies] == [
        (dependency.id, task_pb2.TASK_STATUS_DONE, True)
    ]
    assert [t.id for t in context.related_tasks] == [related.id]
    assert (context.workspace_id, context.channel_id) == ("ws-1", "ch-1")


async def test_execute_reports_blocked_with_the_unmet_dependencies(stub: Stub) -> None:
    await register(stub)
    first = await create(stub, "first")
    second = await create(stub, "second")
    waiting = await create(stub, "waiting", depends_on=[first.id, second.id])
    await complete(stub, first.id, (await execute(stub, first.id)).attempt)

    blocked = await execute(stub, waiting.id)
    assert blocked.outcome == pb.EXECUTE_OUTCOME_BLOCKED
    assert list(blocked.unmet_dependency_ids) == [second.id]
    assert "1 unmet dependency" in blocked.blocked_reason
    assert blocked.attempt == 0
    assert (
        await stub.GetTask(pb.GetTaskRequest(task_id=waiting.id))
    ).task.status == task_pb2.TASK_STATUS_BLOCKED


async def test_execute_errors(stub: Stub) -> None:
    await register(stub, "ada")
    await register(stub, "bob")
    task = await create(stub)
    await expect_error(execute(stub, "missing"), grpc.StatusCode.NOT_FOUND, "missing")
    await expect_error(execute(stub, task.id, "nobody"), grpc.StatusCode.NOT_FOUND, "nobody")
    await expect_error(execute(stub, task.id, "bob"), grpc.StatusCode.PERMISSION_DENIED)
    await expect_error(execute(stub, ""), grpc.StatusCode.INVALID_ARGUMENT, "task_id")
    await execute(stub, task.id)
    await expect_error(execute(stub, task.id), grpc.StatusCode.ABORTED, "already started")
    await complete(stub, task.id, 1)
    await expect_error(execute(stub, task.id), grpc.StatusCode.FAILED_PRECONDITION, "DONE")
    await expect_error(
        stub.PrepareTaskContext(pb.PrepareTaskContextRequest(orchestrator_id="bob", task_id=task.id)),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_progress_is_validated_and_fenced_by_attempt(stub: Stub) -> None:
    await register(stub)
    task = await create(stub)
    await expect_error(progress(stub, task.id, 1, 10), grpc.StatusCode.FAILED_PRECONDITION, "TODO")
    attempt = (await claim(stub)).attempt
    assert (await progress(stub, task.id, attempt, 0)).task.progress == 0
    assert (await progress(stub, task.id, attempt, 100)).task.progress == 100
    await expect_error(progress(stub, task.id, attempt, 101), grpc.StatusCode.INVALID_ARGUMENT, "progress")
    await expect_error(progress(stub, task.id, attempt, -1), grpc.StatusCode.INVALID_ARGUMENT, "progress")
    await expect_error(progress(stub, task.id, 0, 5), grpc.StatusCode.INVALID_ARGUMENT, "attempt")
    await expect_error(
        progress(stub, task.id, attempt + 1, 5), grpc.StatusCode.FAILED_PRECONDITION, "never started"
    )
    await expect_error(progress(stub, "missing", 1, 5), grpc.StatusCode.NOT_FOUND)


async def test_a_superseded_attempt_cannot_report(stub: Stub, database_url: str) -> None:
    await register(stub)
    task = await create(stub)
    first = (await claim(stub)).attempt
    # Back to TODO in SQL, as the lease reaper would do, without waiting for a lease.
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("UPDATE tasks SET status = 'TODO' WHERE id = %s", (task.id,))
    second = (await claim(stub)).attempt
    assert second == first + 1
    await expect_error(progress(stub, task.id, first, 50), grpc.StatusCode.FAILED_PRECONDITION, "superseded")
    await expect_error(complete(stub, task.id, first), grpc.StatusCode.FAILED_PRECONDITION, "superseded")
    assert (await progress(stub, task.id, second, 50)).task.progress == 50
    done = await complete(stub, task.id, second)
    assert done.task.status == task_pb2.TASK_STATUS_DONE


async def test_blocked_outcome_records_the_reason_and_ends_the_attempt(stub: Stub) -> None:
    await register(stub)
    task = await create(stub)
    first = (await claim(stub)).attempt
    await complete(stub, task.id, first, status=pb.COMPLETION_STATUS_BLOCKED, error="need input")
    await expect_error(progress(stub, task.id, first, 50), grpc.StatusCode.FAILED_PRECONDITION, "BLOCKED")
    blocked = (await stub.GetTask(pb.GetTaskRequest(task_id=task.id))).task
    assert blocked.status == task_pb2.TASK_STATUS_BLOCKED
    assert blocked.status_reason == "need input"
    assert blocked.result.error == "need input"


async def test_complete_is_idempotent_and_refuses_a_conflicting_second_completion(stub: Stub) -> None:
    await register(stub)
    dependency = await create(stub, "dependency")
    dependent = await create(stub, "dependent", depends_on=[dependency.id])
    attempt = (await claim(stub)).attempt
    output = {"answer": 42}
    first = await complete(stub, dependency.id, attempt, output=_struct(output))
    assert list(first.unblocked_task_ids) == [dependent.id]
    again = await complete(stub, dependency.id, attempt, output=_struct(output))
    assert again.task.status == task_pb2.TASK_STATUS_DONE
    assert again.task.complete_time == first.task.complete_time
    assert dict(again.task.result.output) == {"answer": 42}
    await expect_error(
        complete(stub, dependency.id, attempt, output=_struct({"answer": 43})),
        grpc.StatusCode.FAILED_PRECONDITION,
        "different completion",
    )
    await expect_error(
        complete(stub, dependency.id, attempt, status=pb.COMPLETION_STATUS_FAILED),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    dependent_now = (await stub.GetTask(pb.GetTaskRequest(task_id=dependent.id))).task
    assert dependent_now.status == task_pb2.TASK_STATUS_TODO
    assert dependent_now.unmet_dependency_count == 0


async def test_complete_validation(stub: Stub) -> None:
    await register(stub)
    task = await create(stub)
    attempt = (await claim(stub)).attempt
    await expect_error(
        complete(stub, task.id, attempt, status=pb.COMPLETION_STATUS_UNSPECIFIED),
        grpc.StatusCode.INVALID_ARGUMENT,
        "status",
    )
    await expect_error(
        complete(stub, task.id, attempt, error="x" * 8001), grpc.StatusCode.INVALID_ARGUMENT, "result.error"
    )
    await expect_error(complete(stub, "missing", 1), grpc.StatusCode.NOT_FOUND)


async def test_failed_dependency_keeps_dependents_blocked(stub: Stub) -> None:
    await register(stub)
    dependency = await create(stub, "dependency")
    dependent = await create(stub, "dependent", depends_on=[dependency.id])
    attempt = (await claim(stub)).attempt
    failed = await complete(stub, dependency.id, attempt, status=pb.COMPLETION_STATUS_FAILED, error="boom")
    assert failed.task.status == task_pb2.TASK_STATUS_FAILED
    assert list(failed.unblocked_task_ids) == []
    still = (await stub.GetTask(pb.GetTaskRequest(task_id=dependent.id))).task
    assert still.status == task_pb2.TASK_STATUS_BLOCKED


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


async def test_non_finite_numbers_in_json_fields_are_invalid_arguments_naming_the_field(stub: Stub) -> None:
    await register(stub)
    not_a_number = _struct({"x": math.nan})
    infinite = _struct({"x": math.inf})
    await expect_error(
        stub.CreateTask(
            pb.CreateTaskRequest(orchestrator_id="ada", workspace_id="ws", title="t", metadata=not_a_number)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "metadata: numbers must be finite",
    )
    task = await create(stub)
    attempt = (await claim(stub)).attempt
    await expect_error(
        stub.UpdateTaskProgress(
            pb.UpdateTaskProgressRequest(task_id=task.id, attempt=attempt, progress=5, metadata=infinite)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "metadata: numbers must be finite",
    )
    for field, result in (
        ("output", task_pb2.TaskResult(output=not_a_number)),
        ("metrics", task_pb2.TaskResult(metrics=not_a_number)),
    ):
        await expect_error(
            stub.CompleteTask(
                pb.CompleteTaskRequest(
                    task_id=task.id, attempt=attempt, status=pb.COMPLETION_STATUS_COMPLETED, result=result
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            f"result.{field}: numbers must be finite",
        )


async def test_a_wait_beyond_any_calendar_is_an_invalid_argument(stub: Stub) -> None:
    await register(stub)
    request = pb.ClaimNextTaskRequest(orchestrator_id="ada")
    request.wait.seconds = 2**62
    await expect_error(stub.ClaimNextTask(request), grpc.StatusCode.INVALID_ARGUMENT, "wait: is out of range")
