"""Every database operation the engine needs, each one statement from sql/queries.sql."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from workengine.domain.access import StoredToken
from workengine.domain.model import (
    EventKind,
    EventPage,
    EventScope,
    JsonObject,
    NewOrchestrator,
    NewTask,
    Orchestrator,
    OrchestratorStatus,
    ScoredTask,
    SelectionCriteria,
    Snapshot,
    Task,
    TaskEvent,
    TaskFilter,
    TaskStatus,
)
from workengine.domain.scoring import PRIORITY_WEIGHT, Segment
from workengine.store import rows
from workengine.store.queries import query

# An event's position keeps its transaction's id above these low bits (see queries.sql).
EVENTS_PER_TRANSACTION = 1 << 20

# Keyset pagination starts before every row.
BEGINNING = (datetime(1, 1, 1, tzinfo=UTC), "")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _segment_params(segments: Sequence[Segment]) -> dict[str, list[Any]]:
    return {
        "priorities": [int(s.priority) for s in segments],
        "weights": [PRIORITY_WEIGHT[s.priority] for s in segments],
        "boosts": [s.boost for s in segments],
        "due_froms": [s.due_from for s in segments],
        "due_tos": [s.due_to for s in segments],
    }


class Transaction:
    """Bound to one open transaction; the engine composes these calls into a use case."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._event_seq = 0

    async def _rows(self, name: str, **params: Any) -> Sequence[RowMapping]:
        result = await self._connection.execute(query(name), params)
        return result.mappings().all()

    async def _row(self, name: str, **params: Any) -> RowMapping | None:
        result = await self._connection.execute(query(name), params)
        return result.mappings().first()

    # Orchestrators

    async def insert_orchestrator(self, new: NewOrchestrator) -> Orchestrator | None:
        """Returns None when the id is taken."""
        row = await self._row(
            "insert_orchestrator",
            id=new.id,
            display_name=new.display_name,
            role=new.role,
            discipline=new.discipline,
            capabilities=list(new.capabilities),
            daemon_endpoint=new.daemon_endpoint,
            status=new.status.value,
            timezone=new.timezone,
            charter=_json(
                {
                    "mission": new.charter.mission,
                    "vision": new.charter.vision,
                    "values": list(new.charter.values),
                    "expertise": list(new.charter.expertise),
                }
            ),
        )
        return rows.to_orchestrator(row) if row else None

    async def get_orchestrator(self, orchestrator_id: str) -> Orchestrator | None:
        row = await self._row("get_orchestrator", id=orchestrator_id)
        return rows.to_orchestrator(row) if row else None

    async def list_orchestrators(
        self, status: OrchestratorStatus | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Orchestrator]:
        after_created_at, after_id = after or BEGINNING
        found = await self._rows(
            "list_orchestrators",
            status=status.value if status else None,
            after_created_at=after_created_at,
            after_id=after_id,
            limit=limit,
        )
        return [rows.to_orchestrator(r) for r in found]

    async def set_orchestrator_status(
        self, orchestrator_id: str, status: OrchestratorStatus
    ) -> Orchestrator | None:
        row = await self._row("set_orchestrator_status", id=orchestrator_id, status=status.value)
        return rows.to_orchestrator(row) if row else None

    # Tasks

    async def lock_dependencies(self, ids: Sequence[str]) -> dict[str, TaskStatus]:
        found = await self._rows("lock_dependencies", ids=list(ids))
        return {r["id"]: TaskStatus(r["status"]) for r in found}

    async def insert_task(self, new: NewTask, status: TaskStatus, unmet_dependencies: int) -> Task | None:
        """Inserts the task and its dependency edges; returns None when the id is taken."""
        row = await self._row(
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
            metadata=_json(new.metadata),
        )
        if row is None:
            return None
        if new.depends_on:
            await self._connection.execute(
                query("insert_dependencies"), {"task_id": new.id, "ids": list(new.depends_on)}
            )
        return rows.to_task(row)

    async def get_task(self, task_id: str) -> Task | None:
        row = await self._row("get_task", id=task_id)
        return rows.to_task(row) if row else None

    async def list_tasks(
        self, where: TaskFilter, after: tuple[datetime, str] | None, limit: int
    ) -> list[Task]:
        after_created_at, after_id = after or BEGINNING
        found = await self._rows(
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

    def _selection_params(
        self, orchestrator_id: str, segments: Sequence[Segment], criteria: SelectionCriteria
    ) -> dict[str, Any]:
        return {
            "orchestrator_id": orchestrator_id,
            "required_tags": list(criteria.required_tags),
            "excluded_ids": list(criteria.exclude_task_ids),
            **_segment_params(segments),
        }

    async def select_next_task(
        self, orchestrator_id: str, segments: Sequence[Segment], criteria: SelectionCriteria
    ) -> ScoredTask | None:
        if not segments:
            return None
        row = await self._row(
            "select_next_task", **self._selection_params(orchestrator_id, segments, criteria)
        )
        return ScoredTask(rows.to_task(row), row["score"]) if row else None

    async def claim_next_task(
        self, orchestrator_id: str, segments: Sequence[Segment], criteria: SelectionCriteria
    ) -> ScoredTask | None:
        if not segments:
            return None
        row = await self._row(
            "claim_next_task", **self._selection_params(orchestrator_id, segments, criteria)
        )
        return ScoredTask(rows.to_task(row), row["score"]) if row else None

    async def start_task(self, task_id: str) -> Task | None:
        """TODO -> IN_PROGRESS with a new attempt; None when the task was not TODO."""
        row = await self._row("start_task", id=task_id)
        return rows.to_task(row) if row else None

    async def record_progress(self, task_id: str, attempt: int, progress: int, message: str) -> Task | None:
        row = await self._row(
            "record_progress", id=task_id, attempt=attempt, progress=progress, message=message
        )
        return rows.to_task(row) if row else None

    async def complete_task(
        self,
        task_id: str,
        attempt: int,
        status: TaskStatus,
        status_reason: str,
        result: JsonObject,
        fingerprint: str,
    ) -> Task | None:
        row = await self._row(
            "complete_task",
            id=task_id,
            attempt=attempt,
            status=status.value,
            status_reason=status_reason,
            result=_json(result),
            fingerprint=fingerprint,
        )
        return rows.to_task(row) if row else None

    async def cancel_task(
        self, task_id: str, reason: str, from_statuses: Sequence[TaskStatus]
    ) -> Task | None:
        row = await self._row(
            "cancel_task", id=task_id, reason=reason, from_statuses=[s.value for s in from_statuses]
        )
        return rows.to_task(row) if row else None

    async def get_task_with_fingerprint(self, task_id: str) -> tuple[Task, str | None] | None:
        """The task and the fingerprint of the completion it accepted, if any."""
        row = await self._row("get_task", id=task_id)
        return (rows.to_task(row), row["completion_fingerprint"]) if row else None

    async def release_dependents(self, task_id: str) -> list[TaskEvent]:
        """Counts one more met dependency for each dependent; returns UNBLOCKED events."""
        found = await self._rows("release_dependents", id=task_id, seq=self._event_seq + 1)
        self._take_event_numbers(len(found))
        return [
            TaskEvent(
                cursor=r["event_position"],
                kind=EventKind.UNBLOCKED,
                occurred_at=r["event_time"],
                task=rows.to_task(r),
                attempt=r["attempt"],
            )
            for r in found
        ]

    async def dependency_states(self, ids: Sequence[str]) -> list[RowMapping]:
        return list(await self._rows("dependency_states", ids=list(ids)))

    async def related_tasks(self, task: Task, limit: int) -> list[Task]:
        found = await self._rows("related_tasks", workspace_id=task.workspace_id, id=task.id, limit=limit)
        return [rows.to_task(r) for r in found]

    # Events

    def _take_event_numbers(self, count: int) -> int:
        """Numbers this transaction's next `count` events: the low bits of their positions."""
        first = self._event_seq + 1
        self._event_seq += count
        if self._event_seq >= EVENTS_PER_TRANSACTION:
            raise ValueError(f"a transaction may record at most {EVENTS_PER_TRANSACTION - 1} events")
        return first

    async def record_event(
        self,
        kind: EventKind,
        task: Task,
        *,
        progress: int = 0,
        message: str = "",
        metadata: JsonObject | None = None,
    ) -> TaskEvent:
        row = await self._row(
            "insert_event",
            seq=self._take_event_numbers(1),
            task_id=task.id,
            orchestrator_id=task.orchestrator_id,
            workspace_id=task.workspace_id,
            kind=kind.value,
            status=task.status.value,
            attempt=task.attempt,
            # The task's percent right after the change; for PROGRESS, the reported one.
            progress=progress if kind is EventKind.PROGRESS else task.progress,
            message=message,
            metadata=_json(metadata or {}),
        )
        assert row is not None
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

    async def events_after(self, scope: EventScope, scope_id: str, after: int, limit: int) -> EventPage:
        """Committed events after position `after`, oldest first, with the log's head and horizon."""
        found = await self._rows(f"{scope.value}_events_after", scope_id=scope_id, after=after, limit=limit)
        return rows.to_event_page(found)

    async def tail_events(self, after: int, limit: int) -> EventPage:
        return rows.to_event_page(await self._rows("tail_events", after=after, limit=limit))

    async def head_position(self) -> int:
        row = await self._row("head_position")
        assert row is not None
        return int(row["position"])

    async def snapshot(self, scope: EventScope, scope_id: str, limit: int) -> Snapshot:
        """The scope's open tasks (or the one task) and the log position they reflect."""
        found = await self._rows(f"{scope.value}_snapshot", scope_id=scope_id, limit=limit)
        first = found[0]
        return Snapshot(
            position=int(first["snapshot_position"]),
            seen_positions=frozenset(first["seen_positions"]),
            tasks=tuple(rows.to_task(r) for r in found if r["id"] is not None),
        )

    async def prune_events(self, retention_seconds: float, batch: int) -> int | None:
        """Deletes up to `batch` of the oldest expired events; None when another process is pruning."""
        locked = await self._row("try_lock_pruning")
        if locked is None or not locked["locked"]:
            return None
        row = await self._row("prune_events", retention_seconds=retention_seconds, batch=batch)
        assert row is not None
        return int(row["deleted"])

    async def notify(self, channel: str, payload: str) -> None:
        await self._connection.execute(query("notify_events"), {"channel": channel, "payload": payload})

    # Statistics

    async def execution_totals(
        self, orchestrator_id: str, start: datetime | None, end: datetime | None
    ) -> RowMapping:
        row = await self._row(
            "execution_totals", orchestrator_id=orchestrator_id, start_time=start, end_time=end
        )
        assert row is not None
        return row

    async def execution_breakdown(
        self, orchestrator_id: str, start: datetime | None, end: datetime | None
    ) -> Sequence[RowMapping]:
        return await self._rows(
            "execution_breakdown", orchestrator_id=orchestrator_id, start_time=start, end_time=end
        )

    # Access

    async def insert_orchestrator_token(
        self, orchestrator_id: str, token_hash: str, expires_at: datetime | None
    ) -> None:
        await self._connection.execute(
            query("insert_orchestrator_token"),
            {"token_hash": token_hash, "orchestrator_id": orchestrator_id, "expires_at": expires_at},
        )

    async def find_orchestrator_token(self, token_hash: str) -> StoredToken | None:
        row = await self._row("find_orchestrator_token", token_hash=token_hash)
        if row is None:
            return None
        return StoredToken(row["orchestrator_id"], row["expires_at"], row["revoked_at"])

    async def retire_orchestrator_tokens(self, orchestrator_id: str, retire_at: datetime) -> int:
        """Every token of the orchestrator stops working at `retire_at`; returns how many changed."""
        await self._connection.execute(
            query("delete_dead_orchestrator_tokens"), {"orchestrator_id": orchestrator_id, "now": retire_at}
        )
        row = await self._row(
            "retire_orchestrator_tokens", orchestrator_id=orchestrator_id, retire_at=retire_at
        )
        assert row is not None
        return int(row["retired"])

    async def task_owner(self, task_id: str) -> str | None:
        row = await self._row("task_owner", id=task_id)
        return str(row["orchestrator_id"]) if row else None
