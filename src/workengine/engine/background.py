"""The engine's background work: one runner for every periodic duty, and stopping background
tasks within a bounded time.

A duty is a name, an interval and one pass of its work (a statement, run in batches until
nothing is left): the lease reaper, the retry scheduler, the statistics fold, the attempt
grouping (the engine's), event pruning and the event feed's safety poll (the feed's). The runner
gives each its own loop: sleep the interval, run the pass; a failing pass never stops the loop
and is logged once per streak of failures of one kind (and when the streak ends); `close()`
stops every loop.

Shutdown must end even if a task does not: one that lost its cancellation (Python 3.11's
`asyncio.wait_for` dropped a cancellation that arrived just after the awaited result, which
once hung a test run for over ten minutes) or one stuck in a wait that ignores it. Such a
task is logged, cancelled once more and left behind, so the pool still gets closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass

from workengine.domain.errors import Unavailable

log = logging.getLogger(__name__)

# Above the longest a cancelled statement takes to end: psycopg asks the server to cancel it
# (up to 5 s) and then waits for the query to end (up to 5 s more) before giving up.
STOP_TIMEOUT = 15.0


async def stop(tasks: Collection[asyncio.Task[None]], what: str, grace: float = STOP_TIMEOUT) -> None:
    """Cancels `tasks` and waits at most `grace` seconds for them to end.

    Their failures are logged, never raised: closing must go on to the pool. The caller's
    own cancellation is not swallowed (awaiting a cancelled task and catching its
    CancelledError would also catch the caller's).
    """
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=grace)
    for task in done:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s task failed", what, exc_info=error)
    for task in pending:
        # Once more, unawaited: a task that lost the first cancellation usually takes a second.
        task.cancel()
        log.error("%s task did not stop within %.0f s of its cancellation: %r", what, grace, task)


@dataclass(frozen=True)
class Duty:
    name: str
    interval: float
    run: Callable[[], Awaitable[object]]
    # Run a pass at once, before the first interval.
    at_start: bool = False


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
        await stop(tasks, "maintenance")

    @staticmethod
    async def _every_interval(duty: Duty) -> None:
        failing: type[Exception] | None = None  # the kind of the current streak of failures
        failures = 0
        if not duty.at_start:
            await asyncio.sleep(duty.interval)
        while True:
            try:
                await duty.run()
            except Exception as error:  # a duty must outlive any one failure
                failures += 1
                if type(error) is not failing:
                    failing = type(error)
                    _report(duty, error)
            else:
                if failures:
                    log.info("%s recovered after %d failed passes", duty.name, failures)
                failing, failures = None, 0
            await asyncio.sleep(duty.interval)


def _report(duty: Duty, error: Exception) -> None:
    """The first failure of a streak: a database outage in a line, anything else with its trace."""
    if isinstance(error, Unavailable):
        log.warning("%s: database unavailable; retrying every %.3g s", duty.name, duty.interval)
    else:
        log.error("%s failed; retrying every %.3g s", duty.name, duty.interval, exc_info=error)
