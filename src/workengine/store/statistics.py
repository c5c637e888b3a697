"""Execution statistics (sql/statistics.sql): the rollup GetExecutionStats reads, and the fold."""

from __future__ import annotations

from datetime import datetime

from workengine.domain.statistics import RollupCount
from workengine.store import rows
from workengine.store.runner import Runner


class StatisticsStore:
    def __init__(self, runner: Runner) -> None:
        self._run = runner

    async def execution_rollup(
        self, orchestrator_id: str, start: datetime | None, end: datetime | None
    ) -> list[RollupCount]:
        """The counts of the orchestrator's tasks created in [start, end)."""
        found = await self._run.rows(
            "execution_rollup", orchestrator_id=orchestrator_id, start_time=start, end_time=end
        )
        return [rows.to_rollup_count(r) for r in found]

    async def fold_deltas(self) -> int | None:
        """Folds the committed rollup deltas; how many, or None when another process is folding.
        Needs a transaction: the folding lock lasts until it ends."""
        if not (await self._run.one("try_lock_folding"))["locked"]:
            return None
        return int((await self._run.one("fold_execution_deltas"))["deltas"])
