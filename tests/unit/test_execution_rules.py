"""Pure rules of the execution flow: completion fingerprints, success rate."""

from __future__ import annotations

import pytest

from workengine.domain.model import Artifact, CompletionStatus, TaskResult
from workengine.domain.statistics import success_rate
from workengine.engine.execution import completion_fingerprint, result_document

RESULT = TaskResult(
    output={"summary": "done", "lines": 3},
    error="",
    artifacts=(Artifact("log", "hello"), Artifact("diff", "+x")),
    metrics={"seconds": 1.5},
)


def fingerprint(
    attempt: int = 1, status: CompletionStatus = CompletionStatus.COMPLETED, result: TaskResult = RESULT
) -> str:
    return completion_fingerprint(attempt, status, result_document(result))


# --- result_document and completion_fingerprint ---------------------------------------------------


def test_result_document_shape() -> None:
    assert result_document(RESULT) == {
        "output": {"summary": "done", "lines": 3},
        "error": "",
        "artifacts": [{"type": "log", "content": "hello"}, {"type": "diff", "content": "+x"}],
        "metrics": {"seconds": 1.5},
    }
    assert result_document(TaskResult()) == {"output": {}, "error": "", "artifacts": [], "metrics": {}}


def test_the_fingerprint_is_stable_for_equal_input() -> None:
    again = TaskResult(
        output={"lines": 3, "summary": "done"},  # same content, other key order
        artifacts=(Artifact("log", "hello"), Artifact("diff", "+x")),
        metrics={"seconds": 1.5},
    )
    assert fingerprint() == fingerprint()
    assert fingerprint() == fingerprint(result=again)
    assert len(fingerprint()) == 64
    assert all(c in "0123456789abcdef" for c in fingerprint())


@pytest.mark.parametrize(
    ("attempt", "status", "result"),
    [
        (2, CompletionStatus.COMPLETED, RESULT),
        (1, CompletionStatus.FAILED, RESULT),
        (1, CompletionStatus.BLOCKED, RESULT),
        (1, CompletionStatus.COMPLETED, TaskResult()),
        (
            1,
            CompletionStatus.COMPLETED,
            TaskResult(
                output={"summary": "done", "lines": 4}, artifacts=RESULT.artifacts, metrics=RESULT.metrics
            ),
        ),
        (
            1,
            CompletionStatus.COMPLETED,
            TaskResult(
                output=RESULT.output, error="oops", artifacts=RESULT.artifacts, metrics=RESULT.metrics
            ),
        ),
        (
            1,
            CompletionStatus.COMPLETED,
            TaskResult(
                output=RESULT.output, artifacts=tuple(reversed(RESULT.artifacts)), metrics=RESULT.metrics
            ),
        ),
        (
            1,
            CompletionStatus.COMPLETED,
            TaskResult(output=RESULT.output, artifacts=RESULT.artifacts, metrics={"seconds": 1.6}),
        ),
    ],
    ids=["attempt", "failed", "blocked", "empty-result", "output", "error", "artifact-order", "metrics"],
)
def test_the_fingerprint_differs_for_different_input(
    attempt: int, status: CompletionStatus, result: TaskResult
) -> None:
    assert fingerprint(attempt, status, result) != fingerprint()


def test_all_fingerprints_of_a_small_grid_are_distinct() -> None:
    prints = {
        fingerprint(attempt, status, result)
        for attempt in (1, 2, 3)
        for status in CompletionStatus
        for result in (RESULT, TaskResult(), TaskResult(error="e"))
    }
    assert len(prints) == 3 * 3 * 3


# --- success_rate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completed", "failed", "rate"),
    [(0, 0, 0.0), (3, 1, 75.0), (1, 3, 25.0), (5, 0, 100.0), (0, 5, 0.0), (1, 2, 100 / 3)],
)
def test_success_rate(completed: int, failed: int, rate: float) -> None:
    assert success_rate(completed, failed) == pytest.approx(rate)


def test_success_rate_is_exact_for_three_of_four() -> None:
    assert success_rate(3, 1) == 75.0
    assert isinstance(success_rate(0, 0), float)
