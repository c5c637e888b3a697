"""The event log (sql/events.sql): recording events, reading them in commit order below the
watermark, snapshots of a scope, pruning, and the NOTIFY that wakes other processes."""

from __future__ import annotations

from workengine.domain.model import EventKind, EventPage, EventScope, JsonObject, Snapshot, Task, TaskEvent
from workengine.store import rows
from workengine.store.runner import Runner, json_text


class EventStore:
    def __init__(self, runner: Runner) -> None:
        self._run = runner

    async def record(
        self,
        kind: EventKind,
        task: Task,
        *,
        progress: int = 0,
        message: str = "",
        metadata: JsonObject | None = None,
    ) -> TaskEvent:
        """Records an event of `task` as it is after the change, numbered in this transaction."""
        row = await self._run.one(
            "insert_event",
            seq=self._run.take_event_numbers(1),
            task_id=task.id,
            orchestrator_id=task.orchestrator_id,
            workspace_id=task.workspace_id,
            kind=kind.value,
            status=task.status.value,
            attempt=task.attempt,
            # The task's percent right after the change; for PROGRESS, the reported one.
            progress=progress if kind is EventKind.PROGRESS else task.progress,
            message=message,
            metadata=json_text(metadata or {}),
        )
        return TaskEvent(
            cursor=row["position"],
            kind=kind,
            occurred_at=row["occurred_at"],
            task=task,
            attempt=task.attempt,
            progress=progress,
            message=message,
            metadata=metadata or {},
        )

    async def after(self, scope: EventScope, scope_id: str, after: int, limit: int) -> EventPage:
        """Committed events of the scope after position `after`, oldest first, with the log's
        head and horizon."""
        found = await self._run.rows(
            f"{scope.value}_events_after", scope_id=scope_id, after=after, limit=limit
        )
        return rows.to_event_page(found)

    async def tail(self, after: int, limit: int) -> EventPage:
        """Committed events of every scope after position `after`, oldest first."""
        return rows.to_event_page(await self._run.rows("tail_events", after=after, limit=limit))

    async def head_position(self) -> int:
        """Where a tailer starting now begins: everything at or below it is final."""
        return int((await self._run.one("head_position"))["position"])

    async def snapshot(self, scope: EventScope, scope_id: str, limit: int) -> Snapshot:
        """The scope's open tasks (or the one task) and the log position they reflect."""
        return rows.to_snapshot(
            await self._run.rows(f"{scope.value}_snapshot", scope_id=scope_id, limit=limit)
        )

    async def prune(self, retention_seconds: float, batch: int) -> int | None:
        """Deletes up to `batch` of the oldest expired events; None when another process is
        pruning. Needs a transaction: the pruning lock lasts until it ends."""
        if not (await self._run.one("try_lock_pruning"))["locked"]:
            return None
        deleted = await self._run.one("prune_events", retention_seconds=retention_seconds, batch=batch)
        return int(deleted["deleted"])

    async def notify(self, channel: str, payload: str) -> None:
        await self._run.execute("notify_events", channel=channel, payload=payload)
