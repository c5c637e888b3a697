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
    """Exactly one of the three ids is set; `kinds` empty means every kind."""

    task_id: str = ""
    orchestrator_id: str = ""
    workspace_id: str = ""
    kinds: frozenset[EventKind] = field(default_factory=frozenset)

    def matches(self, event: TaskEvent) -> bool:
        if self.kinds and event.kind not in self.kinds:
            return False
        task = event.task
        if self.task_id:
            return task.id == self.task_id
        if self.orchestrator_id:
            return task.orchestrator_id == self.orchestrator_id
        return task.workspace_id == self.workspace_id


class Subscription:
    def __init__(self, target: WatchTarget, buffer: int) -> None:
        self.target = target
        self.queue: asyncio.Queue[TaskEvent] = asyncio.Queue(maxsize=buffer)
        self.overflowed = False

    def offer(self, event: TaskEvent) -> None:
        if self.overflowed or not self.target.matches(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True


class EventHub:
    def __init__(self, buffer: int = DEFAULT_BUFFER) -> None:
        self._buffer = buffer
        self._subscriptions: set[Subscription] = set()

    def subscribe(self, target: WatchTarget) -> Subscription:
        subscription = Subscription(target, self._buffer)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(self, events: Iterable[TaskEvent]) -> None:
        for event in events:
            for subscription in self._subscriptions:
                subscription.offer(event)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)
