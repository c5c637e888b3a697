"""This process's view of the event log: one tailer fanning committed events out to watches.

The tailer reads task_events from its position onward, only below the commit watermark (see
queries.sql), so what it publishes is in position order with no holes. It is woken by this
process's own commits, by NOTIFY from other processes (one LISTEN connection per process),
and by a poll: a slow safety net with LISTEN, the only source without it (`listen=False`, for
PgBouncer transaction pooling, where LISTEN does not work). It reads only while someone in this
process is subscribed, so a process nobody watches pays nothing for it. The poll and the
pruning of old events are the feed's two duties, on the maintenance runner
(engine/background.py).

NOTIFY is sent after commit, outside the writing transaction, coalesced to at most one per
`notify_interval`: a notifying commit takes PostgreSQL's global notify-queue lock, and
keeping NOTIFY out of the write transactions keeps them from serializing on it. The payload
is only the highest position committed; receivers read the rows, so size never matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from workengine.domain.errors import Unavailable
from workengine.domain.model import TaskEvent
from workengine.engine import background
from workengine.engine.events import EventHub, Subscription, WatchTarget
from workengine.engine.observer import NO_OBSERVER, Observer
from workengine.store.database import Database
from workengine.store.listener import CHANNEL, Listener

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedSettings:
    listen: bool = True
    # Without LISTEN: how often an active tailer polls the event table.
    poll_interval: float = 0.1
    # With LISTEN: a poll anyway, for a NOTIFY lost to a process that died right after commit.
    safety_poll_interval: float = 2.0
    # First re-read delay while committed events wait below an older, still-open transaction.
    held_back_delay: float = 0.005
    held_back_max_delay: float = 0.25
    notify_interval: float = 0.01
    page_size: int = 500
    # Events queued per subscriber before it is switched to catching up from the table.
    subscriber_buffer: int = 1_000
    retention: timedelta = timedelta(days=7)
    prune_interval: float = 60.0
    prune_batch: int = 5_000


class EventFeed:
    def __init__(
        self,
        db: Database,
        hub: EventHub,
        settings: FeedSettings | None = None,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        self._db = db
        self._hub = hub
        self._observer = observer
        self.settings = settings or FeedSettings()
        self._position: int | None = None  # None: not tailing (nobody subscribed)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._notify_wanted = asyncio.Event()
        self._notify_position = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._duties = background.MaintenanceRunner(
            [
                background.Duty("event feed poll", self.poll_interval, self.poll),
                background.Duty("event pruning", self.settings.prune_interval, self.prune),
            ]
        )
        self._closed = False
        self.listener: Listener | None = None

    def start(self) -> None:
        """Starts the background tasks on the running loop; later calls, and calls after
        close(), do nothing."""
        if self._tasks or self._closed:
            return
        self._spawn(self._tail_loop(), self._notify_loop())
        self._duties.start()
        if self.settings.listen:
            self.listener = Listener(self._db.url, self._on_notify)
            self._spawn(self.listener.run())

    def _spawn(self, *coroutines: Coroutine[Any, Any, None]) -> None:
        self._tasks.extend(asyncio.get_running_loop().create_task(c) for c in coroutines)

    async def close(self) -> None:
        self._closed = True
        tasks, self._tasks = self._tasks, []
        await self._duties.close()
        await background.stop(tasks, "event feed")

    @property
    def position(self) -> int:
        """The last position published to this process's subscribers."""
        return self._hub.position

    # Subscribers

    async def subscribe(self, target: WatchTarget) -> Subscription:
        """Subscribes and makes sure the tailer is positioned before the caller reads the log.

        Whatever the caller then reads (a snapshot or a replay) is at or past the tailer's
        position, so the two overlap and nothing falls between them; the caller skips the
        overlap by position.
        """
        self.start()
        subscription = self._hub.subscribe(target)
        try:
            async with self._lock:
                if self._position is None:
                    async with self._db.autocommit() as session:
                        self._position = self._hub.position = await session.events.head_position()
                    self._wake.set()  # the tailer was idle without a timeout: start polling
        except BaseException:
            self.unsubscribe(subscription)
            raise
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._hub.unsubscribe(subscription)
        if not self._hub.subscriber_count:
            self._position = None

    # Writers

    def committed(self, events: Sequence[TaskEvent]) -> None:
        """Called after a transaction that recorded `events` has committed."""
        if not events:
            return
        self._observer.committed(events)
        self.start()
        self._notify_position = max(self._notify_position, max(e.cursor for e in events))
        self._notify_wanted.set()
        if self._position is not None:  # else nobody here is subscribed: subscribe() wakes it
            self._wake.set()

    @property
    def poll_interval(self) -> float:
        """How often `poll` should run: a safety net with LISTEN, the only source without it."""
        return self.settings.safety_poll_interval if self.settings.listen else self.settings.poll_interval

    async def poll(self) -> None:
        """Wakes the tailer to read the event log, if anyone here is subscribed."""
        if self._position is not None:
            self._wake.set()

    def _on_notify(self, payload: str) -> None:
        position = self._position
        if position is None or (payload.isdigit() and int(payload) <= position):
            return  # nobody here is subscribed (subscribe() wakes the tailer), or already published
        self._wake.set()

    # Background work

    async def _tail_loop(self) -> None:
        held_back_delay = self.settings.held_back_delay
        failures = 0
        held_back = False
        while True:
            timeout = None
            if held_back:
                timeout = held_back_delay
                held_back_delay = min(held_back_delay * 2, self.settings.held_back_max_delay)
            else:
                held_back_delay = self.settings.held_back_delay
            # Not asyncio.wait_for: on Python 3.11 it returns instead of raising when the
            # cancellation from close() lands after the wake-up, and this loop then ran forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            try:
                held_back = await self._read()
                failures = 0
            except Exception as error:  # the loop must outlive any one failure
                failures += 1
                if isinstance(error, Unavailable):
                    if failures == 1:
                        log.warning("event feed cannot read the event log; retrying")
                else:
                    log.exception("event feed read failed; retrying")
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))
                self._wake.set()

    async def _read(self) -> bool:
        """Publishes every committed event past the position; True when some wait on an older
        open transaction (visible, but above the watermark)."""
        async with self._lock:
            while (position := self._position) is not None:
                async with self._db.autocommit() as session:
                    page = await session.events.tail(position, self.settings.page_size)
                if self._position is None:  # everyone left while we read
                    return False
                if page.last_position is not None:
                    self._hub.publish(page.events)
                    self._observer.delivered(page.events)
                    position = self._position = self._hub.position = page.last_position
                if page.size < self.settings.page_size:
                    return page.head > position
        return False

    async def _notify_loop(self) -> None:
        while True:
            await self._notify_wanted.wait()
            self._notify_wanted.clear()
            try:
                # On its own (autocommit): sent at its implicit commit, one round trip, not three.
                async with self._db.autocommit() as session:
                    await session.events.notify(CHANNEL, str(self._notify_position))
            except Unavailable:
                pass  # other processes' polls pick the events up
            except Exception:
                log.exception("event notification failed")
            await asyncio.sleep(self.settings.notify_interval)

    async def prune(self) -> int:
        """Deletes events older than the retention, oldest first; returns how many."""
        seconds = self.settings.retention.total_seconds()
        total = 0
        while True:
            async with self._db.transaction() as session:  # the pruning lock lasts until its end
                deleted = await session.events.prune(seconds, self.settings.prune_batch)
            if not deleted:  # None: another process holds the pruning lock
                return total
            total += deleted
            if deleted < self.settings.prune_batch:
                return total
