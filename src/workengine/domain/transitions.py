"""The task state machine. Anything not listed here is refused."""

from __future__ import annotations

from datetime import UTC

from workengine.domain.errors import FailedPrecondition
from workengine.domain.model import CompletionStatus, Task, TaskStatus

TERMINAL = frozenset({TaskStatus.DONE, TaskStatus.CANCELLED})
FINISHED = frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED})
DEPENDENCY_MET = frozenset({TaskStatus.DONE, TaskStatus.CANCELLED})

ALLOWED: frozenset[tuple[TaskStatus, TaskStatus]] = frozenset(
    {
        (TaskStatus.TODO, TaskStatus.IN_PROGRESS),
        (TaskStatus.IN_PROGRESS, TaskStatus.DONE),
        (TaskStatus.IN_PROGRESS, TaskStatus.FAILED),
        (TaskStatus.IN_PROGRESS, TaskStatus.BLOCKED),
        (TaskStatus.BLOCKED, TaskStatus.TODO),
        (TaskStatus.FAILED, TaskStatus.TODO),
        (TaskStatus.TODO, TaskStatus.CANCELLED),
        (TaskStatus.IN_PROGRESS, TaskStatus.CANCELLED),
        (TaskStatus.BLOCKED, TaskStatus.CANCELLED),
        (TaskStatus.FAILED, TaskStatus.CANCELLED),
    }
)

COMPLETION_TARGET: dict[CompletionStatus, TaskStatus] = {
    CompletionStatus.COMPLETED: TaskStatus.DONE,
    CompletionStatus.FAILED: TaskStatus.FAILED,
    CompletionStatus.BLOCKED: TaskStatus.BLOCKED,
}


def can_transition(current: TaskStatus, target: TaskStatus) -> bool:
    return (current, target) in ALLOWED


def ensure_transition(task_id: str, current: TaskStatus, target: TaskStatus) -> None:
    if not can_transition(current, target):
        raise FailedPrecondition(f"task {task_id} is {current.value}; it cannot become {target.value}")


def cancellable_statuses() -> tuple[TaskStatus, ...]:
    return tuple(sorted({src for src, dst in ALLOWED if dst is TaskStatus.CANCELLED}))


def status_reason(task: Task) -> str:
    """Why the task is where it is: the stored reason, or the dependencies it waits on."""
    if task.status_reason:
        return task.status_reason
    if task.status is TaskStatus.BLOCKED and task.unmet_dependency_count:
        count = task.unmet_dependency_count
        return f"waiting on {count} unmet {'dependency' if count == 1 else 'dependencies'}"
    if scheduled(task) and task.not_before is not None:
        return f"scheduled: not before {task.not_before.astimezone(UTC).isoformat()}"
    return ""


def scheduled(task: Task) -> bool:
    """BLOCKED only for its scheduled start (CreateTask.not_before): never started, its
    dependencies met, released at its retry time. (A daemon's BLOCKED report comes after a
    start, so the start time had come.)"""
    return (
        task.status is TaskStatus.BLOCKED
        and task.attempt == 0
        and task.unmet_dependency_count == 0
        and task.not_before is not None
        and task.retry_at is not None
    )
