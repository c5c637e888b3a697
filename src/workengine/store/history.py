"""What a task's context recalls of past executions (sql/history.sql): the history and the
samples its estimate rests on, read in one bounded statement."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from workengine.domain import history
from workengine.domain.history import (
    GroupSamples,
    Memory,
    PastExecution,
    PastExecutionSource,
    SimilarityGroup,
)
from workengine.domain.model import AttemptOutcome, Task, TaskStatus
from workengine.store import rows
from workengine.store.runner import Runner, array_text

SOURCES = {
    1: PastExecutionSource.SAME_TASK,
    2: PastExecutionSource.SIMILAR_TASK,
    3: PastExecutionSource.WORKSPACE,
}
GROUPS = {
    1: SimilarityGroup.ORCHESTRATOR_WORKSPACE_TAGS,
    2: SimilarityGroup.ORCHESTRATOR_WORKSPACE,
    3: SimilarityGroup.WORKSPACE,
}


class RunningAttempt(NamedTuple):
    task: Task
    elapsed: timedelta
    estimated: bool


class HistoryStore:
    def __init__(self, runner: Runner) -> None:
        self._run = runner

    async def memory(self, task: Task, history_limit: int) -> Memory:
        """Up to `history_limit` past executions for `task`'s context, best first, and the
        estimate from its similarity groups' most recent attempts (history.WINDOW each) that
        ended before its running attempt started (any, when none runs)."""
        running = task.status is TaskStatus.IN_PROGRESS
        row = await self._run.row(
            "execution_memory",
            task_id=task.id,
            orchestrator_id=task.orchestrator_id,
            workspace_id=task.workspace_id,
            tags=array_text(task.tags),
            history_limit=history_limit,
            window=history.WINDOW,
            before=task.started_at if running else None,
        )
        assert row is not None  # one row, always
        past = tuple(_past_execution(value) for value in row["history"])
        offered = {value["step"]: value for value in row["groups"]}
        groups = [_group_samples(step, offered.get(step)) for step in GROUPS]
        return Memory(past, history.estimate(groups))

    async def running_attempt(self, task_id: str, attempt: int) -> RunningAttempt | None:
        """The task, how long `attempt` has run by the database's clock, and whether its ETAs
        blend an estimate; None unless that attempt is the task's running one."""
        row = await self._run.row("running_attempt", id=task_id, attempt=attempt)
        if row is None:
            return None
        return RunningAttempt(
            rows.to_task(row), timedelta(seconds=float(row["elapsed_seconds"])), row["estimated"]
        )

    async def group_attempts(self, batch: int) -> int:
        """Groups up to `batch` attempts recorded before migration 0008; how many it grouped."""
        return len(await self._run.rows("group_attempts", batch=batch))


def _seconds(value: float | None) -> timedelta | None:
    return timedelta(seconds=value) if value is not None else None


def _group_samples(step: int, value: Mapping[str, Any] | None) -> GroupSamples:
    if value is None:  # the group's window was empty
        return GroupSamples(GROUPS[step], completed=0, finished=0, failed=0)
    return GroupSamples(
        GROUPS[step],
        completed=value["completed"],
        finished=value["finished"],
        failed=value["failed"],
        p50=_seconds(value["p50"]),
        p90=_seconds(value["p90"]),
    )


def _past_execution(value: Mapping[str, Any]) -> PastExecution:
    return PastExecution(
        source=SOURCES[value["source"]],
        task_id=value["task_id"],
        title=value["title"],
        orchestrator_id=value["orchestrator_id"],
        attempt=value["attempt"],
        identity=value["identity"],
        outcome=AttemptOutcome(value["outcome"]),
        started_at=datetime.fromisoformat(value["started_at"]),
        ended_at=datetime.fromisoformat(value["ended_at"]),
        error=value["reason"],
        output_excerpt=value["output_excerpt"],
        lessons=tuple(value["lessons"]),
    )
