"""retry_on_conflict: a use case the database aborted for a conflict runs again, a bounded number of times."""

from __future__ import annotations

import pytest

from workengine.domain.errors import Aborted, NotFound, TransactionConflict
from workengine.engine import retry
from workengine.engine.retry import retry_on_conflict


class FlakyUseCase:
    def __init__(self, conflicts: int, error: Exception | None = None) -> None:
        self.calls = 0
        self._conflicts = conflicts
        self._error = error

    @retry_on_conflict
    async def run(self, value: str) -> str:
        self.calls += 1
        if self._error is not None:
            raise self._error
        if self.calls <= self._conflicts:
            raise TransactionConflict("deadlock")
        return value


async def test_a_call_without_conflict_runs_once() -> None:
    use_case = FlakyUseCase(conflicts=0)
    assert await use_case.run("done") == "done"
    assert use_case.calls == 1


async def test_conflicts_are_retried_until_the_call_succeeds() -> None:
    use_case = FlakyUseCase(conflicts=retry.ATTEMPTS - 1)
    assert await use_case.run("done") == "done"
    assert use_case.calls == retry.ATTEMPTS


async def test_the_last_conflict_reaches_the_caller_as_aborted() -> None:
    use_case = FlakyUseCase(conflicts=retry.ATTEMPTS)
    with pytest.raises(Aborted):
        await use_case.run("never")
    assert use_case.calls == retry.ATTEMPTS


async def test_other_errors_are_not_retried() -> None:
    use_case = FlakyUseCase(conflicts=0, error=NotFound("task_id", "task x not found"))
    with pytest.raises(NotFound):
        await use_case.run("never")
    assert use_case.calls == 1
