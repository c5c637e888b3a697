"""Create, read, list and cancel tasks."""

from __future__ import annotations

from dataclasses import replace

from workengine.domain import transitions, validation
from workengine.domain.errors import AlreadyExists, FailedPrecondition, NotFound
from workengine.domain.model import EventKind, NewTask, Page, Task, TaskEvent, TaskFilter, TaskStatus
from workengine.engine import paging
from workengine.engine.base import Deps, require_orchestrator, require_task
from workengine.engine.retry import retry_on_conflict


class Tasks:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @retry_on_conflict
    async def create(self, new: NewTask) -> Task:
        if not new.id:
            new = replace(new, id=validation.new_id())
        validation.validate_new_task(new)
        async with self._deps.db.transaction() as tx:
            await require_orchestrator(tx, new.orchestrator_id)
            statuses = await tx.lock_dependencies(new.depends_on) if new.depends_on else {}
            missing = [d for d in new.depends_on if d not in statuses]
            if missing:
                raise NotFound("depends_on", f"task {missing[0]} not found")
            unmet = sum(1 for s in statuses.values() if s not in transitions.DEPENDENCY_MET)
            status = TaskStatus.BLOCKED if unmet else TaskStatus.TODO
            task = await tx.insert_task(new, status, unmet)
            if task is None:
                raise AlreadyExists(f"task {new.id} already exists")
            event = await tx.record_event(EventKind.CREATED, task)
        self._deps.feed.committed([event])
        return task

    async def get(self, task_id: str) -> Task:
        validation.require_id("task_id", task_id)
        async with self._deps.db.read() as tx:
            return await require_task(tx, task_id)

    async def list_page(self, where: TaskFilter, page_size: int, page_token: str) -> Page[Task]:
        validation.optional_id("orchestrator_id", where.orchestrator_id)
        validation.optional_id("workspace_id", where.workspace_id)
        validation.text("tag", where.tag, validation.MAX_TAG_LENGTH)
        limit = validation.page_size(page_size)
        after = paging.decode(page_token, where)
        async with self._deps.db.read() as tx:
            found = await tx.list_tasks(where, after, limit + 1)
        token = ""
        if len(found) > limit:
            last = found[limit - 1]
            assert last.created_at is not None
            token = paging.encode(last.created_at, last.id, where)
        return Page(tuple(found[:limit]), token)

    @retry_on_conflict
    async def cancel(self, task_id: str, reason: str) -> tuple[Task, list[str]]:
        validation.require_id("task_id", task_id)
        validation.text("reason", reason, validation.MAX_MESSAGE)
        async with self._deps.db.transaction() as tx:
            task = await tx.cancel_task(task_id, reason, transitions.cancellable_statuses())
            if task is None:
                current = await require_task(tx, task_id)
                raise FailedPrecondition(f"task {task_id} is {current.status.value}; it cannot be cancelled")
            events: list[TaskEvent] = [await tx.record_event(EventKind.CANCELLED, task, message=reason)]
            unblocked = await tx.release_dependents(task_id)
        self._deps.feed.committed(events + unblocked)
        return task, [e.task.id for e in unblocked]
