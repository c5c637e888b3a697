"""Background duties every server process runs, on one runner.

A duty is a name, an interval and one pass of its work (a statement, run in batches until
nothing is left): the lease reaper, the retry scheduler, event pruning, the statistics fold and
the event feed's safety poll. The runner gives each its own loop: sleep the interval, run the
pass; a pass that fails is logged once per streak of failures (and the streak's end), never
stops the loop, and `close()` stops every loop within a bounded time.

Several processes may run the same duties at once: their statements take rows FOR NO KEY
UPDATE SKIP LOCKED or an advisory lock, so each row is handled once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from workengine.domain.errors import Unavailable
from workengine.domain.model import TaskEvent
from workengine.engine import background
from workengine.engine.feed import EventFeed
from workengine.store.database import Database
from workengine.store.session import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaintenanceSettings:
    # How often expired leases and due retries are looked for: the most a task waits past
    # its lease or retry time, beyond the time a batch takes.
    interval: float = 1.0
    batch: int = 500


@dataclass(frozen=True)
class Duty:
    name: str
    interval: float
    run: Callable[[], Awaitable[object]]


class MaintenanceRunner:
    def __init__(self, duties: Sequence[Duty]) -> None:
        self.duties = tuple(duties)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Starts every duty's loop on the running loop; later calls do nothing."""
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._every_interval(duty)) for duty in self.duties]

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        await background.stop(tasks, "maintenance")

    @staticmethod
    async def _every_interval(duty: Duty) -> None:
        failures = 0
        while True:
            await asyncio.sleep(duty.interval)
            try:
                await duty.run()
            except Exception as error:  # a duty must outlive any one failure
                failures += 1
                if failures == 1 and isinstance(error, Unavailable):
                    log.warning("%s: database unavailable; retrying every %.3g s", duty.name, duty.interval)
                elif failures == 1:
                    log.exception("%s failed; retrying every %.3g s", duty.name, duty.interval)
                continue
            if failures:
                log.info("%s recovered after %d failed passes", duty.name, failures)
                failures = 0


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
        total = 0
        while True:
            async with self._db.autocommit() as session:  # one statement a batch
                events = await step(session)
            self._feed.committed(events)
            total += len(events)
            if len(events) < self._batch:
                return total
