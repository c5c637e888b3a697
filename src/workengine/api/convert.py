"""Proto <-> domain conversion. Enum mapping by name keeps the two in step."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from workengine.domain import transitions
from workengine.domain.attempts import DEFAULT_MAX_ATTEMPTS
from workengine.domain.errors import InvalidArgument
from workengine.domain.explain import Explanation, NotFirst, NotFirstReason, RankedTask
from workengine.domain.model import (
    Artifact,
    AttemptOutcome,
    Bookmark,
    Charter,
    CompletionStatus,
    EventKind,
    ExecutionStats,
    JsonObject,
    NewOrchestrator,
    NewTask,
    Orchestrator,
    OrchestratorStatus,
    Priority,
    SelectionCriteria,
    Task,
    TaskAttempt,
    TaskEvent,
    TaskFilter,
    TaskResult,
    TaskStatus,
)
from workengine.domain.scoring import DEADLINE_BUCKETS
from workengine.domain.trace_context import TraceContext, from_headers
from workengine.v1 import orchestrator_pb2, task_pb2
from workengine.v1 import work_engine_service_pb2 as service_pb2

# Python's datetime cannot hold PostgreSQL's +/-infinity; the schema never returns them.
_TIMESTAMP_MIN = datetime(1, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


Member = TypeVar("Member", bound=enum.Enum)


class EnumMapping(Generic[Member]):
    """A proto enum and its domain twin, matched by name (PREFIX_NAME and NAME). Every number
    is looked up once, at import, so a domain member without a proto value fails there, not in
    a call (a claim converts two enums for each of about twenty tasks)."""

    def __init__(self, descriptor: Any, prefix: str, domain: type[Member]) -> None:
        self._numbers: dict[Member, int] = {
            member: int(descriptor.values_by_name[prefix + member.name].number) for member in domain
        }
        self._members = {number: member for member, number in self._numbers.items()}

    def to_domain(self, field: str, value: int) -> Member | None:
        """None for UNSPECIFIED (0); a number the proto does not define is INVALID_ARGUMENT."""
        if value == 0:
            return None
        member = self._members.get(value)
        if member is None:
            raise InvalidArgument(field, f"unknown value {value}")
        return member

    def to_proto(self, member: Member) -> Any:
        return self._numbers[member]


PRIORITY = EnumMapping(task_pb2.TaskPriority.DESCRIPTOR, "TASK_PRIORITY_", Priority)
TASK_STATUS = EnumMapping(task_pb2.TaskStatus.DESCRIPTOR, "TASK_STATUS_", TaskStatus)
ORCHESTRATOR_STATUS = EnumMapping(
    orchestrator_pb2.OrchestratorStatus.DESCRIPTOR, "ORCHESTRATOR_STATUS_", OrchestratorStatus
)
COMPLETION_STATUS = EnumMapping(
    service_pb2.CompletionStatus.DESCRIPTOR, "COMPLETION_STATUS_", CompletionStatus
)
EVENT_KIND = EnumMapping(task_pb2.TaskEventKind.DESCRIPTOR, "TASK_EVENT_KIND_", EventKind)
ATTEMPT_OUTCOME = EnumMapping(task_pb2.AttemptOutcome.DESCRIPTOR, "ATTEMPT_OUTCOME_", AttemptOutcome)
NOT_FIRST_REASON = EnumMapping(service_pb2.NotFirstReason.DESCRIPTOR, "NOT_FIRST_REASON_", NotFirstReason)
# The bucket's name, as domain/scoring.py gives it, after the prefix.
DEADLINE_BUCKET: dict[str, Any] = {
    name: service_pb2.DeadlineBucket.Value(f"DEADLINE_BUCKET_{name}") for name in DEADLINE_BUCKETS.values()
}


def time_in(field: str, message: Any, value: timestamp_pb2.Timestamp) -> datetime | None:
    if not message.HasField(field):
        return None
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(field, "is out of range") from None


def time_out(target: timestamp_pb2.Timestamp, value: datetime | None) -> None:
    # What Timestamp.FromDatetime does, in a quarter of its time: a claim's context carries
    # about 170 timestamps. (Every datetime here is aware: the comparison refuses naive ones.)
    if value is not None and value > _TIMESTAMP_MIN:
        since_epoch = value - _EPOCH
        target.seconds = since_epoch.days * 86400 + since_epoch.seconds
        target.nanos = since_epoch.microseconds * 1000


def duration_in(field: str, message: Any) -> timedelta | None:
    if not message.HasField(field):
        return None
    duration = getattr(message, field)
    if duration.seconds < 0 or duration.nanos < 0:
        raise InvalidArgument(field, "must not be negative")
    try:
        return timedelta(seconds=duration.seconds, microseconds=duration.nanos // 1000)
    except OverflowError:
        raise InvalidArgument(field, "is out of range") from None


def struct_in(field: str, value: struct_pb2.Struct) -> JsonObject:
    try:
        result: JsonObject = json_format.MessageToDict(value)
    except ValueError:  # NaN and infinities have no JSON form
        raise InvalidArgument(field, "numbers must be finite") from None
    return result


def struct_out(target: struct_pb2.Struct, value: JsonObject) -> None:
    if value:
        target.update(value)


def charter_out(charter: Charter) -> orchestrator_pb2.Charter:
    return orchestrator_pb2.Charter(
        mission=charter.mission, vision=charter.vision, values=charter.values, expertise=charter.expertise
    )


def orchestrator_out(orchestrator: Orchestrator) -> orchestrator_pb2.Orchestrator:
    message = orchestrator_pb2.Orchestrator(
        id=orchestrator.id,
        display_name=orchestrator.display_name,
        role=orchestrator.role,
        discipline=orchestrator.discipline,
        capabilities=orchestrator.capabilities,
        daemon_endpoint=orchestrator.daemon_endpoint,
        status=ORCHESTRATOR_STATUS.to_proto(orchestrator.status),
        timezone=orchestrator.timezone,
        charter=charter_out(orchestrator.charter),
    )
    time_out(message.create_time, orchestrator.created_at)
    time_out(message.update_time, orchestrator.updated_at)
    time_out(message.last_heartbeat_time, orchestrator.last_heartbeat_at)
    return message


def new_orchestrator_in(request: service_pb2.RegisterOrchestratorRequest) -> NewOrchestrator:
    charter = request.charter
    return NewOrchestrator(
        id=request.orchestrator_id,
        display_name=request.display_name,
        role=request.role,
        discipline=request.discipline,
        capabilities=tuple(request.capabilities),
        daemon_endpoint=request.daemon_endpoint,
        status=ORCHESTRATOR_STATUS.to_domain("status", request.status) or OrchestratorStatus.ONLINE,
        timezone=request.timezone,
        charter=Charter(
            mission=charter.mission,
            vision=charter.vision,
            values=tuple(charter.values),
            expertise=tuple(charter.expertise),
        ),
    )


def result_out(result: TaskResult) -> task_pb2.TaskResult:
    message = task_pb2.TaskResult(
        error=result.error,
        artifacts=[task_pb2.Artifact(type=a.type, content=a.content) for a in result.artifacts],
        lessons=result.lessons,
    )
    struct_out(message.output, result.output)
    struct_out(message.metrics, result.metrics)
    return message


def result_in(field: str, message: task_pb2.TaskResult) -> TaskResult:
    return TaskResult(
        output=struct_in(f"{field}.output", message.output),
        error=message.error,
        artifacts=tuple(Artifact(a.type, a.content) for a in message.artifacts),
        metrics=struct_in(f"{field}.metrics", message.metrics),
        lessons=tuple(message.lessons),
    )


def task_out(task: Task) -> task_pb2.Task:
    message = task_pb2.Task(
        id=task.id,
        orchestrator_id=task.orchestrator_id,
        workspace_id=task.workspace_id,
        channel_id=task.channel_id,
        title=task.title,
        description=task.description,
        priority=PRIORITY.to_proto(task.priority),
        status=TASK_STATUS.to_proto(task.status),
        tags=task.tags,
        depends_on=task.depends_on,
        progress=task.progress,
        progress_message=task.progress_message,
        attempt=task.attempt,
        status_reason=transitions.status_reason(task),
        unmet_dependency_count=task.unmet_dependency_count,
        max_attempts=task.max_attempts,
        lease_expiry_count=task.lease_expiry_count,
        failure_count=task.failure_count,
        idempotency_key=task.idempotency_key,
    )
    time_out(message.due_time, task.due_at)
    struct_out(message.metadata, task.metadata)
    time_out(message.create_time, task.created_at)
    time_out(message.update_time, task.updated_at)
    time_out(message.start_time, task.started_at)
    time_out(message.complete_time, task.completed_at)
    time_out(message.lease_expire_time, task.lease_expires_at)
    time_out(message.retry_time, task.retry_at)
    time_out(message.not_before_time, task.not_before)
    if task.status is TaskStatus.IN_PROGRESS:
        time_out(message.estimated_completion_time, task.estimated_completion_at)
    if task.lease is not None:
        message.lease_duration.FromTimedelta(task.lease)
    if task.result is not None:
        message.result.CopyFrom(result_out(task.result))
    return message


def attempt_out(attempt: TaskAttempt) -> task_pb2.TaskAttempt:
    message = task_pb2.TaskAttempt(
        attempt=attempt.attempt,
        identity=attempt.identity,
        outcome=ATTEMPT_OUTCOME.to_proto(attempt.outcome),
        reason=attempt.reason,
    )
    time_out(message.start_time, attempt.started_at)
    time_out(message.end_time, attempt.ended_at)
    return message


def new_task_in(request: service_pb2.CreateTaskRequest) -> NewTask:
    return NewTask(
        id=request.task_id,
        orchestrator_id=request.orchestrator_id,
        workspace_id=request.workspace_id,
        channel_id=request.channel_id,
        title=request.title,
        description=request.description,
        priority=PRIORITY.to_domain("priority", request.priority) or Priority.MEDIUM,
        due_at=time_in("due_time", request, request.due_time),
        tags=tuple(request.tags),
        depends_on=tuple(request.depends_on),
        metadata=struct_in("metadata", request.metadata),
        max_attempts=request.max_attempts or DEFAULT_MAX_ATTEMPTS,
        lease=duration_in("lease_duration", request),
        idempotency_key=request.idempotency_key,
        not_before=time_in("not_before", request, request.not_before),
    )


def criteria_in(message: task_pb2.SelectionCriteria) -> SelectionCriteria:
    return SelectionCriteria(
        required_tags=tuple(message.required_tags),
        min_priority=PRIORITY.to_domain("criteria.min_priority", message.min_priority),
        max_priority=PRIORITY.to_domain("criteria.max_priority", message.max_priority),
        exclude_task_ids=tuple(message.exclude_task_ids),
    )


def task_filter_in(request: service_pb2.ListTasksRequest) -> TaskFilter:
    statuses = []
    for index, value in enumerate(request.statuses):
        status = TASK_STATUS.to_domain(f"statuses[{index}]", value)
        if status is not None:
            statuses.append(status)
    return TaskFilter(
        orchestrator_id=request.orchestrator_id,
        workspace_id=request.workspace_id,
        statuses=tuple(statuses),
        tag=request.tag,
    )


def trace_context_in(metadata: Iterable[tuple[str, str | bytes]] | None) -> TraceContext | None:
    """The W3C trace context a call's metadata carries (where W3C propagation over gRPC puts
    it), whether or not this server traces; None when there is no valid one."""
    found: dict[str, list[str]] = {"traceparent": [], "tracestate": []}
    for key, value in metadata or ():
        if key in found and isinstance(value, str):
            found[key].append(value)
    return from_headers(found["traceparent"], found["tracestate"])


def event_out(event: TaskEvent) -> task_pb2.TaskEvent:
    message = task_pb2.TaskEvent(
        cursor=event.cursor,
        kind=EVENT_KIND.to_proto(event.kind),
        task=task_out(event.task),
        attempt=event.attempt,
        progress=event.progress,
        message=event.message,
    )
    time_out(message.event_time, event.occurred_at)
    struct_out(message.metadata, event.metadata)
    time_out(message.estimated_completion_time, event.estimated_completion_at)
    return message


def bookmark_out(bookmark: Bookmark) -> task_pb2.TaskEvent:
    message = task_pb2.TaskEvent(cursor=bookmark.cursor, kind=task_pb2.TASK_EVENT_KIND_BOOKMARK)
    time_out(message.event_time, bookmark.occurred_at)
    return message


def stats_out(stats: ExecutionStats) -> service_pb2.GetExecutionStatsResponse:
    return service_pb2.GetExecutionStatsResponse(
        total_tasks=stats.total,
        completed_tasks=stats.completed,
        failed_tasks=stats.failed,
        success_rate_percent=stats.success_rate_percent,
        average_completion_seconds=stats.average_seconds,
        p50_completion_seconds=stats.p50_seconds,
        p95_completion_seconds=stats.p95_seconds,
        by_status=[task_pb2.StatusCount(status=TASK_STATUS.to_proto(s), count=c) for s, c in stats.by_status],
        by_priority=[
            task_pb2.PriorityCount(priority=PRIORITY.to_proto(p), count=c) for p, c in stats.by_priority
        ],
    )


def ranked_task_out(entry: RankedTask) -> service_pb2.RankedTask:
    return service_pb2.RankedTask(
        rank=entry.rank,
        task=task_out(entry.task),
        score=entry.score,
        priority_weight=entry.priority_weight,
        deadline_bucket=DEADLINE_BUCKET[entry.deadline_bucket],
        deadline_boost=entry.deadline_boost,
        local_due_time=entry.local_due.isoformat() if entry.local_due is not None else "",
    )


def not_first_out(answer: NotFirst) -> service_pb2.TaskExplanation:
    return service_pb2.TaskExplanation(
        task_id=answer.task_id,
        reason=NOT_FIRST_REASON.to_proto(answer.reason),
        rank=answer.rank,
        detail=answer.detail,
        blocked_on=answer.blocked_on,
        attempt=answer.attempt,
    )


def explanation_out(explanation: Explanation) -> service_pb2.ExplainSelectionResponse:
    return service_pb2.ExplainSelectionResponse(
        orchestrator_id=explanation.orchestrator_id,
        timezone=explanation.timezone,
        ranked=[ranked_task_out(entry) for entry in explanation.ranked],
        explained=[not_first_out(answer) for answer in explanation.explained],
    )
