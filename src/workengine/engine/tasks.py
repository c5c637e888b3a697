"""Create, read, list and cancel tasks."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from datetime import timedelta

from workengine.domain import attempts, transitions, validation
from workengine.domain.errors import AlreadyExists, FailedPrecondition, InvalidArgument, not_found
from workengine.domain.model import (
    EventKind,
    NewTask,
    Page,
    Task,
    TaskAttempt,
    TaskEvent,
    TaskFilter,
    TaskStatus,
)
from workengine.domain.trace_context import TraceContext
from workengine.engine import paging
from workengine.engine.base import Deps, require_orchestrator, require_task
from workengine.engine.retry import retry_on_conflict
from workengine.store.session import Session

# Fields added after idempotency keys were: left out of a request's fingerprint while unset, so
# the retry of a request made before them is still the same request.
LATER_FIELDS = ("not_before",)


def request_fingerprint(new: NewTask) -> str:
    """Identifies a CreateTask request, to tell a retry from a different request."""
    fields = asdict(new)
    for name in LATER_FIELDS:
        if fields[name] is None:
            del fields[name]
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Tasks:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @retry_on_conflict
    async def create(self, new: NewTask, trace_context: TraceContext | None = None) -> Task:
        """With an idempotency key, the same request again returns the task the first one
        created; a different request with that key is refused. `trace_context` (the caller's)
        is stored with the task but is no part of the request: a retry from another trace is
        the same request, and gets the task with the first call's trace context."""
        fingerprint = request_fingerprint(new)  # before an id is generated: a retry has none either
        if not new.id:
            new = replace(new, id=validation.new_id())
        validation.validate_new_task(new)
        async with self._deps.db.transaction() as session:
            await require_orchestrator(session, new.orchestrator_id)
            statuses = await session.tasks.lock_dependencies(new.depends_on) if new.depends_on else {}
            missing = [d for d in new.depends_on if d not in statuses]
            if missing:
                raise not_found("depends_on", "task", missing[0])
            unmet = sum(1 for s in statuses.values() if s not in transitions.DEPENDENCY_MET)
            status = TaskStatus.BLOCKED if unmet else TaskStatus.TODO
            task = await session.tasks.insert(new, status, unmet, fingerprint, trace_context)
            if task is None:
                return await self._created_before(session, new, fingerprint)
            event = await session.events.record(EventKind.CREATED, task)
        self._deps.feed.committed([event])
        return task

    @staticmethod
    async def _created_before(session: Session, new: NewTask, fingerprint: str) -> Task:
        if new.idempotency_key:
            found = await session.tasks.by_idempotency_key(new.orchestrator_id, new.idempotency_key)
            if found is not None:
                task, first_fingerprint = found
                if first_fingerprint != fingerprint:
                    raise InvalidArgument(
                        "idempotency_key", "was already used for a different request to create a task"
                    )
                return task
        raise AlreadyExists(f"task {new.id} already exists")

    async def get_with_attempts(self, task_id: str) -> tuple[Task, tuple[TaskAttempt, ...]]:
        """The task and every attempt of it, first to last."""
        validation.require_id("task_id", task_id)
        async with self._deps.db.autocommit() as session:
            found = await session.tasks.get_with_attempts(task_id)
        if found is None:
            raise not_found("task_id", "task", task_id)
        return found

    @retry_on_conflict
    async def retry(self, task_id: str, max_attempts: int) -> Task:
        """FAILED -> TODO, while failed attempts stay below max_attempts (raised to the
        request's, when given)."""
        validation.require_id("task_id", task_id)
        validation.max_attempts(max_attempts, optional=True)
        async with self._deps.db.transaction() as session:
            task = await session.tasks.lock(task_id)
            if task is None:
                raise not_found("task_id", "task", task_id)
            budget = attempts.retry_budget(task, max_attempts)
            retried = await session.tasks.retry(task_id, budget)
            assert retried is not None  # locked and FAILED
            event = await session.events.record(EventKind.RETRIED, retried)
        self._deps.feed.committed([event])
        return retried

    async def list_page(self, where: TaskFilter, page_size: int, page_token: str) -> Page[Task]:
        validation.optional_id("orchestrator_id", where.orchestrator_id)
        validation.optional_id("workspace_id", where.workspace_id)
        validation.text("tag", where.tag, validation.MAX_TAG_LENGTH)
        limit = validation.page_size(page_size)
        after = paging.decode(page_token, where)
        async with self._deps.db.autocommit() as session:
            found = await session.tasks.page(where, after, limit + 1)
        return paging.page_of(found, limit, where)

    @retry_on_conflict
    async def cancel(self, task_id: str, reason: str) -> tuple[Task, list[str]]:
        validation.require_id("task_id", task_id)
        validation.text("reason", reason, validation.MAX_MESSAGE)
        async with self._deps.db.transaction() as session:
            cancelled = await session.tasks.cancel(task_id, reason, transitions.cancellable_statuses())
            if cancelled is None:
                current = await require_task(session, task_id)
                raise FailedPrecondition(f"task {task_id} is {current.status.value}; it cannot be cancelled")
            task = cancelled.task
            event = await session.events.record(EventKind.CANCELLED, task, message=reason)
            if cancelled.was_running and task.started_at is not None:
                event = replace(event, ran_for=max(event.occurred_at - task.started_at, timedelta(0)))
            events: list[TaskEvent] = [event]
            unblocked = await session.tasks.release_dependents(task_id)
        self._deps.feed.committed(events + unblocked)
        return task, [e.task.id for e in unblocked]
