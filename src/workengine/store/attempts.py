"""Attempts and leases (sql/attempts.sql): starting a task under a new attempt, the reports that
keep its lease (progress, heartbeat), completion, and moving tasks on time (expired leases, due
retries)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from workengine.domain.attempts import LEASE_EXPIRED_REASON, RETRY_TIME_REACHED
from workengine.domain.model import (
    AttemptOutcome,
    EventKind,
    JsonObject,
    ScoredTask,
    SelectionCriteria,
    Task,
    TaskEvent,
    TaskStatus,
)
from workengine.domain.scoring import Segment
from workengine.store import rows
from workengine.store.rows import Changed, Claim, Completed
from workengine.store.runner import Runner, array_text, json_text
from workengine.store.tasks import TaskStore, selection_params


@dataclass(frozen=True)
class LeaseRequest:
    """What a start asks for: a lease length (None: the task's own, else `default_seconds`),
    who is starting, for the attempt history, and whether its ETAs blend an estimate (its
    context asked for one: engine/history.py)."""

    seconds: int | None
    default_seconds: int
    identity: str
    estimated: bool = True

    def params(self) -> dict[str, Any]:
        return {
            "lease_seconds": self.seconds,
            "default_lease_seconds": self.default_seconds,
            "identity": self.identity,
            "estimated": self.estimated,
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
    # What the attempt's history keeps of the result (domain/history.py).
    output_excerpt: str = ""
    lessons: tuple[str, ...] = ()

    def params(self) -> dict[str, Any]:
        return {
            "id": self.task_id,
            "attempt": self.attempt,
            "status": self.status.value,
            "status_reason": self.status_reason,
            "result": json_text(self.result),
            "fingerprint": self.fingerprint,
            "outcome": self.outcome.value,
            "retry_after_seconds": self.retry_after_seconds,
            "output_excerpt": self.output_excerpt,
            "lessons": array_text(self.lessons),
        }


class AttemptStore:
    def __init__(self, runner: Runner, tasks: TaskStore) -> None:
        self._run = runner
        self._tasks = tasks

    async def claim_next(
        self,
        orchestrator_id: str,
        segments: Sequence[Segment],
        criteria: SelectionCriteria,
        lease: LeaseRequest,
        related_limit: int,
    ) -> Claim | None:
        """Starts the best ready task under a new attempt holding a lease (see start), with its
        STARTED event, and reads up to `related_limit` related tasks for its context in the same
        statement."""
        if not segments:
            return None
        found = await self._run.rows(
            "claim_next_task",
            **selection_params(orchestrator_id, segments, criteria),
            **lease.params(),
            **self._run.event_params(EventKind.STARTED),
            related_limit=related_limit,
        )
        if not found:
            return None
        claimed = found[-1]
        started = rows.to_changed(claimed, EventKind.STARTED)
        related = [rows.to_task(r) for r in found[:-1]]
        return Claim(ScoredTask(started.task, claimed["score"]), started.event, related)

    async def start(self, task_id: str, lease: LeaseRequest) -> Changed | None:
        """TODO -> IN_PROGRESS with a new attempt, recorded in the attempt history, holding a
        lease of the requested length, else the task's own, else the default, with its STARTED
        event; None when the task was not TODO."""
        row = await self._run.row(
            "start_task", id=task_id, **lease.params(), **self._run.event_params(EventKind.STARTED)
        )
        return rows.to_changed(row, EventKind.STARTED) if row else None

    async def record_progress(
        self,
        task_id: str,
        attempt: int,
        progress: int,
        message: str,
        metadata: JsonObject,
        remaining: timedelta | None = None,
    ) -> Changed | None:
        """With its PROGRESS event, and an ETA `remaining` from now (None: none); None unless
        `attempt` is running and holds its lease, which the report extends. One statement: run
        it in autocommit mode."""
        row = await self._run.row(
            "record_progress",
            id=task_id,
            attempt=attempt,
            progress=progress,
            message=message,
            remaining_seconds=remaining.total_seconds() if remaining is not None else None,
            **self._run.event_params(EventKind.PROGRESS, message, metadata),
        )
        return rows.to_changed(row, EventKind.PROGRESS, message, metadata) if row else None

    async def heartbeat(self, task_id: str, attempt: int, lease_seconds: int | None) -> Task | None:
        """Extends the lease of a running attempt that still holds it; None otherwise."""
        row = await self._run.row("heartbeat", id=task_id, attempt=attempt, lease_seconds=lease_seconds)
        return rows.to_task(row) if row else None

    async def complete(self, report: CompletionReport, event_kind: EventKind) -> Changed | None:
        """Finishes the running attempt if it still holds its lease, with its event (the
        status_reason as message); None otherwise."""
        event = self._run.event_params(event_kind, report.status_reason)
        row = await self._run.row("complete_task", **report.params(), **event)
        return rows.to_changed(row, event_kind, report.status_reason) if row else None

    async def complete_and_release(self, report: CompletionReport) -> Completed | None:
        """complete to DONE, then release_dependents, sent together in one pipeline (with the
        BEGIN psycopg opens the transaction with): one round trip, and COMMIT is the caller's
        (Database.transaction), a second one. Not COMMIT in the same pipeline: the server would
        commit even if the call were cut while the completion waited for a lock (a shutdown's
        grace period ending, a client gone), and a cut call must write nothing. None when the
        attempt was refused (nothing changed)."""
        completion = report.params() | self._run.event_params(EventKind.COMPLETED)
        release = self._tasks.release_params(report.task_id)
        async with self._run.pipeline():
            completed = await self._run.send("complete_task", completion)
            released = await self._run.send("release_dependents", release, self._run.second_cursor)
        row = await completed.fetchone()
        if row is None:
            return None
        unblocked = self._run.moved(EventKind.UNBLOCKED, await released.fetchall())
        return Completed(rows.to_changed(row, EventKind.COMPLETED), unblocked)

    async def reap_expired_leases(self, batch: int) -> list[TaskEvent]:
        """Returns up to `batch` tasks whose lease expired to TODO or FAILED; their events."""
        return await self._move("reap_expired_leases", batch, EventKind.LEASE_EXPIRED, LEASE_EXPIRED_REASON)

    async def release_due_retries(self, batch: int) -> list[TaskEvent]:
        """Returns up to `batch` BLOCKED tasks whose retry time came to TODO; their events."""
        return await self._move("release_due_retries", batch, EventKind.UNBLOCKED, RETRY_TIME_REACHED)

    async def _move(self, name: str, batch: int, kind: EventKind, message: str) -> list[TaskEvent]:
        found = await self._run.rows(name, batch=batch, **self._run.moves_params(kind, message))
        return self._run.moved(kind, found, message)
