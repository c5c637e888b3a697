"""GetExecutionStats, and the fold that keeps the rollup it reads small."""

from __future__ import annotations

from datetime import datetime

from workengine.domain import validation
from workengine.domain.model import ExecutionStats
from workengine.domain.statistics import summarize
from workengine.engine.base import Deps, require_orchestrator

# How often the rollup's deltas are folded (a maintenance duty).
FOLD_INTERVAL = 5.0


class Statistics:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def execution_stats(
        self, orchestrator_id: str, start: datetime | None, end: datetime | None
    ) -> ExecutionStats:
        validation.require_id("orchestrator_id", orchestrator_id)
        validation.stats_period(start, end)
        async with self._deps.db.autocommit() as session:
            await require_orchestrator(session, orchestrator_id)
            found = await session.statistics.execution_rollup(orchestrator_id, start, end)
        return summarize(found)

    async def fold(self) -> int:
        """Folds the rollup's pending deltas (readers add them up either way: this keeps
        them few); how many, 0 when another process is folding."""
        async with self._deps.db.transaction() as session:
            return await session.statistics.fold_deltas() or 0
