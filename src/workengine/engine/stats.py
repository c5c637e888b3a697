"""Execution statistics, computed by the database."""

from __future__ import annotations

from datetime import datetime

from workengine.domain import validation
from workengine.domain.errors import InvalidArgument
from workengine.domain.model import ExecutionStats, Priority, TaskStatus
from workengine.engine.base import Deps, require_orchestrator


def success_rate(completed: int, failed: int) -> float:
    finished = completed + failed
    return 100.0 * completed / finished if finished else 0.0


class Statistics:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def execution_stats(
        self, orchestrator_id: str, start: datetime | None, end: datetime | None
    ) -> ExecutionStats:
        validation.require_id("orchestrator_id", orchestrator_id)
        if start is not None and end is not None and end <= start:
            raise InvalidArgument("end_time", "must be after start_time")
        async with self._deps.db.transaction() as tx:
            await require_orchestrator(tx, orchestrator_id)
            totals = await tx.execution_totals(orchestrator_id, start, end)
            breakdown = await tx.execution_breakdown(orchestrator_id, start, end)
        by_status = sorted(
            (TaskStatus(r["status"]), r["count"]) for r in breakdown if r["status"] is not None
        )
        by_priority = sorted(
            ((Priority(r["priority"]), r["count"]) for r in breakdown if r["priority"] is not None),
            reverse=True,
        )
        return ExecutionStats(
            total=totals["total"],
            completed=totals["completed"],
            failed=totals["failed"],
            success_rate_percent=success_rate(totals["completed"], totals["failed"]),
            average_seconds=float(totals["average_seconds"] or 0.0),
            p50_seconds=float(totals["p50_seconds"] or 0.0),
            p95_seconds=float(totals["p95_seconds"] or 0.0),
            by_status=tuple(by_status),
            by_priority=tuple(by_priority),
        )
