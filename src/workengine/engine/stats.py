"""Execution statistics, read from the rollup the database keeps (migration 0005).

Counts and the average completion time are exact. The percentiles are percentile_cont over
completion times rounded into log-spaced buckets (16 per doubling from 1 ms): each time is
taken as its bucket's geometric middle, so p50 and p95 are within 2.2 % of the exact value
(times under 1 ms count as 0.5 ms).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from workengine.domain import validation
from workengine.domain.errors import InvalidArgument, Unavailable
from workengine.domain.model import ExecutionStats, Priority, TaskStatus
from workengine.engine import background
from workengine.engine.base import Deps, require_orchestrator

log = logging.getLogger(__name__)

BUCKETS_PER_DOUBLING = 16
SMALLEST_BUCKETED_SECONDS = 0.001
# Largest relative error of a bucket's representative time: half a bucket, in log scale.
PERCENTILE_PRECISION = 2 ** (1 / (2 * BUCKETS_PER_DOUBLING)) - 1
FOLD_INTERVAL = 5.0


def success_rate(completed: int, failed: int) -> float:
    finished = completed + failed
    return 100.0 * completed / finished if finished else 0.0


def bucket_seconds(bucket: int) -> float:
    """The time that stands for every time in the bucket (see execution_contributions)."""
    if bucket <= 0:
        return SMALLEST_BUCKETED_SECONDS / 2
    return SMALLEST_BUCKETED_SECONDS * 2 ** ((bucket - 0.5) / BUCKETS_PER_DOUBLING)


def histogram_percentile(histogram: Iterable[tuple[int, int]], fraction: float) -> float:
    """percentile_cont(fraction) of the times in (bucket, count) pairs; 0 when empty."""
    counts = sorted((bucket, count) for bucket, count in histogram if count > 0)
    total = sum(count for _, count in counts)
    if not total:
        return 0.0
    rank = fraction * (total - 1)
    lower, upper = math.floor(rank), math.ceil(rank)

    def value(index: int) -> float:
        seen = 0
        for bucket, count in counts:
            seen += count
            if index < seen:
                return bucket_seconds(bucket)
        raise AssertionError("rank beyond the histogram")

    low = value(lower)
    return low + (rank - lower) * (value(upper) - low)


def summarize(found: Iterable[Mapping[str, Any]]) -> ExecutionStats:
    """ExecutionStats from execution_rollup's rows."""
    by_status: dict[TaskStatus, int] = {}
    by_priority: dict[Priority, int] = {}
    histogram: dict[int, int] = {}
    seconds = 0.0
    for row in found:
        count = int(row["tasks"])
        if row["bucket"] < 0:
            status, priority = TaskStatus(row["status"]), Priority(row["priority"])
            by_status[status] = by_status.get(status, 0) + count
            by_priority[priority] = by_priority.get(priority, 0) + count
        else:
            histogram[row["bucket"]] = count
            seconds += row["seconds"]
    completed = by_status.get(TaskStatus.DONE, 0)
    failed = by_status.get(TaskStatus.FAILED, 0)
    timed = sum(histogram.values())
    return ExecutionStats(
        total=sum(by_status.values()),
        completed=completed,
        failed=failed,
        success_rate_percent=success_rate(completed, failed),
        average_seconds=seconds / timed if timed else 0.0,
        p50_seconds=histogram_percentile(histogram.items(), 0.5),
        p95_seconds=histogram_percentile(histogram.items(), 0.95),
        by_status=tuple(sorted((s, n) for s, n in by_status.items() if n)),
        by_priority=tuple(sorted(((p, n) for p, n in by_priority.items() if n), reverse=True)),
    )


class Statistics:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._folding: asyncio.Task[None] | None = None

    async def execution_stats(
        self, orchestrator_id: str, start: datetime | None, end: datetime | None
    ) -> ExecutionStats:
        validation.require_id("orchestrator_id", orchestrator_id)
        if start is not None and end is not None and end <= start:
            raise InvalidArgument("end_time", "must be after start_time")
        async with self._deps.db.read() as tx:
            await require_orchestrator(tx, orchestrator_id)
            found = await tx.execution_rollup(orchestrator_id, start, end)
        return summarize(found)

    async def fold(self) -> int:
        """Folds the rollup's pending deltas (readers add them up either way: this keeps
        them few); how many, 0 when another process is folding."""
        async with self._deps.db.transaction() as tx:
            return await tx.fold_execution_deltas() or 0

    def start(self, interval: float = FOLD_INTERVAL) -> None:
        if self._folding is None:
            self._folding = asyncio.get_running_loop().create_task(self._fold_loop(interval))

    async def _fold_loop(self, interval: float) -> None:
        while True:
            try:
                await self.fold()
            except Unavailable:
                log.warning("statistics fold skipped: database unavailable")
            except Exception:
                log.exception("statistics fold failed")
            await asyncio.sleep(interval)

    async def close(self) -> None:
        if self._folding is not None:
            folding, self._folding = self._folding, None
            await background.stop([folding], "statistics")
