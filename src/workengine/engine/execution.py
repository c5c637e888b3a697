"""Selecting, starting, reporting on and completing tasks: the daemon's loop."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from workengine.domain import attempts, history, scoring, transitions, validation
from workengine.domain.errors import Aborted, FailedPrecondition, not_found
from workengine.domain.explain import Explanation
from workengine.domain.model import (
    AttemptOutcome,
    CompletionStatus,
    EventKind,
    JsonObject,
    ScoredTask,
    SelectionCriteria,
    Task,
    TaskContext,
    TaskEvent,
    TaskResult,
    TaskStatus,
)
from workengine.engine.base import (
    RELATED_TASKS_LIMIT,
    Deps,
    build_context,
    ensure_assigned,
    ensure_available,
    require_orchestrator,
    require_task,
)
from workengine.engine.events import WatchTarget
from workengine.engine.explain import Explainer
from workengine.engine.history import History
from workengine.engine.retry import retry_on_conflict
from workengine.store.attempts import CompletionReport, LeaseRequest
from workengine.store.rows import Completed
from workengine.store.session import Session

MAX_CLAIM_WAIT = timedelta(seconds=60)
# A waiting claim is retried when the event feed (local commits, LISTEN/NOTIFY from other
# replicas) reports work becoming ready for the orchestrator. This slow re-check is only a
# safety net for readiness no event announces (a claimer that rolled back after locking).
CLAIM_RECHECK_SECONDS = 10.0
# The events after which a ready task may exist.
READY_EVENTS = frozenset({EventKind.CREATED, EventKind.UNBLOCKED, EventKind.LEASE_EXPIRED, EventKind.RETRIED})

COMPLETION_EVENT = {
    TaskStatus.DONE: EventKind.COMPLETED,
    TaskStatus.FAILED: EventKind.FAILED,
    TaskStatus.BLOCKED: EventKind.BLOCKED,
}
COMPLETION_OUTCOME = {
    TaskStatus.DONE: AttemptOutcome.COMPLETED,
    TaskStatus.FAILED: AttemptOutcome.FAILED,
    TaskStatus.BLOCKED: AttemptOutcome.BLOCKED,
}


@dataclass(frozen=True)
class StartOptions:
    """What a start may ask for: a lease length (None: the task's own, else the server's
    default) and who is starting, recorded in the attempt history."""

    lease: timedelta | None = None
    identity: str = ""
    # How many past executions the context recalls (0: no history and no estimate); None:
    # the default.
    history_limit: int | None = None


@dataclass(frozen=True)
class Claimed:
    context: TaskContext
    score: int


@dataclass(frozen=True)
class Execution:
    """ExecuteTask's answer: started (attempt >= 1) or blocked (with the reason)."""

    started: bool
    context: TaskContext
    attempt: int = 0
    blocked_reason: str = ""
    unmet_dependency_ids: tuple[str, ...] = ()


def result_document(result: TaskResult) -> JsonObject:
    document: JsonObject = {
        "output": result.output,
        "error": result.error,
        "artifacts": [{"type": a.type, "content": a.content} for a in result.artifacts],
        "metrics": result.metrics,
    }
    if result.lessons:  # absent otherwise, as in the results stored before lessons
        document["lessons"] = list(result.lessons)
    return document


def completion_fingerprint(
    attempt: int, status: CompletionStatus, document: JsonObject, retry_after: timedelta | None = None
) -> str:
    parts: list[object] = [attempt, status.value, document]
    if retry_after is not None:  # absent from the list otherwise: fingerprints stored before it stay valid
        parts.append(retry_after.total_seconds())
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class ExecutionFlow:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._explainer = Explainer(deps)
        self._history = History(deps)

    def _lease_request(self, options: StartOptions, history_limit: int) -> LeaseRequest:
        return LeaseRequest(
            seconds=attempts.whole_seconds(options.lease) if options.lease is not None else None,
            default_seconds=attempts.whole_seconds(self._deps.default_lease),
            identity=options.identity,
            estimated=history_limit > 0,
        )

    def _segments(self, timezone: str, criteria: SelectionCriteria) -> list[scoring.Segment]:
        return scoring.segments(self._deps.clock(), timezone, criteria.min_priority, criteria.max_priority)

    async def select_next(self, orchestrator_id: str, criteria: SelectionCriteria) -> ScoredTask | None:
        validation.require_id("orchestrator_id", orchestrator_id)
        validation.selection_criteria(criteria)
        async with self._deps.db.autocommit() as session:
            orchestrator = await require_orchestrator(session, orchestrator_id)
            ensure_available(orchestrator)
            segments = self._segments(orchestrator.timezone, criteria)
            return await session.tasks.select_next(orchestrator_id, segments, criteria)

    async def explain(
        self, orchestrator_id: str, criteria: SelectionCriteria, limit: int = 20, task_ids: Sequence[str] = ()
    ) -> Explanation:
        """The ready tasks ranked as claims would take them (first: what a claim starts now),
        up to `limit`, and why each of `task_ids` is not first. Changes nothing."""
        return await self._explainer.explain(orchestrator_id, criteria, limit, task_ids)

    async def claim_next(
        self,
        orchestrator_id: str,
        criteria: SelectionCriteria,
        wait: timedelta | None = None,
        options: StartOptions = StartOptions(),
    ) -> Claimed | None:
        validation.require_id("orchestrator_id", orchestrator_id)
        validation.selection_criteria(criteria)
        validation.start_options(options.lease, options.identity)
        validation.claim_wait(wait)
        history_limit = validation.history_limit(options.history_limit)
        lease = self._lease_request(options, history_limit)
        if not wait:
            return await self._claim_once(orchestrator_id, criteria, lease, history_limit)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait, MAX_CLAIM_WAIT).total_seconds()
        wake_on = WatchTarget(orchestrator_id=orchestrator_id, kinds=READY_EVENTS)
        # Subscribed before the first attempt, so work arriving between that attempt and the
        # wait wakes this claim instead of waiting for the re-check.
        subscription = await self._deps.feed.subscribe(wake_on)
        try:
            claimed = await self._claim_once(orchestrator_id, criteria, lease, history_limit)
            if claimed is not None:
                return claimed
            while (remaining := deadline - loop.time()) > 0:
                try:
                    async with asyncio.timeout(min(remaining, CLAIM_RECHECK_SECONDS)):
                        event = await subscription.next()
                        if event is None:
                            return None  # shutting down: answer "no task" now
                        if not wake_on.wants(event.kind) and not subscription.overflowed:
                            continue
                except TimeoutError:
                    pass
                subscription.take_queued()
                claimed = await self._claim_once(orchestrator_id, criteria, lease, history_limit)
                if claimed is not None:
                    return claimed
            return None
        finally:
            self._deps.feed.unsubscribe(subscription)

    @retry_on_conflict
    async def _claim_once(
        self, orchestrator_id: str, criteria: SelectionCriteria, lease: LeaseRequest, history_limit: int
    ) -> Claimed | None:
        # Statements each in its own transaction (no BEGIN/COMMIT round trips): the claim is one
        # statement (the start, its event and its attempt row), and what is read around it needs
        # no shared snapshot; the history is read once the claim committed, holding no lock. The
        # orchestrator's status was never locked against the claim.
        async with self._deps.db.autocommit() as session:
            orchestrator = await require_orchestrator(session, orchestrator_id)
            ensure_available(orchestrator)
            segments = self._segments(orchestrator.timezone, criteria)
            claim = await session.attempts.claim_next(
                orchestrator_id, segments, criteria, lease, RELATED_TASKS_LIMIT
            )
            if claim is None:
                return None
            self._deps.feed.committed([claim.event])
            started = claim.scored.task
            memory = await self._history.recall(session, started, history_limit)
            self._history.started(started, memory)
            context = await build_context(session, orchestrator, started, claim.related, memory)
        return Claimed(context, claim.scored.score)

    async def prepare_context(
        self, orchestrator_id: str, task_id: str, history_limit: int | None = None
    ) -> TaskContext:
        validation.require_id("orchestrator_id", orchestrator_id)
        validation.require_id("task_id", task_id)
        limit = validation.history_limit(history_limit)
        async with self._deps.db.autocommit() as session:
            orchestrator = await require_orchestrator(session, orchestrator_id)
            task = await require_task(session, task_id)
            ensure_assigned(task, orchestrator)
            memory = await self._history.recall(session, task, limit)
            return await build_context(session, orchestrator, task, memory=memory)

    @retry_on_conflict
    async def execute(
        self, orchestrator_id: str, task_id: str, options: StartOptions = StartOptions()
    ) -> Execution:
        validation.require_id("orchestrator_id", orchestrator_id)
        validation.require_id("task_id", task_id)
        validation.start_options(options.lease, options.identity)
        history_limit = validation.history_limit(options.history_limit)
        events: list[TaskEvent] = []
        async with self._deps.db.transaction() as session:
            orchestrator = await require_orchestrator(session, orchestrator_id)
            task = await require_task(session, task_id)
            ensure_assigned(task, orchestrator)
            if task.status is TaskStatus.BLOCKED:
                memory = await self._history.recall(session, task, history_limit)
                context = await build_context(session, orchestrator, task, memory=memory)
                unmet = tuple(d.task_id for d in context.dependencies if not d.met)
                reason = transitions.status_reason(task)
                return Execution(False, context, blocked_reason=reason, unmet_dependency_ids=unmet)
            if task.status is TaskStatus.IN_PROGRESS:
                raise Aborted(f"task {task_id} was already started (attempt {task.attempt})")
            transitions.ensure_transition(task_id, task.status, TaskStatus.IN_PROGRESS)
            ensure_available(orchestrator)
            # Before the start, which locks the task until the commit: the history needs no lock.
            # Its estimate then covers what ended before now, as the start's would.
            memory = await self._history.recall(session, task, history_limit)
            changed = await session.attempts.start(task_id, self._lease_request(options, history_limit))
            if changed is None:
                raise Aborted(f"task {task_id} was started or changed by a concurrent request")
            started = changed.task
            events.append(changed.event)
            context = await build_context(session, orchestrator, started, memory=memory)
        self._history.started(started, memory)
        self._deps.feed.committed(events)
        return Execution(True, context, attempt=started.attempt)

    @retry_on_conflict
    async def heartbeat(self, task_id: str, attempt: int, lease: timedelta | None) -> Task:
        """Extends the running attempt's lease; refused (with the reason) when the daemon
        should stop: the task was cancelled or finished, or the attempt lost its lease."""
        validation.require_id("task_id", task_id)
        validation.attempt(attempt)
        validation.lease("lease_duration", lease)
        seconds = attempts.whole_seconds(lease) if lease is not None else None
        async with self._deps.db.autocommit() as session:
            task = await session.attempts.heartbeat(task_id, attempt, seconds)
            if task is None:
                raise attempts.report_refusal(await require_task(session, task_id), attempt, "heartbeat")
        return task

    @retry_on_conflict
    async def update_progress(
        self, task_id: str, attempt: int, progress: int, message: str, metadata: JsonObject
    ) -> Task:
        validation.require_id("task_id", task_id)
        validation.attempt(attempt)
        validation.progress(progress)
        validation.text("message", message, validation.MAX_MESSAGE)
        validation.json_object("metadata", metadata, validation.MAX_METADATA_BYTES)
        async with self._deps.db.autocommit() as session:
            remaining = await self._history.remaining(session, task_id, attempt, progress)
            changed = await session.attempts.record_progress(
                task_id, attempt, progress, message, metadata, remaining
            )
            if changed is None:
                raise attempts.report_refusal(await require_task(session, task_id), attempt, "progress")
        self._deps.feed.committed([changed.event])
        return changed.task

    @retry_on_conflict
    async def complete(
        self,
        task_id: str,
        attempt: int,
        status: CompletionStatus | None,
        result: TaskResult,
        retry_after: timedelta | None = None,
    ) -> tuple[Task, list[str]]:
        validation.require_id("task_id", task_id)
        validation.attempt(attempt)
        status = validation.completion(status, result, retry_after)
        target = transitions.COMPLETION_TARGET[status]
        document = result_document(result)
        # Without the lessons: the previous release ignores them (an unknown field), so a retried
        # call that reached both releases during an upgrade must not look like another report.
        unlearned = {key: value for key, value in document.items() if key != "lessons"}
        fingerprint = completion_fingerprint(attempt, status, unlearned, retry_after)
        report = CompletionReport(
            task_id,
            attempt,
            target,
            result.error if target is not TaskStatus.DONE else "",
            document,
            fingerprint,
            COMPLETION_OUTCOME[target],
            retry_after.total_seconds() if retry_after is not None else None,
            history.output_excerpt(result.output),
            result.lessons,
        )
        # A transaction, not autocommit: a call cut while it waits (for a lock, at shutdown)
        # rolls back instead of committing later without its caller.
        async with self._deps.db.transaction() as session:
            if target is TaskStatus.DONE:
                completed = await session.attempts.complete_and_release(report)
            else:
                changed = await session.attempts.complete(report, COMPLETION_EVENT[target])
                completed = Completed(changed, []) if changed is not None else None
            if completed is None:
                return await self._repeat_or_refuse(session, task_id, attempt, fingerprint)
        changed, unblocked = completed
        self._history.finished(task_id)
        self._deps.feed.committed([changed.event, *unblocked])
        return changed.task, [e.task.id for e in unblocked]

    async def _repeat_or_refuse(
        self, session: Session, task_id: str, attempt: int, fingerprint: str
    ) -> tuple[Task, list[str]]:
        found = await session.tasks.get_with_fingerprint(task_id)
        if found is None:
            raise not_found("task_id", "task", task_id)
        task, accepted = found
        if accepted == fingerprint and task.attempt == attempt:
            return task, []  # the identical call again: harmless
        if task.attempt == attempt and accepted is not None:
            raise FailedPrecondition(
                f"task {task_id} already has a different completion for attempt {attempt}",
                attempts.Refusal.COMPLETION_CONFLICT,
            )
        raise attempts.report_refusal(task, attempt, "completion")
