"""The attempt rules: retry budget and report refusals (the lease expiry outcome is the
reaper's SQL, tested in tests/integration/test_leases.py)."""

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
