"""In-process fan-out of committed task events to this process's subscribers.

The event feed publishes what it reads from the event log; each subscriber has a bounded
queue, so a slow subscriber never holds up the feed or the others: when its queue is full it
is marked overflowed and catches up from the event table instead of growing without bound.
Subscriptions are indexed by what they watch, so publishing costs O(matching subscribers).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from workengine.domain.model import EventKind, EventScope, TaskEvent

DEFAULT_BUFFER = 1_000


@dataclass(frozen=True)
class WatchTarget:
    """Exactly one of the three ids is set; `kinds` empty means every kind.

    The hub delivers every event in scope; `wants` is for the consumer to apply, so a task
    watch still sees the terminal event that ends it even when it filters that kind out.
    """

    task_id: str = ""
    orchestrator_id: str = ""
    workspace_id: str = ""
    kinds: frozenset[EventKind] = field(default_factory=frozenset)

    def wants(self, kind: EventKind) -> bool:
        return not self.kinds or kind in self.kinds

    @property
    def scope(self) -> tuple[EventScope, str]:
        if self.task_id:
            return EventScope.TASK, self.task_id
        if self.orchestrator_id:
            return EventScope.ORCHESTRATOR, self.orchestrator_id
        return EventScope.WORKSPACE, self.workspace_id


def scope_keys(event: TaskEvent) -> tuple[tuple[EventScope, str], ...]:
    task = event.task
    return (
        (EventScope.TASK, task.id),
        (EventScope.ORCHESTRATOR, task.orchestrator_id),
        (EventScope.WORKSPACE, task.workspace_id),
    )


class Subscription:
    def __init__(self, target: WatchTarget, buffer: int, closed: asyncio.Event) -> None:
        self.target = target
        self.queue: asyncio.Queue[TaskEvent] = asyncio.Queue(maxsize=buffer)
        self.overflowed = False
        # Once overflowed: the feed position right before the first event that did not fit.
        # Everything in scope up to it is in the queue, so catching up starts there.
        self.resume_after = 0
        self._closed = closed

    def offer(self, event: TaskEvent, previous_position: int) -> bool:
        """Queues the event; False when this offer found the queue full and overflowed it."""
        if self.overflowed:
            return True
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self.resume_after = previous_position
            return False
        return True

    def take_queued(self) -> list[TaskEvent]:
        """Empties the queue and clears the overflow mark: the caller sends these, then
        catches up from the event table after `resume_after`."""
        queued = []
        while not self.queue.empty():
            queued.append(self.queue.get_nowait())
        self.overflowed = False
        return queued

    async def next(self) -> TaskEvent | None:
        """The next event, or None once the hub is closed (server shutting down)."""
        if self._closed.is_set():
            return None
        if not self.queue.empty():
            return self.queue.get_nowait()
        getter = asyncio.ensure_future(self.queue.get())
        closing = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait((getter, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not getter.done():
                getter.cancel()
        return getter.result() if getter.done() and not getter.cancelled() else None


class EventHub:
    def __init__(self, buffer: int = DEFAULT_BUFFER) -> None:
        self._buffer = buffer
        self._by_scope: defaultdict[tuple[EventScope, str], set[Subscription]] = defaultdict(set)
        self._count = 0
        self._closed = asyncio.Event()
        # Subscribers switched to catching up from the table because their queue filled.
        self.overflows = 0
        # The last position published (the feed's position).
        self.position = 0

    def subscribe(self, target: WatchTarget) -> Subscription:
        subscription = Subscription(target, self._buffer, self._closed)
        self._by_scope[target.scope].add(subscription)
        self._count += 1
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        key = subscription.target.scope
        subscribers = self._by_scope.get(key)
        if subscribers is None or subscription not in subscribers:
            return
        subscribers.discard(subscription)
        self._count -= 1
        if not subscribers:
            del self._by_scope[key]

    def publish(self, events: Iterable[TaskEvent]) -> None:
        """Events in position order, each after everything the feed published before it."""
        for event in events:
            for key in scope_keys(event):
                for subscription in self._by_scope.get(key, ()):
                    if not subscription.offer(event, self.position):
                        self.overflows += 1
            self.position = event.cursor

    def close(self) -> None:
        """Wakes every subscriber so its stream can end before the server stops."""
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def subscriber_count(self) -> int:
        return self._count
