"""Domain values as the dashboard's JSON: times as ISO 8601 (UTC), durations in seconds, enums
by name. A task comes in two sizes: its summary (what lists and live events carry) and in full
(the task view)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from workengine.domain.explain import Explanation, NotFirst, RankedTask
from workengine.domain.model import (
    DependencyState,
    ExecutionStats,
    Orchestrator,
    QueueState,
    Task,
    TaskAttempt,
    TaskEvent,
    TaskStatus,
)
from workengine.domain.statistics import Throughput

Json = dict[str, Any]


def when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def seconds(value: timedelta | None) -> float | None:
    return value.total_seconds() if value is not None else None


def task_summary(task: Task) -> Json:
    """What a list row or a progress bar needs; no description, metadata or result."""
    return {
        "id": task.id,
        "title": task.title,
        "orchestrator_id": task.orchestrator_id,
        "workspace_id": task.workspace_id,
        "status": task.status.value,
        "status_reason": task.status_reason,
        "priority": task.priority.name,
        "due_at": when(task.due_at),
        "progress": task.progress,
        "progress_message": task.progress_message,
        "attempt": task.attempt,
        "max_attempts": task.max_attempts,
        "unmet_dependency_count": task.unmet_dependency_count,
        "created_at": when(task.created_at),
        "updated_at": when(task.updated_at),
        "started_at": when(task.started_at),
        "completed_at": when(task.completed_at),
        "retry_at": when(task.retry_at),
        # As the gRPC Task's estimated_completion_time: only while IN_PROGRESS (a finished
        # task's last estimate is no ETA). The page counts the time left to it on its clock.
        "estimated_completion_at": when(task.estimated_completion_at)
        if task.status is TaskStatus.IN_PROGRESS
        else None,
    }


def task_full(task: Task) -> Json:
    result = task.result
    return task_summary(task) | {
        "channel_id": task.channel_id,
        "description": task.description,
        "tags": list(task.tags),
        "depends_on": list(task.depends_on),
        "metadata": task.metadata,
        "lease_seconds": seconds(task.lease),
        "lease_expires_at": when(task.lease_expires_at),
        "lease_expiry_count": task.lease_expiry_count,
        "failure_count": task.failure_count,
        "idempotency_key": task.idempotency_key,
        "result": None
        if result is None
        else {
            "output": result.output,
            "error": result.error,
            "artifacts": [{"type": a.type, "content": a.content} for a in result.artifacts],
            "metrics": result.metrics,
        },
    }


def orchestrator(found: Orchestrator, counts: dict[TaskStatus, int] | None = None) -> Json:
    return {
        "id": found.id,
        "display_name": found.display_name,
        "role": found.role,
        "status": found.status.value,
        "timezone": found.timezone,
        "capabilities": list(found.capabilities),
        "created_at": when(found.created_at),
        "last_heartbeat_at": when(found.last_heartbeat_at),
        "counts": {status.value: (counts or {}).get(status, 0) for status in TaskStatus},
    }


def attempt(found: TaskAttempt) -> Json:
    return {
        "attempt": found.attempt,
        "identity": found.identity,
        "started_at": when(found.started_at),
        "ended_at": when(found.ended_at),
        "outcome": found.outcome.value,
        "reason": found.reason,
    }


def dependency(found: DependencyState) -> Json:
    return {"id": found.task_id, "title": found.title, "status": found.status.value, "met": found.met}


def event(found: TaskEvent) -> Json:
    return {
        "cursor": str(found.cursor),  # beyond 2^53: JavaScript numbers would round it
        "kind": found.kind.value,
        "occurred_at": when(found.occurred_at),
        "attempt": found.attempt,
        "progress": found.progress,
        "message": found.message,
        "estimated_completion_at": when(found.estimated_completion_at),  # PROGRESS: this report's ETA
        "task": task_summary(found.task),
    }


def ranked(found: RankedTask) -> Json:
    return {
        "rank": found.rank,
        "score": found.score,
        "priority_weight": found.priority_weight,
        "deadline_bucket": found.deadline_bucket,
        "deadline_boost": found.deadline_boost,
        "local_due": when(found.local_due),
        "task": task_summary(found.task),
    }


def not_first(found: NotFirst) -> Json:
    return {
        "task_id": found.task_id,
        "reason": found.reason.value,
        "rank": found.rank,
        "detail": found.detail,
        "blocked_on": list(found.blocked_on),
        "attempt": found.attempt,
    }


def explanation(found: Explanation) -> Json:
    return {
        "orchestrator_id": found.orchestrator_id,
        "timezone": found.timezone,
        "ranked": [ranked(r) for r in found.ranked],
    }


def queue_state(found: QueueState) -> Json:
    return {
        "counts": {status.value: count for status, count in found.counts.items()},
        "oldest_ready_age_seconds": seconds(found.oldest_ready_age),
    }


def throughput(found: Throughput) -> Json:
    return {
        "since": when(found.since),
        "counted_since": when(found.counted_since),
        "minutes": [
            {"minute": when(m.minute), "completed": m.completed, "failed": m.failed} for m in found.minutes
        ],
    }


def stats(found: ExecutionStats) -> Json:
    return {
        "total": found.total,
        "completed": found.completed,
        "failed": found.failed,
        "success_rate_percent": found.success_rate_percent,
        "average_seconds": found.average_seconds,
        "p50_seconds": found.p50_seconds,
        "p95_seconds": found.p95_seconds,
        "by_status": {status.value: count for status, count in found.by_status},
        "by_priority": {priority.name: count for priority, count in found.by_priority},
        "completion_histogram": [
            {"up_to_seconds": bound, "tasks": count} for bound, count in found.completion_histogram
        ],
    }
