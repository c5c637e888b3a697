"""Every database operation the engine needs: statements from sql/queries.sql, one each, except
a completion that also releases its dependents (two, sent together as one pipeline)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from psycopg import AsyncRawCursor

from workengine.domain.access import StoredToken
from workengine.domain.attempts import LEASE_EXPIRED_REASON, whole_seconds
from workengine.domain.model import (
    AttemptOutcome,
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
    TaskAttempt,
    TaskEvent,
    TaskFilter,
    TaskStatus,
)
from workengine.domain.scoring import PRIORITY_WEIGHT, Segment
from workengine.store import rows
from workengine.store.queries import positional
from workengine.store.rows import Row

if TYPE_CHECKING:
    from workengine.store.database import Connection

# An event's position keeps its transaction's id above these low bits (see queries.sql).
EVENTS_PER_TRANSACTION = 1 << 20

# Keyset pagination starts before every row.
BEGINNING = (datetime(1, 1, 1, tzinfo=UTC), "")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def array_text(values: Iterable[int | str | datetime | None]) -> str:
    """An array in PostgreSQL's text form, for a parameter the statement casts to its array type
    (`CAST(:x AS integer[])`). Cheaper to send than a list: psycopg dumps a list element by element
    in Python, which was a twentieth of the server's CPU per claim (issue 6). Every element but
    NULL and numbers is quoted, so no value can read as another or end the array."""
    items = []
    for value in values:
        if value is None:
            items.append("NULL")
        elif isinstance(value, int):
            items.append(str(value))
        else:
            text = value.isoformat() if isinstance(value, datetime) else value
            items.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(items) + "}"


def _segment_params(segments: Sequence[Segment]) -> dict[str, str]:
    return {
        "priorities": array_text(int(s.priority) for s in segments),
        "weights": array_text(PRIORITY_WEIGHT[s.priority] for s in segments),
        "boosts": array_text(s.boost for s in segments),
        "due_froms": array_text(s.due_from for s in segments),
        "due_tos": array_text(s.due_to for s in segments),
    }


@dataclass(frozen=True)
class LeaseRequest:
    """What a start asks for: a lease length (None: the task's own, else `default_seconds`)
    and who is starting, for the attempt history."""

    seconds: int | None
    default_seconds: int
    identity: str

    def params(self) -> dict[str, Any]:
        return {
            "lease_seconds": self.seconds,
            "default_lease_seconds": self.default_seconds,
            "identity": self.identity,
        }


@dataclass(frozen=True)
class CompletionReport:
    """What a completion writes: the attempt's outcome, result and fingerprint, and for a
    BLOCKED report the time to come back to TODO."""

    task_id: str
    attempt: int
    status: TaskStatus
    status_reason: str
    result: JsonObject
    fingerprint: str
    outcome: AttemptOutcome
    retry_after_seconds: float | None = None

    def params(self) -> dict[str, Any]:
        return {
            "id": self.task_id,
            "attempt": self.attempt,
            "status": self.status.value,
            "status_reason": self.status_reason,
            "result": _json(self.result),
            "fingerprint": self.fingerprint,
            "outcome": self.outcome.value,
            "retry_after_seconds": self.retry_after_seconds,
        }


class Changed(NamedTuple):
    """A task as a statement left it, and the event the statement recorded."""

    task: Task
    event: TaskEvent


class Claim(NamedTuple):
    """A claimed task with its STARTED event, and the related tasks read with it."""

    scored: ScoredTask
    event: TaskEvent
    related: list[Task]


class Completed(NamedTuple):
    """A completed task with its event, and the UNBLOCKED events of the dependents it released."""

    changed: Changed
    unblocked: list[TaskEvent]


class Transaction:
    """Bound to one open transaction; the engine composes these calls into a use case."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._cursor, self._second_cursor = connection.statement_cursors()
        self._event_seq = 0

    # Results in binary: loading a timestamp from its text form was the largest single cost
    # of reading task rows (every claim reads about twenty).
    async def _send(
        self, name: str, params: dict[str, Any], cursor: AsyncRawCursor[Row] | None = None
    ) -> AsyncRawCursor[Row]:
        """Executes on `cursor`, else on the connection's first kept cursor, whose rows must then
        be read before the next statement (a pipeline's second statement takes the second)."""
        statement = positional(name)
        cursor = cursor or self._cursor
        await cursor.execute(statement.sql, statement.values(params), binary=True)
        return cursor

    async def _execute(self, name: str, **params: Any) -> None:
        await self._send(name, params)

    async def _rows(self, name: str, **params: Any) -> Sequence[Row]:
        return await (await self._send(name, params)).fetchall()

    async def _row(self, name: str, **params: Any) -> Row | None:
        return await (await self._send(name, params)).fetchone()

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

    async def insert_task(
        self, new: NewTask, status: TaskStatus, unmet_dependencies: int, request_fingerprint: str
    ) -> Task | None:
        """Inserts the task and its dependency edges; returns None when the id, or the
        orchestrator's idempotency key, is taken."""
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
            max_attempts=new.max_attempts,
            lease_seconds=whole_seconds(new.lease) if new.lease is not None else None,
            idempotency_key=new.idempotency_key or None,
            request_fingerprint=request_fingerprint,
        )
        if row is None:
            return None
        if new.depends_on:
            await self._execute("insert_dependencies", task_id=new.id, ids=list(new.depends_on))
        return rows.to_task(row)

    async def get_task(self, task_id: str) -> Task | None:
        row = await self._row("get_task", id=task_id)
        return rows.to_task(row) if row else None

    async def get_task_with_attempts(self, task_id: str) -> tuple[Task, tuple[TaskAttempt, ...]] | None:
        row = await self._row("get_task_with_attempts", id=task_id)
        return (rows.to_task(row), rows.to_attempts(row["attempts"])) if row else None

    async def get_task_by_idempotency_key(self, orchestrator_id: str, key: str) -> tuple[Task, str] | None:
        """The task created with this key, and the fingerprint of the request that created it."""
        row = await self._row(
            "get_task_by_idempotency_key", orchestrator_id=orchestrator_id, idempotency_key=key
        )
        return (rows.to_task(row), row["request_fingerprint"]) if row else None

    async def lock_task(self, task_id: str) -> Task | None:
        row = await self._row("lock_task", id=task_id)
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
        """Also what claim_next_task needs, which adds a lease and an identity."""
        return {
            "orchestrator_id": orchestrator_id,
            "required_tags": array_text(criteria.required_tags),
            "excluded_ids": array_text(criteria.exclude_task_ids),
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

    def _event_params(
        self, kind: EventKind, message: str = "", metadata: JsonObject | None = None
    ) -> dict[str, Any]:
        """The binds of the changed_event part: the event the statement records with its change.
        Numbers it even if the statement then changes nothing (numbers need only increase)."""
        return {
            "seq": self._take_event_numbers(1),
            "event_kind": kind.value,
            "event_message": message,
            "event_metadata": _json(metadata or {}),
        }

    @staticmethod
    def _changed(row: Row, kind: EventKind, message: str = "", metadata: JsonObject | None = None) -> Changed:
        task = rows.to_task(row)
        event = TaskEvent(
            cursor=row["event_position"],
            kind=kind,
            occurred_at=row["event_time"],
            task=task,
            attempt=task.attempt,
            progress=task.progress if kind is EventKind.PROGRESS else 0,
            message=message,
            metadata=metadata or {},
        )
        return Changed(task, event)

    async def claim_next_task(
        self,
        orchestrator_id: str,
        segments: Sequence[Segment],
        criteria: SelectionCriteria,
        lease: LeaseRequest,
        related_limit: int,
    ) -> Claim | None:
        """Starts the best ready task under a new attempt holding a lease (see start_task),
        with its STARTED event, and reads up to `related_limit` related tasks for its context
        in the same statement."""
        if not segments:
            return None
        found = await self._rows(
            "claim_next_task",
            **self._selection_params(orchestrator_id, segments, criteria),
            **lease.params(),
            **self._event_params(EventKind.STARTED),
            related_limit=related_limit,
        )
        if not found:
            return None
        claimed = found[-1]
        started = self._changed(claimed, EventKind.STARTED)
        return Claim(
            ScoredTask(started.task, claimed["score"]), started.event, [rows.to_task(r) for r in found[:-1]]
        )

    async def start_task(self, task_id: str, lease: LeaseRequest) -> Changed | None:
        """TODO -> IN_PROGRESS with a new attempt, recorded in the attempt history, holding a
        lease of the requested length, else the task's own, else the default, with its STARTED
        event; None when the task was not TODO."""
        row = await self._row(
            "start_task", id=task_id, **lease.params(), **self._event_params(EventKind.STARTED)
        )
        return self._changed(row, EventKind.STARTED) if row else None

    async def record_progress(
        self, task_id: str, attempt: int, progress: int, message: str, metadata: JsonObject
    ) -> Changed | None:
        """With its PROGRESS event; None unless `attempt` is running and holds its lease, which
        the report extends. One statement: run it on its own (Database.statement)."""
        row = await self._row(
            "record_progress",
            id=task_id,
            attempt=attempt,
            progress=progress,
            message=message,
            **self._event_params(EventKind.PROGRESS, message, metadata),
        )
        return self._changed(row, EventKind.PROGRESS, message, metadata) if row else None

    async def heartbeat(self, task_id: str, attempt: int, lease_seconds: int | None) -> Task | None:
        """Extends the lease of a running attempt that still holds it; None otherwise."""
        row = await self._row("heartbeat", id=task_id, attempt=attempt, lease_seconds=lease_seconds)
        return rows.to_task(row) if row else None

    async def complete_task(self, report: CompletionReport, event_kind: EventKind) -> Changed | None:
        """Finishes the running attempt if it still holds its lease, with its event (the
        status_reason as message); None otherwise."""
        row = await self._row(
            "complete_task", **report.params(), **self._event_params(event_kind, report.status_reason)
        )
        return self._changed(row, event_kind, report.status_reason) if row else None

    async def complete_and_release(
        self, task_id: str, attempt: int, result: JsonObject, fingerprint: str
    ) -> Completed | None:
        """complete_task to DONE, then release_dependents, sent together in one pipeline (with
        the BEGIN psycopg opens the transaction with): one round trip, and COMMIT is the
        caller's (Database.transaction), a second one. Not COMMIT in the same pipeline: the
        server would commit even if the call were cut while the completion waited for a lock
        (a shutdown's grace period ending, a client gone), and a cut call must write nothing.
        None when the attempt was refused (nothing changed)."""
        report = CompletionReport(
            task_id, attempt, TaskStatus.DONE, "", result, fingerprint, AttemptOutcome.COMPLETED
        )
        completion = report.params() | self._event_params(EventKind.COMPLETED)
        release = {"id": task_id, "finished_seq": self._event_seq, "seq": self._event_seq + 1}
        async with self._connection.pipeline():
            completed = await self._send("complete_task", completion)
            released = await self._send("release_dependents", release, self._second_cursor)
        row = await completed.fetchone()
        if row is None:
            return None
        unblocked = self._batch_events(EventKind.UNBLOCKED, await released.fetchall())
        return Completed(self._changed(row, EventKind.COMPLETED), unblocked)

    async def retry_task(self, task_id: str, max_attempts: int) -> Task | None:
        """FAILED -> TODO with this attempt budget; None when the task is not FAILED."""
        row = await self._row("retry_task", id=task_id, max_attempts=max_attempts)
        return rows.to_task(row) if row else None

    async def reap_expired_leases(self, batch: int) -> list[TaskEvent]:
        """Returns up to `batch` tasks whose lease expired to TODO or FAILED; their events."""
        return await self._moved("reap_expired_leases", batch, EventKind.LEASE_EXPIRED, LEASE_EXPIRED_REASON)

    async def release_due_retries(self, batch: int) -> list[TaskEvent]:
        """Returns up to `batch` BLOCKED tasks whose retry time came to TODO; their events."""
        return await self._moved("release_due_retries", batch, EventKind.UNBLOCKED, "retry time reached")

    async def _moved(self, name: str, batch: int, kind: EventKind, message: str) -> list[TaskEvent]:
        """Runs a statement that moves up to `batch` tasks, recording one event each (moved_events)."""
        found = await self._rows(
            name, batch=batch, seq=self._event_seq + 1, event_kind=kind.value, event_message=message
        )
        return self._batch_events(kind, found, message)

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
        """Counts one more met dependency for each dependent; returns UNBLOCKED events. Call it
        right after recording the event that finished the task, in the same transaction."""
        found = await self._rows(
            "release_dependents", id=task_id, finished_seq=self._event_seq, seq=self._event_seq + 1
        )
        return self._batch_events(EventKind.UNBLOCKED, found)

    def _batch_events(self, kind: EventKind, found: Sequence[Row], message: str = "") -> list[TaskEvent]:
        """The events a statement inserted for the tasks it returned (with event_position and
        event_time), numbered from this transaction's next event number."""
        self._take_event_numbers(len(found))
        return [
            TaskEvent(
                cursor=r["event_position"],
                kind=kind,
                occurred_at=r["event_time"],
                task=rows.to_task(r),
                attempt=r["attempt"],
                message=message,
            )
            for r in found
        ]

    async def dependency_states(self, ids: Sequence[str]) -> list[Row]:
        return list(await self._rows("dependency_states", ids=list(ids)))

    async def related_tasks(self, task: Task, limit: int) -> list[Task]:
        found = await self._rows(
            "related_tasks", workspace_id=task.workspace_id, id=task.id, related_limit=limit
        )
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
        await self._execute("notify_events", channel=channel, payload=payload)

    # Statistics

    async def execution_rollup(
        self, orchestrator_id: str, start: datetime | None, end: datetime | None
    ) -> Sequence[Row]:
        """(status, priority, bucket, tasks, seconds) rows; see queries.sql and migration 0005."""
        return await self._rows(
            "execution_rollup", orchestrator_id=orchestrator_id, start_time=start, end_time=end
        )

    async def fold_execution_deltas(self) -> int | None:
        """Folds the committed rollup deltas; how many, or None when another process is folding."""
        locked = await self._row("try_lock_folding")
        if locked is None or not locked["locked"]:
            return None
        row = await self._row("fold_execution_deltas")
        assert row is not None
        return int(row["deltas"])

    # Access

    async def insert_orchestrator_token(
        self, orchestrator_id: str, token_hash: str, expires_at: datetime | None
    ) -> None:
        await self._execute(
            "insert_orchestrator_token",
            token_hash=token_hash,
            orchestrator_id=orchestrator_id,
            expires_at=expires_at,
        )

    async def find_orchestrator_token(self, token_hash: str) -> StoredToken | None:
        row = await self._row("find_orchestrator_token", token_hash=token_hash)
        if row is None:
            return None
        return StoredToken(row["orchestrator_id"], row["expires_at"], row["revoked_at"])

    async def retire_orchestrator_tokens(self, orchestrator_id: str, retire_at: datetime) -> int:
        """Every token of the orchestrator stops working at `retire_at`; returns how many changed."""
        await self._execute("delete_dead_orchestrator_tokens", orchestrator_id=orchestrator_id, now=retire_at)
        row = await self._row(
            "retire_orchestrator_tokens", orchestrator_id=orchestrator_id, retire_at=retire_at
        )
        assert row is not None
        return int(row["retired"])

    async def task_owner(self, task_id: str) -> str | None:
        row = await self._row("task_owner", id=task_id)
        return str(row["orchestrator_id"]) if row else None
