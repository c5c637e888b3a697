"""The duties that move tasks on time: the lease reaper and the retry scheduler.

Each is one statement run in batches until nothing is left, on the maintenance runner
(engine/background.py), like the engine's other duties. Several processes run them at once:
the statements take their rows FOR NO KEY UPDATE SKIP LOCKED, so each expired lease or due
retry is handled exactly once, and the event each writes wakes waiting claims everywhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from workengine.domain.model import TaskEvent
from workengine.engine.feed import EventFeed
from workengine.store.database import Database
from workengine.store.session import Session


@dataclass(frozen=True)
class MaintenanceSettings:
    # How often expired leases and due retries are looked for: the most a task waits past
    # its lease or retry time, beyond the time a batch takes.
    interval: float = 1.0
    batch: int = 500


class Deadlines:
    """Moves the tasks whose time has come: expired leases back to TODO (or FAILED, out of
    attempts) and BLOCKED tasks whose retry time came back to TODO."""

    def __init__(self, db: Database, feed: EventFeed, batch: int) -> None:
        self._db = db
        self._feed = feed
        self._batch = batch

    async def reap_expired_leases(self) -> int:
        return await self._drain(lambda session: session.attempts.reap_expired_leases(self._batch))

    async def release_due_retries(self) -> int:
        return await self._drain(lambda session: session.attempts.release_due_retries(self._batch))

    async def _drain(self, step: Callable[[Session], Awaitable[list[TaskEvent]]]) -> int:
        async def moved(session: Session) -> int:
            events = await step(session)
            self._feed.committed(events)
            return len(events)

        return await drain(self._db, moved, self._batch)


async def drain(db: Database, step: Callable[[Session], Awaitable[int]], batch: int) -> int:
    """Runs `step` (one statement that handles up to `batch` rows and says how many), each
    time in its own transaction, until a batch comes back short; how many rows in all."""
    total = 0
    while True:
        async with db.autocommit() as session:  # one statement a batch
            done = await step(session)
        total += done
        if done < batch:
            return total
