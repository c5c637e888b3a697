"""WatchTaskProgress: a snapshot (or an exact replay from a cursor), then live events.

Live events come from the process's event feed; the event table is the source for replays
and for catching up a subscriber whose buffer overflowed. Everything a stream sends is in
position order: an event at or below the last position sent (or already reflected in the
snapshot) is skipped, which is what makes the overlap between a read of the table and the
feed harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import timedelta

from workengine.domain import transitions, validation
from workengine.domain.errors import OutOfRange, Unavailable
from workengine.domain.model import Bookmark, EventKind, EventScope, Snapshot, Task, TaskEvent
from workengine.engine.base import Deps, require_orchestrator, require_task
from workengine.engine.events import Subscription, WatchTarget

SNAPSHOT_LIMIT = 1_000
SNAPSHOT_SETTLE_SECONDS = 0.5
REPLAY_PAGE = 500


class Watcher:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def _watched_task(self, target: WatchTarget) -> Task | None:
        """The watched task (as it is now) for a task watch; NOT_FOUND for an unknown target."""
        async with self._deps.db.autocommit() as session:
            if target.task_id:
                return await require_task(session, target.task_id)
            if target.orchestrator_id:
                await require_orchestrator(session, target.orchestrator_id)
        return None

    async def _snapshot(self, target: WatchTarget) -> tuple[Snapshot, list[TaskEvent]]:
        """The scope's tasks and the position they reflect.

        When the snapshot already shows events above the watermark (a write transaction that
        started earlier is still open), it is taken again a moment later, so that its cursor
        covers everything it shows and a resume from that cursor repeats nothing. After
        SNAPSHOT_SETTLE_SECONDS it is used as it is: the stream skips the events it already
        shows; only a resume from its cursor would repeat them.
        """
        scope, scope_id = target.scope
        pause, waited = 0.002, 0.0
        while True:
            async with self._deps.db.autocommit() as session:
                snapshot = await session.events.snapshot(scope, scope_id, SNAPSHOT_LIMIT)
            if not snapshot.seen_positions or waited >= SNAPSHOT_SETTLE_SECONDS:
                break
            await asyncio.sleep(pause)
            waited += pause
            pause = min(pause * 2, 0.05)
        now = self._deps.clock()
        return snapshot, [
            TaskEvent(
                cursor=snapshot.position,
                kind=EventKind.SNAPSHOT,
                occurred_at=now,
                task=t,
                attempt=t.attempt,
                progress=t.progress,
                message=t.progress_message,
            )
            for t in snapshot.tasks
        ]

    async def _backlog(self, target: WatchTarget, after: int, *, resuming: bool) -> AsyncIterator[TaskEvent]:
        """Every committed event in scope after `after`, from the event table.

        Refuses with OUT_OF_RANGE when retention already deleted events after `after` (the
        horizon is read with each page, so a concurrent prune cannot open a silent gap), or,
        for a client's resume cursor, when `after` is beyond anything the log has held.
        """
        scope, scope_id = target.scope
        while True:
            async with self._deps.db.autocommit() as session:
                page = await session.events.after(scope, scope_id, after, REPLAY_PAGE)
            if after < page.pruned_through:
                raise OutOfRange(
                    "after_cursor",
                    f"events after {after} were pruned by the event retention (kept: after "
                    f"{page.pruned_through}); watch again without a cursor for a fresh snapshot",
                )
            if resuming and after > max(page.head, page.pruned_through):
                raise OutOfRange("after_cursor", f"{after} is ahead of the event log (head {page.head})")
            resuming = False
            for event in page.events:
                yield event
            if page.last_position is not None:
                after = page.last_position
            if page.size < REPLAY_PAGE:
                return

    async def watch(
        self,
        target: WatchTarget,
        after_cursor: int = 0,
        keep_open: bool = False,
        bookmark_interval: timedelta | None = None,
    ) -> AsyncGenerator[TaskEvent | Bookmark, None]:
        # A generator, so a caller that stops early can close it (aclose) and end its subscription.
        validation.watch_request(
            target.task_id,
            target.orchestrator_id,
            target.workspace_id,
            after_cursor,
            bookmark_interval,
            target.everything,
        )
        watched_task = await self._watched_task(target)
        ends_stream = self._ends_stream if not keep_open else lambda _target, _event: False
        # Subscribed before reading the log, so the feed covers whatever commits after the read.
        subscription = await self._deps.feed.subscribe(target)
        try:
            last = after_cursor
            seen: frozenset[int] = frozenset()
            if after_cursor:
                opening: AsyncIterator[TaskEvent] = self._backlog(target, after_cursor, resuming=True)
            else:
                snapshot, snapshot_events = await self._snapshot(target)
                last, seen = snapshot.position, snapshot.seen_positions
                opening = _iterate(snapshot_events)
            async for event in opening:
                last = event.cursor
                if target.wants(event.kind):
                    yield event
                if ends_stream(target, event):
                    return
            if watched_task and watched_task.status in transitions.FINISHED and not keep_open:
                return  # resumed after its terminal event: nothing more will come
            idle_seconds = bookmark_interval.total_seconds() if bookmark_interval else None
            async for live in self._live(subscription, target, last, seen, idle_seconds):
                if isinstance(live, Bookmark):
                    yield live
                    continue
                if target.wants(live.kind):
                    yield live
                if ends_stream(target, live):
                    return
        finally:
            self._deps.feed.unsubscribe(subscription)

    async def _live(
        self,
        subscription: Subscription,
        target: WatchTarget,
        last: int,
        seen: frozenset[int],
        bookmark_seconds: float | None,
    ) -> AsyncIterator[TaskEvent | Bookmark]:
        while True:
            if subscription.overflowed:
                # Too slow for the buffer: send what it holds, then catch up from the event
                # table from where the feed had to start dropping, while new events queue again.
                # The start is taken now: the queue may overflow again while the held events are
                # sent, which moves resume_after past the events dropped the first time.
                dropped_after = subscription.resume_after
                for queued in subscription.take_queued():
                    if queued.cursor > last and queued.cursor not in seen:
                        last = queued.cursor
                        yield queued
                async for replayed in self._backlog(target, max(last, dropped_after), resuming=False):
                    if replayed.cursor > last and replayed.cursor not in seen:
                        last = replayed.cursor
                        yield replayed
                continue
            try:
                # Not asyncio.wait_for: on Python 3.11 it drops a cancellation (the client
                # went away) that lands after the next event arrived, and the watch went on.
                async with asyncio.timeout(bookmark_seconds):
                    live = await subscription.next()
            except TimeoutError:
                # Idle: everything in scope up to the feed's position has been sent (nothing
                # is queued, nothing was dropped), so that position is a safe resume cursor.
                position = self._deps.feed.position
                if not subscription.queued and not subscription.overflowed and position > last:
                    last = position
                    yield Bookmark(position, self._deps.clock())
                continue
            if live is None:
                raise Unavailable(f"server is shutting down; reconnect with after_cursor={last}")
            if live.cursor <= last or live.cursor in seen:
                continue
            last = live.cursor
            yield live

    @staticmethod
    def _ends_stream(target: WatchTarget, event: TaskEvent) -> bool:
        return target.scope[0] is EventScope.TASK and event.task.status in transitions.FINISHED


async def _iterate(events: list[TaskEvent]) -> AsyncIterator[TaskEvent]:
    for event in events:
        yield event
