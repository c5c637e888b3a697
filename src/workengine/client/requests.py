"""Request messages built from plain Python values, shared by the sync and asyncio clients.

protobuf accepts `datetime` for Timestamp, `timedelta` for Duration and `dict` for Struct
fields, so these builders pass such values straight through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypedDict

from workengine.v1 import orchestrator_pb2, task_pb2
from workengine.v1 import work_engine_service_pb2 as pb

JsonObject = Mapping[str, Any]


def _struct(value: JsonObject | None) -> dict[str, Any] | None:
    """A JSON object for a google.protobuf.Struct field; None leaves the field unset."""
    return None if value is None else dict(value)


def register_orchestrator(
    display_name: str,
    orchestrator_id: str,
    timezone: str,
    capabilities: Iterable[str],
    role: str,
    discipline: str,
    charter: orchestrator_pb2.Charter | None,
) -> pb.RegisterOrchestratorRequest:
    return pb.RegisterOrchestratorRequest(
        orchestrator_id=orchestrator_id,
        display_name=display_name,
        timezone=timezone,
        capabilities=list(capabilities),
        role=role,
        discipline=discipline,
        charter=charter,
    )


def rotate_orchestrator_token(
    orchestrator_id: str, token_ttl: timedelta | None, previous_token_grace: timedelta | None
) -> pb.RotateOrchestratorTokenRequest:
    return pb.RotateOrchestratorTokenRequest(
        orchestrator_id=orchestrator_id, token_ttl=token_ttl, previous_token_grace=previous_token_grace
    )


class TaskFields(TypedDict, total=False):
    """CreateTask's optional fields, as keyword arguments of the clients' `create_task`."""

    task_id: str
    description: str
    priority: task_pb2.TaskPriority
    due_time: datetime
    tags: Iterable[str]
    depends_on: Iterable[str]
    metadata: JsonObject
    channel_id: str
    max_attempts: int
    lease_duration: timedelta
    idempotency_key: str
    not_before: datetime


def create_task(
    orchestrator_id: str, workspace_id: str, title: str, fields: TaskFields
) -> pb.CreateTaskRequest:
    given: dict[str, Any] = dict(fields)
    if "metadata" in given:
        given["metadata"] = _struct(given["metadata"])
    return pb.CreateTaskRequest(
        orchestrator_id=orchestrator_id, workspace_id=workspace_id, title=title, **given
    )


def claim_next_task(
    orchestrator_id: str,
    wait: timedelta | None,
    criteria: task_pb2.SelectionCriteria | None,
    lease_duration: timedelta | None = None,
    identity: str = "",
    history_limit: int | None = None,
) -> pb.ClaimNextTaskRequest:
    return pb.ClaimNextTaskRequest(
        orchestrator_id=orchestrator_id,
        criteria=criteria,
        wait=wait,
        lease_duration=lease_duration,
        identity=identity,
        history_limit=history_limit,
    )


def execute_task(
    orchestrator_id: str,
    task_id: str,
    lease_duration: timedelta | None,
    identity: str,
    history_limit: int | None = None,
) -> pb.ExecuteTaskRequest:
    return pb.ExecuteTaskRequest(
        orchestrator_id=orchestrator_id,
        task_id=task_id,
        lease_duration=lease_duration,
        identity=identity,
        history_limit=history_limit,
    )


def prepare_task_context(
    orchestrator_id: str, task_id: str, history_limit: int | None = None
) -> pb.PrepareTaskContextRequest:
    return pb.PrepareTaskContextRequest(
        orchestrator_id=orchestrator_id, task_id=task_id, history_limit=history_limit
    )


def explain_selection(
    orchestrator_id: str, criteria: task_pb2.SelectionCriteria | None, limit: int, task_ids: Iterable[str]
) -> pb.ExplainSelectionRequest:
    return pb.ExplainSelectionRequest(
        orchestrator_id=orchestrator_id, criteria=criteria, limit=limit, task_ids=list(task_ids)
    )


def update_task_progress(
    task_id: str, attempt: int, progress: int, message: str, metadata: JsonObject | None
) -> pb.UpdateTaskProgressRequest:
    return pb.UpdateTaskProgressRequest(
        task_id=task_id,
        attempt=attempt,
        progress=progress,
        message=message,
        metadata=_struct(metadata),
    )


def complete_task(
    task_id: str,
    attempt: int,
    status: pb.CompletionStatus,
    output: JsonObject | None,
    error: str,
    metrics: JsonObject | None,
    artifacts: Iterable[task_pb2.Artifact],
    retry_after: timedelta | None = None,
    lessons: Sequence[str] = (),
) -> pb.CompleteTaskRequest:
    if isinstance(lessons, str):  # a bare string is a sequence too: it would become one lesson per character
        raise TypeError("lessons is a sequence of strings, not one string")
    result = task_pb2.TaskResult(
        output=_struct(output),
        error=error,
        metrics=_struct(metrics),
        artifacts=list(artifacts),
        lessons=list(lessons),
    )
    return pb.CompleteTaskRequest(
        task_id=task_id, attempt=attempt, status=status, result=result, retry_after=retry_after
    )


def execution_stats(
    orchestrator_id: str, start_time: datetime | None, end_time: datetime | None
) -> pb.GetExecutionStatsRequest:
    return pb.GetExecutionStatsRequest(
        orchestrator_id=orchestrator_id, start_time=start_time, end_time=end_time
    )


def watch_task_progress(
    task_id: str,
    orchestrator_id: str,
    workspace_id: str,
    after_cursor: int,
    kinds: Iterable[task_pb2.TaskEventKind],
    keep_open: bool,
    bookmark_interval: timedelta | None = None,
) -> pb.WatchTaskProgressRequest:
    targets = {"task_id": task_id, "orchestrator_id": orchestrator_id, "workspace_id": workspace_id}
    chosen = [(name, value) for name, value in targets.items() if value]
    if len(chosen) != 1:
        raise ValueError("watch exactly one of task_id, orchestrator_id, workspace_id")
    request = pb.WatchTaskProgressRequest(after_cursor=after_cursor, kinds=list(kinds), keep_open=keep_open)
    setattr(request, *chosen[0])
    if bookmark_interval is not None:
        request.bookmark_interval.FromTimedelta(bookmark_interval)
    return request


def list_tasks(
    orchestrator_id: str,
    workspace_id: str,
    statuses: Iterable[task_pb2.TaskStatus],
    tag: str,
    page_size: int,
) -> pb.ListTasksRequest:
    return pb.ListTasksRequest(
        orchestrator_id=orchestrator_id,
        workspace_id=workspace_id,
        statuses=list(statuses),
        tag=tag,
        page_size=page_size,
    )
