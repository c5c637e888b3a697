"""Execution statistics from the rollup the database keeps (migration 0005).

Counts and the average completion time are exact. The percentiles are percentile_cont over
completion times rounded into log-spaced buckets (16 per doubling from 1 ms): each time is
taken as its bucket's geometric middle, so p50 and p95 are within 2.2 % of the exact value
(times under 1 ms count as 0.5 ms).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from workengine.domain.model import ExecutionStats, Priority, TaskStatus


class RollupCount(NamedTuple):
    """One row of the rollup: bucket -1 counts the tasks of a (status, priority); a bucket >= 0
    counts the DONE tasks whose completion time falls in it, with their sum in `seconds`."""

    status: str
    priority: int
    bucket: int
    tasks: int
    seconds: float


BUCKETS_PER_DOUBLING = 16
SMALLEST_BUCKETED_SECONDS = 0.001
# Largest relative error of a bucket's representative time: half a bucket, in log scale.
PERCENTILE_PRECISION = 2 ** (1 / (2 * BUCKETS_PER_DOUBLING)) - 1


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


def histogram_by_doubling(histogram: Mapping[int, int]) -> tuple[tuple[float, int], ...]:
    """The rollup's buckets (16 per doubling) gathered into one bar per doubling: (the bar's upper
    bound in seconds, tasks), from the first non-empty bar to the last, empty ones between kept
    so that a chart's x axis stays a time scale. Bar 0 holds the times under 1 ms."""
    bars: dict[int, int] = {}
    for bucket, count in histogram.items():
        if count > 0:
            bar = 0 if bucket <= 0 else (bucket - 1) // BUCKETS_PER_DOUBLING + 1
            bars[bar] = bars.get(bar, 0) + count
    if not bars:
        return ()
    return tuple(
        (SMALLEST_BUCKETED_SECONDS * 2**bar, bars.get(bar, 0)) for bar in range(min(bars), max(bars) + 1)
    )


def summarize(found: Iterable[RollupCount]) -> ExecutionStats:
    """ExecutionStats from the rollup's counts."""
    by_status: dict[TaskStatus, int] = {}
    by_priority: dict[Priority, int] = {}
    histogram: dict[int, int] = {}
    seconds = 0.0
    for row in found:
        if row.bucket < 0:
            status, priority = TaskStatus(row.status), Priority(row.priority)
            by_status[status] = by_status.get(status, 0) + row.tasks
            by_priority[priority] = by_priority.get(priority, 0) + row.tasks
        else:
            histogram[row.bucket] = row.tasks
            seconds += row.seconds
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
        completion_histogram=histogram_by_doubling(histogram),
    )


@dataclass(frozen=True)
class MinuteCount:
    """Tasks that finished in the minute starting at `minute`."""

    minute: datetime
    completed: int
    failed: int


@dataclass(frozen=True)
class Throughput:
    """Finished tasks per minute from `since` to now, every minute present (zeros too).
    `counted_since` is where the count starts: `since`, unless the window held more events than
    a read may visit; minutes before it are unknown, not zero."""

    since: datetime
    counted_since: datetime
    minutes: tuple[MinuteCount, ...]


def per_minute(
    since: datetime, now: datetime, counted_since: datetime, found: Iterable[MinuteCount]
) -> Throughput:
    """A Throughput with a row for every minute from `since` to `now`."""
    counts = {row.minute: row for row in found}
    first = since.replace(second=0, microsecond=0)
    minutes = []
    minute = first
    while minute <= now:
        minutes.append(counts.get(minute, MinuteCount(minute, 0, 0)))
        minute += timedelta(minutes=1)
    return Throughput(since, max(since, counted_since), tuple(minutes))
