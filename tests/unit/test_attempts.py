"""The attempt rules: budget, lease expiry outcome, retry budget and report refusals."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from workengine.domain import attempts
from workengine.domain.attempts import Refusal
from workengine.domain.errors import FailedPrecondition
from workengine.domain.model import Task, TaskStatus

RUNNING = Task(
    id="t", orchestrator_id="o", workspace_id="w", title="t", status=TaskStatus.IN_PROGRESS, attempt=2
)


@pytest.mark.parametrize(
    ("expiries", "failures", "max_attempts", "expected"),
    [
        (0, 0, 3, TaskStatus.TODO),
        (1, 0, 3, TaskStatus.TODO),
        (2, 0, 3, TaskStatus.FAILED),
        (1, 1, 3, TaskStatus.FAILED),
        (0, 0, 1, TaskStatus.FAILED),
    ],
)
def test_an_expired_lease_fails_the_task_once_the_budget_is_spent(
    expiries: int, failures: int, max_attempts: int, expected: TaskStatus
) -> None:
    task = replace(RUNNING, lease_expiry_count=expiries, failure_count=failures, max_attempts=max_attempts)
    assert attempts.status_after_lease_expiry(task) is expected


def test_blocked_reports_do_not_spend_the_budget() -> None:
    # Ten starts, all reported BLOCKED: attempt 10, nothing failed.
    task = replace(RUNNING, attempt=10, max_attempts=3)
    assert attempts.status_after_lease_expiry(task) is TaskStatus.TODO


def test_retry_budget_is_raised_never_lowered() -> None:
    failed = replace(RUNNING, status=TaskStatus.FAILED, failure_count=1, max_attempts=3)
    assert attempts.retry_budget(failed, 0) == 3
    assert attempts.retry_budget(failed, 2) == 3
    assert attempts.retry_budget(failed, 5) == 5


def test_retry_is_refused_when_spent_or_not_failed() -> None:
    spent = replace(RUNNING, status=TaskStatus.FAILED, lease_expiry_count=2, failure_count=1, max_attempts=3)
    with pytest.raises(FailedPrecondition, match="all 3"):
        attempts.retry_budget(spent, 3)
    assert attempts.retry_budget(spent, 4) == 4
    with pytest.raises(FailedPrecondition, match="only a FAILED task"):
        attempts.retry_budget(RUNNING, 5)


@pytest.mark.parametrize(
    ("task", "attempt", "reason"),
    [
        (replace(RUNNING, status=TaskStatus.CANCELLED), 2, Refusal.TASK_CANCELLED),
        (RUNNING, 1, Refusal.ATTEMPT_SUPERSEDED),
        (RUNNING, 3, Refusal.ATTEMPT_NOT_STARTED),
        (RUNNING, 2, Refusal.LEASE_EXPIRED),  # running, current, yet the guarded update failed
        (replace(RUNNING, status=TaskStatus.TODO, status_reason="lease expired"), 2, Refusal.LEASE_EXPIRED),
        (replace(RUNNING, status=TaskStatus.FAILED, status_reason="lease expired"), 2, Refusal.LEASE_EXPIRED),
        (replace(RUNNING, status=TaskStatus.DONE), 2, Refusal.TASK_NOT_RUNNING),
        (replace(RUNNING, status=TaskStatus.TODO, attempt=0), 1, Refusal.TASK_NOT_RUNNING),
    ],
)
def test_a_refused_report_says_why(task: Task, attempt: int, reason: Refusal) -> None:
    refusal = attempts.report_refusal(task, attempt, "progress")
    assert refusal.reason == reason


def test_leases_are_whole_seconds_rounded_up() -> None:
    assert attempts.whole_seconds(timedelta(seconds=1)) == 1
    assert attempts.whole_seconds(timedelta(seconds=1.2)) == 2
    assert attempts.whole_seconds(timedelta(milliseconds=1)) == 1
