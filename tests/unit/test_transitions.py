"""The task state machine: what is allowed, what is refused, and how."""

from __future__ import annotations

import itertools

import pytest

from workengine.domain import transitions
from workengine.domain.errors import FailedPrecondition
from workengine.domain.model import CompletionStatus, Task, TaskStatus

S = TaskStatus

# Written out independently of transitions.ALLOWED, from the specification.
EXPECTED_ALLOWED = {
    (S.TODO, S.IN_PROGRESS),
    (S.IN_PROGRESS, S.DONE),
    (S.IN_PROGRESS, S.FAILED),
    (S.IN_PROGRESS, S.BLOCKED),
    (S.BLOCKED, S.TODO),
    (S.FAILED, S.TODO),
    (S.TODO, S.CANCELLED),
    (S.IN_PROGRESS, S.CANCELLED),
    (S.BLOCKED, S.CANCELLED),
    (S.FAILED, S.CANCELLED),
}
EXPECTED_FORBIDDEN = sorted(set(itertools.product(TaskStatus, TaskStatus)) - EXPECTED_ALLOWED)


def test_the_allowed_set_is_exactly_the_specified_one() -> None:
    assert set(transitions.ALLOWED) == EXPECTED_ALLOWED


@pytest.mark.parametrize(("current", "target"), sorted(EXPECTED_ALLOWED))
def test_allowed_transitions_are_allowed(current: TaskStatus, target: TaskStatus) -> None:
    assert transitions.can_transition(current, target)
    transitions.ensure_transition("t1", current, target)  # does not raise


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.DONE, S.TODO),
        (S.DONE, S.IN_PROGRESS),
        (S.DONE, S.FAILED),
        (S.DONE, S.CANCELLED),
        (S.CANCELLED, S.TODO),
        (S.CANCELLED, S.IN_PROGRESS),
        (S.CANCELLED, S.BLOCKED),
        (S.CANCELLED, S.DONE),
        (S.CANCELLED, S.FAILED),
        (S.CANCELLED, S.CANCELLED),
        (S.TODO, S.DONE),
        (S.TODO, S.FAILED),
        (S.TODO, S.BLOCKED),
        (S.BLOCKED, S.IN_PROGRESS),
        (S.BLOCKED, S.DONE),
        (S.FAILED, S.IN_PROGRESS),
        (S.FAILED, S.DONE),
        (S.IN_PROGRESS, S.TODO),
        (S.TODO, S.TODO),
        (S.IN_PROGRESS, S.IN_PROGRESS),
    ],
)
def test_forbidden_transitions_are_refused_with_failed_precondition(
    current: TaskStatus, target: TaskStatus
) -> None:
    assert not transitions.can_transition(current, target)
    with pytest.raises(FailedPrecondition) as raised:
        transitions.ensure_transition("task-42", current, target)
    assert "task-42" in raised.value.message
    assert current.value in raised.value.message
    assert target.value in raised.value.message


@pytest.mark.parametrize(("current", "target"), EXPECTED_FORBIDDEN)
def test_every_unlisted_transition_is_refused(current: TaskStatus, target: TaskStatus) -> None:
    assert not transitions.can_transition(current, target)
    with pytest.raises(FailedPrecondition):
        transitions.ensure_transition("t1", current, target)


@pytest.mark.parametrize("target", list(TaskStatus))
def test_cancelled_and_done_are_terminal(target: TaskStatus) -> None:
    assert set(transitions.TERMINAL) == {S.DONE, S.CANCELLED}
    for terminal in transitions.TERMINAL:
        assert not transitions.can_transition(terminal, target)


def test_completion_target_maps_each_completion_status() -> None:
    assert transitions.COMPLETION_TARGET == {
        CompletionStatus.COMPLETED: S.DONE,
        CompletionStatus.FAILED: S.FAILED,
        CompletionStatus.BLOCKED: S.BLOCKED,
    }
    for target in transitions.COMPLETION_TARGET.values():
        assert transitions.can_transition(S.IN_PROGRESS, target)


def test_cancellable_statuses_are_exactly_todo_in_progress_blocked_failed() -> None:
    cancellable = transitions.cancellable_statuses()
    assert isinstance(cancellable, tuple)
    assert len(cancellable) == 4
    assert set(cancellable) == {S.TODO, S.IN_PROGRESS, S.BLOCKED, S.FAILED}


def test_dependency_met_and_finished_sets() -> None:
    assert set(transitions.DEPENDENCY_MET) == {S.DONE, S.CANCELLED}
    assert set(transitions.FINISHED) == {S.DONE, S.FAILED, S.CANCELLED}


def task(status: TaskStatus, reason: str = "", unmet: int = 0) -> Task:
    return Task(
        id="t1",
        orchestrator_id="ada",
        workspace_id="ws",
        title="t",
        status=status,
        status_reason=reason,
        unmet_dependency_count=unmet,
    )


@pytest.mark.parametrize(
    ("status", "reason", "unmet", "expected"),
    [
        (S.BLOCKED, "needs a key", 3, "needs a key"),
        (S.BLOCKED, "", 1, "waiting on 1 unmet dependency"),
        (S.BLOCKED, "", 3, "waiting on 3 unmet dependencies"),
        (S.BLOCKED, "", 0, ""),
        (S.TODO, "", 2, ""),
        (S.FAILED, "disk full", 0, "disk full"),
    ],
)
def test_status_reason(status: TaskStatus, reason: str, unmet: int, expected: str) -> None:
    assert transitions.status_reason(task(status, reason, unmet)) == expected
