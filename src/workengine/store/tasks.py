"""Tasks (sql/tasks.sql): creation with dependencies, reads and listings, selection, cancel and
retry, and releasing dependents when a task finishes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from workengine.domain.attempts import whole_seconds
from workengine.domain.model import (
    DependencyState,
    EventKind,
    NewTask,
    ScoredTask,
    SelectionCriteria,
    Task,
    TaskAttempt,
    TaskEvent,
    TaskFilter,
    TaskStatus,
)
from workengine.domain.scoring import PRIORITY_WEIGHT, Segment
from workengine.domain.trace_context import TraceContext
from workengine.store import rows
from workengine.store.runner import BEGINNING, Runner, array_text, json_text


def selection_params(
    orchestrator_id: str, segments: Sequence[Segment], criteria: SelectionCriteria
) -> dict[str, Any]:
    """The binds of select_next_task, and of claim_next_task with a lease and an identity."""
    return {
        "orchestrator_id": orchestrator_id,
        "required_tags": array_text(criteria.required_tags),
        "excluded_ids": array_text(criteria.exclude_task_ids),
        "priorities": array_text(int(s.priority) for s in segments),
        "weights": array_text(PRIORITY_WEIGHT[s.priority] for s in segments),
        "boosts": array_text(s.boost for s in segments),
        "due_froms": array_text(s.due_from for s in segments),
        "due_tos": array_text(s.due_to for s in segments),
    }


class TaskStore:
    def __init__(self, runner: Runner) -> None:
        self._run = runner

    async def lock_dependencies(self, ids: Sequence[str]) -> dict[str, TaskStatus]:
        """The status of each existing task of `ids`, locked against a concurrent finish."""
        found = await self._run.rows("lock_dependencies", ids=list(ids))
        return {r["id"]: TaskStatus(r["status"]) for r in found}

    async def insert(
        self,
        new: NewTask,
        status: TaskStatus,
        unmet_dependencies: int,
        request_fingerprint: str,
        trace_context: TraceContext | None = None,
    ) -> Task | None:
        """Inserts the task and its dependency edges; None when the id, or the orchestrator's
        idempotency key, is taken."""
        row = await self._run.row(
            "insert_task",
            id=new.id,
            orchestrator_id=new.orchestrator_id,
            workspace_id=new.workspace_id,
            channel_id=new.channel_id,
            title=new.title,
            description=new.description,
            priority=int(new.priority),
            status=status.value,
            due_at=new.due_at,
            tags=list(new.tags),
            depends_on=list(new.depends_on),
            unmet_dependency_count=unmet_dependencies,
            metadata=json_text(new.metadata),
            max_attempts=new.max_attempts,
            lease_seconds=whole_seconds(new.lease) if new.lease is not None else None,
            idempotency_key=new.idempotency_key or None,
            request_fingerprint=request_fingerprint,
            not_before=new.not_before,
            trace_context=json_text(trace_context.as_json()) if trace_context is not None else None,
        )
        if row is None:
            return None
        if new.depends_on:
            await self._run.execute("insert_dependencies", task_id=new.id, ids=list(new.depends_on))
        return rows.to_task(row)

    async def get(self, task_id: str) -> Task | None:
        row = await self._run.row("get_task", id=task_id)
        return rows.to_task(row) if row else None

    async def get_with_fingerprint(self, task_id: str) -> tuple[Task, str | None] | None:
        """The task and the fingerprint of the completion it accepted, if any."""
        row = await self._run.row("get_task", id=task_id)
        return (rows.to_task(row), row["completion_fingerprint"]) if row else None

    async def get_with_attempts(self, task_id: str) -> tuple[Task, tuple[TaskAttempt, ...]] | None:
        row = await self._run.row("get_task_with_attempts", id=task_id)
        return (rows.to_task(row), rows.to_attempts(row["attempts"])) if row else None

    async def by_idempotency_key(self, orchestrator_id: str, key: str) -> tuple[Task, str] | None:
        """The task created with this key, and the fingerprint of the request that created it."""
        row = await self._run.row(
            "get_task_by_idempotency_key", orchestrator_id=orchestrator_id, idempotency_key=key
        )
        return (rows.to_task(row), row["request_fingerprint"]) if row else None

    async def owner(self, task_id: str) -> str | None:
        row = await self._run.row("task_owner", id=task_id)
        return str(row["orchestrator_id"]) if row else None

    async def lock(self, task_id: str) -> Task | None:
        row = await self._run.row("lock_task", id=task_id)
        return rows.to_task(row) if row else None

    async def page(self, where: TaskFilter, after: tuple[datetime, str] | None, limit: int) -> list[Task]:
        after_created_at, after_id = after or BEGINNING
        found = await self._run.rows(
            "list_tasks",
            orchestrator_id=where.orchestrator_id or None,
            workspace_id=where.workspace_id or None,
            statuses=[s.value for s in where.statuses] or None,
            tag=where.tag or None,
            after_created_at=after_created_at,
            after_id=after_id,
            limit=limit,
        )
        return [rows.to_task(r) for r in found]

    async def dependency_states(self, ids: Sequence[str]) -> list[DependencyState]:
        found = await self._run.rows("dependency_states", ids=list(ids))
        return [rows.to_dependency_state(r) for r in found]

    async def related(self, task: Task, limit: int) -> list[Task]:
        """The newest other unfinished tasks of the task's workspace."""
        found = await self._run.rows(
            "related_tasks", workspace_id=task.workspace_id, id=task.id, related_limit=limit
        )
        return [rows.to_task(r) for r in found]

    async def select_next(
        self, orchestrator_id: str, segments: Sequence[Segment], criteria: SelectionCriteria
    ) -> ScoredTask | None:
        """The best ready task by score and tie-breaks; changes nothing."""
        if not segments:
            return None
        row = await self._run.row("select_next_task", **selection_params(orchestrator_id, segments, criteria))
        return ScoredTask(rows.to_task(row), row["score"]) if row else None

    async def retry(self, task_id: str, max_attempts: int) -> Task | None:
        """FAILED -> TODO with this attempt budget; None when the task is not FAILED."""
        row = await self._run.row("retry_task", id=task_id, max_attempts=max_attempts)
        return rows.to_task(row) if row else None

    async def cancel(
        self, task_id: str, reason: str, from_statuses: Sequence[TaskStatus]
    ) -> rows.Cancelled | None:
        """CANCELLED, from one of `from_statuses`; None when the task was in none of them."""
        row = await self._run.row(
            "cancel_task", id=task_id, reason=reason, from_statuses=[s.value for s in from_statuses]
        )
        if not row:
            return None
        return rows.Cancelled(rows.to_task(row), row["previous_status"] == TaskStatus.IN_PROGRESS.value)

    async def release_dependents(self, task_id: str) -> list[TaskEvent]:
        """Counts one more met dependency for each dependent; returns UNBLOCKED events. Call it
        right after recording the event that finished the task, in the same transaction."""
        found = await self._run.rows("release_dependents", **self.release_params(task_id))
        return self._run.moved(EventKind.UNBLOCKED, found)

    def release_params(self, task_id: str) -> dict[str, Any]:
        """release_dependents' binds: the finish is the last event recorded so far."""
        finished = {"id": task_id, "finished_seq": self._run.events_recorded}
        return finished | self._run.moves_params(EventKind.UNBLOCKED)
