"""When a call is retried, how long to wait, and the hook that adds metadata to every call.

Only UNAVAILABLE is retried (the server is restarting, or its database is down: nothing
happened), and only for calls that are safe to send twice. Those are:

- reads, which change nothing: GetOrchestrator, ListOrchestrators, GetTask, ListTasks,
  SelectNextTask, ExplainSelection, PrepareTaskContext, GetExecutionStats;
- writes whose repetition is harmless: SetOrchestratorStatus (the same status again),
  UpdateTaskProgress (the same report for the same attempt: the last one wins, a subscriber
  may see it twice), CompleteTask (the server answers an identical repeat with the task
  unchanged).

Never retried, because a first attempt that reached the server before the connection broke
may already have taken effect: ClaimNextTask and ExecuteTask (a lost answer would leave a task
started that nobody works on, and a second claim would start another), RegisterOrchestrator
and CreateTask (a repeat is ALREADY_EXISTS or a second task), CancelTask (a repeat is
FAILED_PRECONDITION). Streams (WatchTaskProgress) are not retried either: reconnect with
`after_cursor` set to the last cursor received, and nothing is lost.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

IDEMPOTENT_METHODS = frozenset(
    {
        "GetOrchestrator",
        "ListOrchestrators",
        "GetTask",
        "ListTasks",
        "SelectNextTask",
        "ExplainSelection",
        "PrepareTaskContext",
        "GetExecutionStats",
        "SetOrchestratorStatus",
        "UpdateTaskProgress",
        "CompleteTask",
        "Heartbeat",
        # Revoking twice revokes the same tokens: harmless.
        "RevokeOrchestratorTokens",
    }
)

Metadata = Sequence[tuple[str, str]]
MetadataProvider = Callable[[str], Metadata]
"""Called before every attempt of every call with the RPC's name (e.g. "ClaimNextTask");
returns metadata pairs to send with it, e.g. `[("authorization", f"Bearer {token()}")]`, so a
refreshed token is picked up by the next attempt. Keys must be lowercase. It is a plain
function in both clients: keep it fast (refresh tokens in the background, not in the hook)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Jittered exponential backoff for UNAVAILABLE on idempotent calls.

    The n-th retry (n = 1, 2, ...) waits a random time between 0 and
    min(max_backoff, initial_backoff * multiplier ** (n - 1)) seconds ("full jitter", so that
    daemons that lost the server together do not come back together). `max_attempts` counts
    the first try: 1 disables retries.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0
    retryable_codes: frozenset[grpc.StatusCode] = frozenset({grpc.StatusCode.UNAVAILABLE})

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and multiplier >= 1")

    def delay_before_retry(
        self,
        method: str,
        code: grpc.StatusCode | None,
        attempts_made: int,
        rng: random.Random | None = None,
        *,
        idempotent: bool | None = None,
    ) -> float | None:
        """Seconds to wait before trying `method` again after `attempts_made` failed tries ending
        with `code`, or None when the error must be raised instead. `idempotent` overrides
        IDEMPOTENT_METHODS for one call (CreateTask with an idempotency key is safe to repeat)."""
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        if not safe or code not in self.retryable_codes:
            return None
        if attempts_made >= self.max_attempts:
            return None
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempts_made - 1))
        return (rng or random).uniform(0, ceiling)


NO_RETRY = RetryPolicy(max_attempts=1)
