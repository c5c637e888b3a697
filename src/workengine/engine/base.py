"""What every use case stands on: the database, the event feed and the clock."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from workengine.domain.attempts import DEFAULT_LEASE
from workengine.domain.errors import FailedPrecondition, PermissionDenied, not_found
from workengine.domain.history import Memory
from workengine.domain.model import Orchestrator, OrchestratorStatus, Task, TaskContext
from workengine.engine.feed import EventFeed
from workengine.store.database import Database
from workengine.store.session import Session

AVAILABLE = frozenset({OrchestratorStatus.ONLINE, OrchestratorStatus.BUSY})
RELATED_TASKS_LIMIT = 20


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    db: Database
    feed: EventFeed
    clock: Callable[[], datetime] = utc_now
    # The lease a start grants when neither the start nor the task asks for another.
    default_lease: timedelta = DEFAULT_LEASE


async def require_orchestrator(session: Session, orchestrator_id: str) -> Orchestrator:
    orchestrator = await session.orchestrators.get(orchestrator_id)
    if orchestrator is None:
        raise not_found("orchestrator_id", "orchestrator", orchestrator_id)
    return orchestrator


async def require_task(session: Session, task_id: str) -> Task:
    task = await session.tasks.get(task_id)
    if task is None:
        raise not_found("task_id", "task", task_id)
    return task


def ensure_assigned(task: Task, orchestrator: Orchestrator) -> None:
    if task.orchestrator_id != orchestrator.id:
        raise PermissionDenied(f"task {task.id} is assigned to another orchestrator")


def ensure_available(orchestrator: Orchestrator) -> None:
    if orchestrator.status not in AVAILABLE:
        raise FailedPrecondition(
            f"orchestrator {orchestrator.id} is {orchestrator.status.value}; work is handed out only "
            "while it is ONLINE or BUSY"
        )


async def build_context(
    session: Session,
    orchestrator: Orchestrator,
    task: Task,
    related: Sequence[Task] | None = None,
    memory: Memory | None = None,
) -> TaskContext:
    """`related`: the related tasks when already read (a claim reads them in its statement);
    `memory`: the history and estimate, read by the caller (engine/history.py)."""
    dependencies = await session.tasks.dependency_states(task.depends_on) if task.depends_on else []
    if related is None:
        related = await session.tasks.related(task, RELATED_TASKS_LIMIT)
    return TaskContext(
        task=task,
        orchestrator=orchestrator,
        dependencies=tuple(dependencies),
        related_tasks=tuple(related),
        memory=memory,
    )
