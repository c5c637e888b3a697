"""Stopping the engine's background tasks within a bounded time.

Shutdown must end even if a task does not: one that lost its cancellation (Python 3.11's
`asyncio.wait_for` dropped a cancellation that arrived just after the awaited result, which
once hung a test run for over ten minutes) or one stuck in a wait that ignores it. Such a
task is logged, cancelled once more and left behind, so the pool still gets closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

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
