"""What the engine tells whoever watches it run (the metrics, when they are on).

The engine never imports a metrics library: it calls an Observer, whose methods do nothing
unless a subclass (workengine.telemetry) counts. Every change of a task reaches `committed`
once, in the process whose transaction made it, so counts kept there add up over replicas
without double counting.
"""

from __future__ import annotations

from collections.abc import Sequence

from workengine.domain.model import TaskEvent


class Observer:
    def committed(self, events: Sequence[TaskEvent]) -> None:
        """After a transaction of this process that recorded `events` has committed."""

    def delivered(self, events: Sequence[TaskEvent]) -> None:
        """When the event feed has handed `events` (anyone's, in position order) to this
        process's watches and waiting claims."""


NO_OBSERVER = Observer()
