"""What a person watching the engine reads (sql/monitoring.sql): counts per orchestrator, the
running tasks, recent throughput, a task's history and its dependents."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from workengine.domain.model import DependencyState, Task, TaskEvent, TaskStatus
from workengine.domain.statistics import MinuteCount
from workengine.store import rows
from workengine.store.runner import Runner, array_text


class MonitoringStore:
    def __init__(self, runner: Runner) -> None:
        self._run = runner

    async def status_counts(self, orchestrator_ids: Sequence[str]) -> dict[str, dict[TaskStatus, int]]:
        """Each orchestrator's tasks per status now (an orchestrator with none is left out)."""
        found = await self._run.rows("status_counts", ids=array_text(orchestrator_ids))
        counts: dict[str, dict[TaskStatus, int]] = {}
        for row in found:
            counts.setdefault(row["orchestrator_id"], {})[TaskStatus(row["status"])] = int(row["tasks"])
        return counts

    async def running(self, limit: int) -> list[Task]:
        """The running tasks, longest-running first."""
        return [rows.to_task(r) for r in await self._run.rows("running_tasks", limit=limit)]

    async def finished_per_minute(
        self, minutes: int, max_rows: int
    ) -> tuple[datetime, datetime | None, bool, list[MinuteCount]]:
        """(since, how far back the read reached (None: no event at all), whether it stopped at
        `max_rows`, the counts of the minutes that had any)."""
        found = await self._run.rows("finished_per_minute", minutes=minutes, max_rows=max_rows)
        first = found[0]
        counts = [
            MinuteCount(r["minute"], int(r["completed"]), int(r["failed"]))
            for r in found
            if r["minute"] is not None  # the one row of a window without finishes
        ]
        return first["since"], first["oldest"], int(first["scanned"]) >= max_rows, counts

    async def task_events_before(self, task_id: str, before: int, limit: int) -> list[TaskEvent]:
        """The task's committed events before position `before` (0: the newest), newest first."""
        found = await self._run.rows("task_events_before", task_id=task_id, before=before, limit=limit)
        return [rows.to_event(r) for r in found]

    async def dependents(self, task_id: str, limit: int) -> tuple[list[DependencyState], int]:
        """The first `limit` tasks (by id) that depend on the task, and how many do in all."""
        found = await self._run.rows("task_dependents", task_id=task_id, limit=limit)
        total = int(found[0]["total"]) if found else 0
        return [rows.to_dependency_state(r) for r in found], total
