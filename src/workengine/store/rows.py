"""Database rows -> domain values, and the typed results the stores return: the engine never
sees a row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from workengine.domain.access import StoredToken
from workengine.domain.model import (
    Artifact,
    AttemptOutcome,
    Charter,
    DependencyState,
    EventKind,
    EventPage,
    JsonObject,
    Orchestrator,
    OrchestratorStatus,
    Priority,
    ScoredTask,
    Snapshot,
    Task,
    TaskAttempt,
    TaskEvent,
    TaskResult,
    TaskStatus,
)
from workengine.domain.statistics import RollupCount
from workengine.domain.trace_context import TraceContext

Row = Mapping[str, Any]  # a psycopg dict row


class Changed(NamedTuple):
    """A task as a statement left it, and the event the statement recorded."""

    task: Task
    event: TaskEvent


class Claim(NamedTuple):
    """A claimed task with its STARTED event, and the related tasks read with it."""

    scored: ScoredTask
    event: TaskEvent
    related: list[Task]


class Cancelled(NamedTuple):
    """A cancelled task, and whether an attempt was running when it was cancelled."""

    task: Task
    was_running: bool


class Completed(NamedTuple):
    """A completed task with its event, and the UNBLOCKED events of the dependents it released."""

    changed: Changed
    unblocked: list[TaskEvent]


def to_orchestrator(row: Row) -> Orchestrator:
    charter: dict[str, Any] = row["charter"] or {}
    return Orchestrator(
        id=row["id"],
        display_name=row["display_name"],
        role=row["role"],
        discipline=row["discipline"],
        capabilities=tuple(row["capabilities"]),
        daemon_endpoint=row["daemon_endpoint"],
        status=OrchestratorStatus(row["status"]),
        timezone=row["timezone"],
        charter=Charter(
            mission=charter.get("mission", ""),
            vision=charter.get("vision", ""),
            values=tuple(charter.get("values", ())),
            expertise=tuple(charter.get("expertise", ())),
        ),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_heartbeat_at=row["last_heartbeat_at"],
    )


def to_result(value: dict[str, Any] | None) -> TaskResult | None:
    if value is None:
        return None
    return TaskResult(
        output=value.get("output", {}),
        error=value.get("error", ""),
        artifacts=tuple(Artifact(a["type"], a["content"]) for a in value.get("artifacts", ())),
        metrics=value.get("metrics", {}),
        lessons=tuple(value.get("lessons", ())),
    )


def to_task(row: Row) -> Task:
    return Task(
        id=row["id"],
        orchestrator_id=row["orchestrator_id"],
        workspace_id=row["workspace_id"],
        channel_id=row["channel_id"],
        title=row["title"],
        description=row["description"],
        priority=Priority(row["priority"]),
        due_at=row["due_at"],
        tags=tuple(row["tags"]),
        depends_on=tuple(row["depends_on"]),
        metadata=row["metadata"],
        status=TaskStatus(row["status"]),
        status_reason=row["status_reason"],
        unmet_dependency_count=row["unmet_dependency_count"],
        progress=row["progress"],
        progress_message=row["progress_message"],
        attempt=row["attempt"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        result=to_result(row["result"]),
        max_attempts=row["max_attempts"],
        lease=timedelta(seconds=row["lease_seconds"]) if row["lease_seconds"] is not None else None,
        idempotency_key=row["idempotency_key"] or "",
        lease_expires_at=row["lease_expires_at"],
        lease_expiry_count=row["lease_expiry_count"],
        failure_count=row["failure_count"],
        retry_at=row["retry_at"],
        trace_context=TraceContext.from_json(row.get("trace_context")),
        estimated_completion_at=row.get("estimated_completion_at"),
        not_before=row.get("not_before"),
    )


def _timestamp(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def to_attempts(values: Sequence[dict[str, Any]]) -> tuple[TaskAttempt, ...]:
    """The JSON array get_task_with_attempts builds."""
    attempts = []
    for value in values:
        started_at = _timestamp(value["started_at"])
        assert started_at is not None
        attempts.append(
            TaskAttempt(
                attempt=value["attempt"],
                identity=value["identity"],
                started_at=started_at,
                ended_at=_timestamp(value["ended_at"]),
                outcome=AttemptOutcome(value["outcome"]),
                reason=value["reason"],
            )
        )
    return tuple(attempts)


KNOWN_EVENT_KINDS = frozenset(kind.value for kind in EventKind)


def to_event_page(found: Sequence[Row]) -> EventPage:
    """Rows of an events page statement; a lone row without an event means an empty page.

    An event of a kind this version does not know (written by a newer one during a rolling
    upgrade) is left out rather than stopping the page.
    """
    first = found[0]
    covered = [r for r in found if r["event_position"] is not None]
    return EventPage(
        events=tuple(to_event(r) for r in covered if r["event_kind"] in KNOWN_EVENT_KINDS),
        size=len(covered),
        last_position=int(covered[-1]["event_position"]) if covered else None,
        head=int(first["head"] or 0),
        pruned_through=int(first["pruned_through"]),
    )


def to_event(row: Row) -> TaskEvent:
    """An events page row: the event columns prefixed event_, then the task's as it is now.

    The task is shown with the status, attempt and percent recorded with the event (and, for
    progress, its message and ETA); other fields are current.
    """
    kind = EventKind(row["event_kind"])
    estimated_completion_at = row["event_estimated_completion_at"]
    task = replace(
        to_task(row),
        status=TaskStatus(row["event_status"]),
        attempt=row["event_attempt"],
        progress=row["event_progress"],
        # Not the current ETA: the one right after the change (a progress report's; none else).
        estimated_completion_at=estimated_completion_at,
    )
    if kind is EventKind.PROGRESS:
        task = replace(task, progress_message=row["event_message"])
    return TaskEvent(
        cursor=row["event_position"],
        kind=kind,
        occurred_at=row["event_time"],
        task=task,
        attempt=row["event_attempt"],
        progress=row["event_progress"] if kind is EventKind.PROGRESS else 0,
        message=row["event_message"],
        metadata=row["event_metadata"],
        estimated_completion_at=estimated_completion_at,
    )


def to_dependency_state(row: Row) -> DependencyState:
    return DependencyState(row["id"], row["title"], TaskStatus(row["status"]))


# The events that end a running attempt (a cancellation only sometimes: see ran_for).
ATTEMPT_ENDING = frozenset({EventKind.COMPLETED, EventKind.FAILED, EventKind.BLOCKED})


def _since(start: datetime | None, end: datetime) -> timedelta | None:
    return max(end - start, timedelta(0)) if start is not None else None


def to_changed(row: Row, kind: EventKind, message: str = "", metadata: JsonObject | None = None) -> Changed:
    """A row of a statement that changed one task and recorded its event (changed_event)."""
    task = to_task(row)
    occurred_at: datetime = row["event_time"]
    event = TaskEvent(
        cursor=row["event_position"],
        kind=kind,
        occurred_at=occurred_at,
        task=task,
        attempt=task.attempt,
        progress=task.progress if kind is EventKind.PROGRESS else 0,
        message=message,
        metadata=metadata or {},
        estimated_completion_at=task.estimated_completion_at if kind is EventKind.PROGRESS else None,
        queued_for=_since(row.get("ready_since"), occurred_at) if kind is EventKind.STARTED else None,
        ran_for=_since(task.started_at, occurred_at) if kind in ATTEMPT_ENDING else None,
    )
    return Changed(task, event)


def to_moved_events(kind: EventKind, found: Sequence[Row], message: str = "") -> list[TaskEvent]:
    """Rows of a statement that moved tasks and recorded an event each (moved_events)."""
    return [
        TaskEvent(
            cursor=r["event_position"],
            kind=kind,
            occurred_at=r["event_time"],
            task=to_task(r),
            attempt=r["attempt"],
            message=message,
        )
        for r in found
    ]


def to_snapshot(found: Sequence[Row]) -> Snapshot:
    """Rows of a snapshot statement: the position on every row, no task columns when empty."""
    first = found[0]
    return Snapshot(
        position=int(first["snapshot_position"]),
        seen_positions=frozenset(first["seen_positions"]),
        tasks=tuple(to_task(r) for r in found if r["id"] is not None),
    )


def to_stored_token(row: Row) -> StoredToken:
    return StoredToken(row["orchestrator_id"], row["expires_at"], row["revoked_at"])


def to_rollup_count(row: Row) -> RollupCount:
    return RollupCount(row["status"], row["priority"], row["bucket"], int(row["tasks"]), row["seconds"])
