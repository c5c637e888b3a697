"""What a person watching the engine reads, beyond the RPCs' use cases (the dashboard's): where
the event log stands, counts per orchestrator, the running tasks, recent throughput, and a
task's history and neighbours. Reads only, each bounded by an index and a limit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workengine.domain import validation
from workengine.domain.errors import InvalidArgument
from workengine.domain.model import DependencyState, Task, TaskEvent, TaskStatus
from workengine.domain.statistics import Throughput, per_minute
from workengine.engine.base import Deps, require_task

# The throughput count reads at most this many of the newest events (about 30 ms here): a
# busier hour is counted from its newer part only, and says so (Throughput.counted_since).
THROUGHPUT_MAX_EVENTS = 100_000
MAX_HISTORY_PAGE = 500
MAX_RUNNING = 1_000
MAX_DEPENDENTS = 200


@dataclass(frozen=True)
class TaskLinks:
    """A task's dependencies and the first of its dependents (by id), with their count."""

    dependencies: tuple[DependencyState, ...]
    dependents: tuple[DependencyState, ...]
    dependents_total: int


def _limit(field: str, value: int, maximum: int) -> int:
    if not 1 <= value <= maximum:
        raise InvalidArgument(field, f"must be between 1 and {maximum}")
    return value


class Monitoring:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def position(self) -> int:
        """A position every event at or below which has committed: read before the state a
        view shows, a watch resumed from it misses nothing that state does not show."""
        async with self._deps.db.autocommit() as session:
            return await session.events.head_position()

    async def status_counts(self, orchestrator_ids: Sequence[str]) -> dict[str, dict[TaskStatus, int]]:
        for index, orchestrator_id in enumerate(orchestrator_ids):
            validation.require_id(f"orchestrator_ids[{index}]", orchestrator_id)
        if not orchestrator_ids:
            return {}
        async with self._deps.db.autocommit() as session:
            return await session.monitoring.status_counts(orchestrator_ids)

    async def running(self, limit: int) -> list[Task]:
        """The running tasks of every orchestrator, longest-running first, at most `limit`."""
        limit = _limit("limit", limit, MAX_RUNNING)
        async with self._deps.db.autocommit() as session:
            return await session.monitoring.running(limit)

    async def throughput(self, minutes: int = 60) -> Throughput:
        """Tasks completed and failed per minute over the last `minutes`, cluster-wide."""
        minutes = _limit("minutes", minutes, 24 * 60)
        async with self._deps.db.autocommit() as session:
            since, oldest, capped, found = await session.monitoring.finished_per_minute(
                minutes, THROUGHPUT_MAX_EVENTS
            )
        counted_since = oldest if capped and oldest is not None else since
        return per_minute(since, self._deps.clock(), counted_since, found)

    async def task_history(self, task_id: str, before: int, limit: int) -> tuple[TaskEvent, ...]:
        """The task's events before position `before` (0: the newest), newest first. NOT_FOUND
        for an unknown task; events pruned by the retention are gone."""
        validation.require_id("task_id", task_id)
        if before < 0:
            raise InvalidArgument("before", "must not be negative")
        limit = _limit("limit", limit, MAX_HISTORY_PAGE)
        async with self._deps.db.autocommit() as session:
            events = await session.monitoring.task_events_before(task_id, before, limit)
            if not events:
                await require_task(session, task_id)
        return tuple(events)

    async def links(self, task: Task, dependents_limit: int = 100) -> TaskLinks:
        """What `task` waits on (each dependency's status) and what waits on it."""
        dependents_limit = _limit("dependents_limit", dependents_limit, MAX_DEPENDENTS)
        async with self._deps.db.autocommit() as session:
            dependencies = await session.tasks.dependency_states(task.depends_on) if task.depends_on else []
            dependents, total = await session.monitoring.dependents(task.id, dependents_limit)
        return TaskLinks(tuple(dependencies), tuple(dependents), total)
