"""In-process fan-out of committed task events to this process's subscribers.

The event feed publishes what it reads from the event log; each subscriber has a bounded
queue, so a slow subscriber never holds up the feed or the others: when its queue is full it
is marked overflowed and catches up from the event table instead of growing without bound.
Subscriptions are indexed by what they watch, so publishing costs O(matching subscribers).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from workengine.domain.model import EventKind, EventScope, TaskEvent

DEFAULT_BUFFER = 1_000


@dataclass(frozen=True)
class WatchTarget:
    """Exactly one of the three ids is set, or none and `everything` (every task: the
    dashboard's overview, which no RPC can ask for); `kinds` empty means every kind.

    The hub delivers every event in scope; `wants` is for the consumer to apply, so a task
    watch still sees the terminal event that ends it even when it filters that kind out.
    """

    task_id: str = ""
    orchestrator_id: str = ""
    workspace_id: str = ""
    kinds: frozenset[EventKind] = field(default_factory=frozenset)
    everything: bool = False

    def wants(self, kind: EventKind) -> bool:
        return not self.kinds or kind in self.kinds

    @property
    def scope(self) -> tuple[EventScope, str]:
        if self.everything:
            return EventScope.ALL, ""
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
        (EventScope.ALL, ""),
    )


class Subscription:
    """A bounded queue of events with one waiting consumer.

    A deque and a single waiter future rather than an asyncio.Queue: at thousands of
    deliveries per second the per-event cost of waiting is what the server spends most on.
    """

    def __init__(self, target: WatchTarget, buffer: int) -> None:
        self.target = target
        self._buffer = buffer
        self._events: deque[TaskEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.overflowed = False
        # Once overflowed: the feed position right before the first event that did not fit.
        # Everything in scope up to it is queued, so catching up starts there.
        self.resume_after = 0

    def offer(self, event: TaskEvent, previous_position: int) -> bool:
        """Queues the event; False when this offer found the queue full and overflowed it."""
        if self.overflowed:
            return True
        if len(self._events) >= self._buffer:
            self.overflowed = True
            self.resume_after = previous_position
            self._wake()
            return False
        self._events.append(event)
        self._wake()
        return True

    def take_queued(self) -> list[TaskEvent]:
        """Empties the queue and clears the overflow mark: the caller sends these, then
        catches up from the event table after `resume_after`."""
        queued = list(self._events)
        self._events.clear()
        self.overflowed = False
        return queued

    @property
    def queued(self) -> int:
        return len(self._events)

    def close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self) -> TaskEvent | None:
        """The next event, or None once the hub is closed (server shutting down)."""
        while not self._events and not self._closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._closed:
            return None
        return self._events.popleft()


class EventHub:
    def __init__(self, buffer: int = DEFAULT_BUFFER) -> None:
        self._buffer = buffer
        self._by_scope: defaultdict[tuple[EventScope, str], set[Subscription]] = defaultdict(set)
        self._count = 0
        self._closed = False
        # Subscribers switched to catching up from the table because their queue filled.
        self.overflows = 0
        # The last position published (the feed's position).
        self.position = 0

    def subscribe(self, target: WatchTarget) -> Subscription:
        subscription = Subscription(target, self._buffer)
        if self._closed:
            subscription.close()
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
        self._closed = True
        for subscribers in self._by_scope.values():
            for subscription in subscribers:
                subscription.close()

    @property
    def subscriber_count(self) -> int:
        return self._count
