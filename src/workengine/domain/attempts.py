"""Attempt rules: the failure budget, the retry budget, and why a report of an attempt is
refused. The reaper's SQL (reap_expired_leases) applies the same budget when a lease expires."""

from __future__ import annotations

import enum
import math
from datetime import timedelta

from workengine.domain.errors import FailedPrecondition
from workengine.domain.model import Task, TaskStatus

DEFAULT_MAX_ATTEMPTS = 3
MAX_ATTEMPTS_LIMIT = 100
MIN_LEASE = timedelta(seconds=1)
MAX_LEASE = timedelta(hours=24)
DEFAULT_LEASE = timedelta(minutes=5)
MIN_RETRY_AFTER = timedelta(seconds=1)
MAX_RETRY_AFTER = timedelta(days=30)
LEASE_EXPIRED_REASON = "lease expired"
# The message of the UNBLOCKED event of a BLOCKED task whose retry time came.
RETRY_TIME_REACHED = "retry time reached"


class Refusal(enum.StrEnum):
    """Why a progress, heartbeat or completion report was refused: the daemon should stop."""

    TASK_CANCELLED = "TASK_CANCELLED"
    TASK_NOT_RUNNING = "TASK_NOT_RUNNING"
    ATTEMPT_SUPERSEDED = "ATTEMPT_SUPERSEDED"
    ATTEMPT_NOT_STARTED = "ATTEMPT_NOT_STARTED"
    LEASE_EXPIRED = "LEASE_EXPIRED"
    COMPLETION_CONFLICT = "COMPLETION_CONFLICT"


def whole_seconds(value: timedelta) -> int:
    """Leases are kept in whole seconds, rounded up."""
    return max(1, math.ceil(value.total_seconds()))


def failed_attempts(task: Task) -> int:
    """Attempts that count against max_attempts: lease expiries and reported failures.
    A BLOCKED report is not a failure."""
    return task.lease_expiry_count + task.failure_count


def retry_budget(task: Task, requested_max_attempts: int) -> int:
    """The max_attempts a RetryTask leaves the task with: raised to the request, never
    lowered. Refuses when the task is not FAILED or even that budget is used up."""
    if task.status is not TaskStatus.FAILED:
        raise FailedPrecondition(
            f"task {task.id} is {task.status.value}; only a FAILED task can be retried",
            Refusal.TASK_NOT_RUNNING if task.status is not TaskStatus.CANCELLED else Refusal.TASK_CANCELLED,
        )
    budget = max(task.max_attempts, requested_max_attempts)
    if failed_attempts(task) >= budget:
        raise FailedPrecondition(
            f"task {task.id} has used all {budget} of its attempts "
            f"({task.lease_expiry_count} lease expiries, {task.failure_count} failures); "
            "raise max_attempts to retry it"
        )
    return budget


def report_refusal(task: Task, attempt: int, what: str) -> FailedPrecondition:
    """The error for a report (`what`: progress, heartbeat, completion) that the task's
    current state did not accept. Called after the guarded update matched no row, so a
    current, running attempt can only have lost its lease."""
    if task.status is TaskStatus.CANCELLED:
        return FailedPrecondition(f"task {task.id} was cancelled; stop working on it", Refusal.TASK_CANCELLED)
    if attempt < task.attempt:
        return FailedPrecondition(
            f"attempt {attempt} of task {task.id} is superseded by attempt {task.attempt}",
            Refusal.ATTEMPT_SUPERSEDED,
        )
    if task.status is not TaskStatus.IN_PROGRESS:
        expired = attempt == task.attempt and task.status_reason == LEASE_EXPIRED_REASON
        reason = Refusal.LEASE_EXPIRED if expired else Refusal.TASK_NOT_RUNNING
        return FailedPrecondition(
            f"task {task.id} is {task.status.value}; {what} is accepted only while IN_PROGRESS"
            + (" (its lease expired)" if reason is Refusal.LEASE_EXPIRED else ""),
            reason,
        )
    if attempt > task.attempt:
        return FailedPrecondition(
            f"attempt {attempt} of task {task.id} was never started (current attempt is {task.attempt})",
            Refusal.ATTEMPT_NOT_STARTED,
        )
    return FailedPrecondition(
        f"the lease of attempt {attempt} of task {task.id} expired; stop working on it",
        Refusal.LEASE_EXPIRED,
    )
