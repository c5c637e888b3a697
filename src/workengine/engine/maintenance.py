"""Background duties every server process runs: the lease reaper and the retry scheduler.

Each duty is one statement run in batches on an interval. Several processes may run them at
once: the statements take their rows FOR NO KEY UPDATE SKIP LOCKED, so each expired lease or
due retry is handled exactly once, and the event each writes wakes waiting claims everywhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from workengine.domain.errors import Unavailable
from workengine.domain.model import TaskEvent
from workengine.engine import background
from workengine.engine.feed import EventFeed
from workengine.store.database import Database
from workengine.store.transaction import Transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaintenanceSettings:
    # How often expired leases and due retries are looked for: the most a task waits past
    # its lease or retry time, beyond the time a batch takes.
    interval: float = 1.0
    batch: int = 500


class Maintenance:
    def __init__(self, db: Database, feed: EventFeed, settings: MaintenanceSettings | None = None) -> None:
        self._db = db
        self._feed = feed
        self.settings = settings or MaintenanceSettings()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if self._tasks:
            return
        self._spawn(self._every_interval("lease reaper", self.reap_expired_leases))
        self._spawn(self._every_interval("retry scheduler", self.release_due_retries))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coroutine))

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        await background.stop(tasks, "maintenance")

    async def _every_interval(self, name: str, duty: Callable[[], Awaitable[int]]) -> None:
        while True:
            await asyncio.sleep(self.settings.interval)
            try:
                await duty()
            except Unavailable:
                log.warning("%s skipped: database unavailable", name)
            except Exception:  # a duty must outlive any one failure
                log.exception("%s failed", name)

    async def reap_expired_leases(self) -> int:
        """Returns every task whose lease expired to TODO (or FAILED, out of attempts)."""
        return await self._drain(lambda tx: tx.reap_expired_leases(self.settings.batch))

    async def release_due_retries(self) -> int:
        """Returns every BLOCKED task whose retry time came to TODO."""
        return await self._drain(lambda tx: tx.release_due_retries(self.settings.batch))

    async def _drain(self, step: Callable[[Transaction], Awaitable[list[TaskEvent]]]) -> int:
        total = 0
        while True:
            async with self._db.transaction() as tx:
                events = await step(tx)
            self._feed.committed(events)
            total += len(events)
            if len(events) < self.settings.batch:
                return total
