"""In-process fan-out of committed task events to WatchTaskProgress subscribers.

The engine publishes after each commit; each subscriber has a bounded queue, so a slow
subscriber never holds up the publisher or the others: when its queue is full it is marked
overflowed and its stream ends with a clear error instead of growing without bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from workengine.domain.model import EventKind, TaskEvent

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

    def covers(self, event: TaskEvent) -> bool:
        task = event.task
        if self.task_id:
            return task.id == self.task_id
        if self.orchestrator_id:
            return task.orchestrator_id == self.orchestrator_id
        return task.workspace_id == self.workspace_id


class Subscription:
    def __init__(self, target: WatchTarget, buffer: int, closed: asyncio.Event) -> None:
        self.target = target
        self.queue: asyncio.Queue[TaskEvent] = asyncio.Queue(maxsize=buffer)
        self.overflowed = False
        self._closed = closed

    def offer(self, event: TaskEvent) -> None:
        if self.overflowed or not self.target.covers(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True

    async def next(self) -> TaskEvent | None:
        """The next event, or None once the hub is closed (server shutting down)."""
        if self._closed.is_set():
            return None
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
        self._subscriptions: set[Subscription] = set()
        self._closed = asyncio.Event()

    def subscribe(self, target: WatchTarget) -> Subscription:
        subscription = Subscription(target, self._buffer, self._closed)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(self, events: Iterable[TaskEvent]) -> None:
        for event in events:
            for subscription in self._subscriptions:
                subscription.offer(event)

    def close(self) -> None:
        """Wakes every subscriber so its stream can end before the server stops."""
        self._closed.set()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)
