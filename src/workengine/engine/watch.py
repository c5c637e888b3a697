"""WatchTaskProgress: a snapshot (or a replay from a cursor), then live events.

This process's events arrive through the in-process EventHub; the event table is the
source for replays and for catching up a subscriber whose buffer overflowed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from workengine.domain import transitions, validation
from workengine.domain.errors import InvalidArgument, Unavailable
from workengine.domain.model import EventKind, TaskEvent
from workengine.engine.base import Deps, require_orchestrator, require_task
from workengine.engine.events import Subscription, WatchTarget

SNAPSHOT_LIMIT = 1_000
REPLAY_PAGE = 500


class Watcher:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def _validate(self, target: WatchTarget, after_cursor: int) -> None:
        chosen = [f for f in ("task_id", "orchestrator_id", "workspace_id") if getattr(target, f)]
        if len(chosen) != 1:
            raise InvalidArgument("target", "set exactly one of task_id, orchestrator_id, workspace_id")
        if after_cursor < 0:
            raise InvalidArgument("after_cursor", "must not be negative")
        validation.require_id(chosen[0], getattr(target, chosen[0]))
        async with self._deps.db.transaction() as tx:
            if target.task_id:
                await require_task(tx, target.task_id)
            elif target.orchestrator_id:
                await require_orchestrator(tx, target.orchestrator_id)

    async def _replay(self, target: WatchTarget, after_cursor: int) -> list[TaskEvent]:
        async with self._deps.db.transaction() as tx:
            return await tx.events_after(
                after_cursor, target.task_id, target.orchestrator_id, target.workspace_id, REPLAY_PAGE
            )

    async def _snapshot(self, target: WatchTarget) -> list[TaskEvent]:
        async with self._deps.db.transaction() as tx:
            head = await tx.latest_event_cursor()
            tasks = await tx.snapshot_tasks(
                target.task_id, target.orchestrator_id, target.workspace_id, SNAPSHOT_LIMIT
            )
        now = self._deps.clock()
        return [
            TaskEvent(
                cursor=head,
                kind=EventKind.SNAPSHOT,
                occurred_at=now,
                task=t,
                attempt=t.attempt,
                progress=t.progress,
                message=t.progress_message,
            )
            for t in tasks
        ]

    async def _backlog(self, target: WatchTarget, after_cursor: int) -> AsyncIterator[TaskEvent]:
        cursor = after_cursor
        while page := await self._replay(target, cursor):
            for event in page:
                cursor = event.cursor
                yield event
            if len(page) < REPLAY_PAGE:
                return

    async def watch(self, target: WatchTarget, after_cursor: int = 0) -> AsyncIterator[TaskEvent]:
        await self._validate(target, after_cursor)
        # Subscribe before reading, so nothing committed in between is missed.
        subscription = self._deps.hub.subscribe(target)
        try:
            delivered: set[int] = set()
            last = after_cursor
            if after_cursor:
                async for event in self._backlog(target, after_cursor):
                    delivered.add(event.cursor)
                    last = event.cursor
                    if target.wants(event.kind):
                        yield event
                    if self._ends_stream(target, event):
                        return
            else:
                for event in await self._snapshot(target):
                    last = event.cursor
                    if target.wants(event.kind):
                        yield event
                    if self._ends_stream(target, event):
                        return
            async for event in self._live(subscription, target, delivered, last):
                if target.wants(event.kind):
                    yield event
                if self._ends_stream(target, event):
                    return
        finally:
            self._deps.hub.unsubscribe(subscription)

    async def _live(
        self, subscription: Subscription, target: WatchTarget, delivered: set[int], last: int
    ) -> AsyncIterator[TaskEvent]:
        while True:
            if subscription.overflowed:
                # Too slow for the buffer: drop it and catch up from the event table instead.
                while not subscription.queue.empty():
                    subscription.queue.get_nowait()
                subscription.overflowed = False
                async for replayed in self._backlog(target, last):
                    delivered.add(replayed.cursor)
                    last = replayed.cursor
                    yield replayed
                continue
            live = await subscription.next()
            if live is None:
                raise Unavailable(f"server is shutting down; reconnect with after_cursor={last}")
            if live.cursor in delivered:  # already sent by a replay; each arrives live once
                delivered.discard(live.cursor)
                continue
            last = max(last, live.cursor)
            yield live

    @staticmethod
    def _ends_stream(target: WatchTarget, event: TaskEvent) -> bool:
        return bool(target.task_id) and event.task.status in transitions.FINISHED
