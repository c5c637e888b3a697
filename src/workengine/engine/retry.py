"""Re-running a use case whose transaction the database aborted to resolve a conflict.

Every use case is one transaction and publishes its events only after commit, so running it
again from the start after a `TransactionConflict` repeats nothing that took effect.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from workengine.domain.errors import TransactionConflict

ATTEMPTS = 4
FIRST_BACKOFF_SECONDS = 0.005

P = ParamSpec("P")
R = TypeVar("R")


def retry_on_conflict(use_case: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Retries with jittered exponential backoff; the last conflict reaches the caller (ABORTED)."""

    @functools.wraps(use_case)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(ATTEMPTS - 1):
            try:
                return await use_case(*args, **kwargs)
            except TransactionConflict:
                await asyncio.sleep(FIRST_BACKOFF_SECONDS * 2**attempt * (0.5 + random.random()))
        return await use_case(*args, **kwargs)

    return run
