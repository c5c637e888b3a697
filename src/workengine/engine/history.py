"""What past executions teach a task: the history and estimate of its context, and the ETA of
its running attempt's progress (docs/history.md)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from workengine.domain import eta
from workengine.domain.history import Estimate, Memory
from workengine.domain.model import Task, TaskStatus
from workengine.engine.base import Deps
from workengine.engine.maintenance import drain
from workengine.store.database import Database
from workengine.store.session import Session

# Attempts whose start and estimate a process keeps for the ETA of their progress reports.
EXPECTATIONS_KEPT = 10_000
# Attempts grouped per statement by the grouping duty, and how often it looks for them.
GROUPING_BATCH = 1_000
GROUPING_INTERVAL = 10.0


@dataclass(frozen=True)
class Expected:
    """What a running attempt's ETA rests on: when it started, on this process's monotonic
    clock (so neither a clock step nor a skew between this server and the database moves it),
    and the estimate of similar work that ended before it started (None: its start asked for
    none)."""

    attempt: int
    started: float
    estimate: Estimate | None


class Expectations:
    """The running attempts this process started or heard from recently (least recently used
    forgotten first), so that a progress report's ETA costs no read. A report reaching another
    replica, or one whose attempt was forgotten, reads what it needs once (History.remaining)."""

    def __init__(self, capacity: int = EXPECTATIONS_KEPT) -> None:
        self._capacity = capacity
        self._kept: OrderedDict[str, Expected] = OrderedDict()

    def remember(self, task_id: str, expected: Expected) -> None:
        self._kept[task_id] = expected
        self._kept.move_to_end(task_id)
        while len(self._kept) > self._capacity:
            self._kept.popitem(last=False)

    def recall(self, task_id: str, attempt: int) -> Expected | None:
        expected = self._kept.get(task_id)
        if expected is None or expected.attempt != attempt:
            return None
        self._kept.move_to_end(task_id)
        return expected

    def forget(self, task_id: str) -> None:
        self._kept.pop(task_id, None)


class History:
    def __init__(self, deps: Deps, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._deps = deps
        self._monotonic = monotonic
        self._expectations = Expectations()

    async def recall(self, session: Session, task: Task, history_limit: int) -> Memory | None:
        """The context's history and estimate (None when history_limit is 0). Read outside
        the transaction that starts the task where the caller can: nothing here is locked."""
        if history_limit == 0:
            return None
        return await session.history.memory(task, history_limit)

    def started(self, task: Task, memory: Memory | None) -> None:
        """`task` was just started, and `memory` read for it: its progress reports' ETAs rest
        on the estimate (None: its start asked for none, and they follow its rate alone)."""
        if task.status is TaskStatus.IN_PROGRESS:
            estimate = memory.estimate if memory is not None else None
            self._expectations.remember(task.id, Expected(task.attempt, self._monotonic(), estimate))

    def finished(self, task_id: str) -> None:
        self._expectations.forget(task_id)

    async def remaining(
        self, session: Session, task_id: str, attempt: int, progress: int
    ) -> timedelta | None:
        """How long `attempt` still needs, reporting `progress` now (domain/eta.py); None when
        there is nothing to go on, or the attempt is not the task's running one (the report
        will be refused)."""
        expected = self._expectations.recall(task_id, attempt)
        if expected is None:
            expected = await self._read(session, task_id, attempt)
        if expected is None:
            return None
        elapsed = timedelta(seconds=self._monotonic() - expected.started)
        return eta.remaining(elapsed, progress, expected.estimate)

    async def _read(self, session: Session, task_id: str, attempt: int) -> Expected | None:
        running = await session.history.running_attempt(task_id, attempt)
        if running is None:
            return None
        estimate = (await session.history.memory(running.task, 0)).estimate if running.estimated else None
        expected = Expected(attempt, self._monotonic() - running.elapsed.total_seconds(), estimate)
        self._expectations.remember(task_id, expected)
        return expected


class AttemptGrouping:
    """Groups the attempts recorded before migration 0008 with their similar work, a batch
    per statement (each its own short transaction), so their contexts recall them. Several
    servers share the work (SKIP LOCKED). Once none is left, a pass is one probe of an empty
    index: no attempt is recorded ungrouped again (this release names the grouping, the
    previous release's inserts get it from a trigger)."""

    def __init__(self, db: Database, batch: int = GROUPING_BATCH) -> None:
        self._db = db
        self._batch = batch

    async def run(self) -> int:
        return await drain(self._db, lambda session: session.history.group_attempts(self._batch), self._batch)
