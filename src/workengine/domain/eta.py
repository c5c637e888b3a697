"""When a running attempt is expected to finish (docs/history.md, "Progress with an ETA").

From the attempt's own rate (elapsed x (100 - p) / p), blended while the progress is young
(below YOUNG_PROGRESS percent) with what similar executions took (the estimate's p50, or its
p90 once the attempt ran past the p50, minus the time already run). Nothing to go on, no ETA:
no progress yet and no estimate, or no progress and an attempt already past the p90.
"""

from __future__ import annotations

from datetime import timedelta

from workengine.domain.history import Estimate

# Below this percent the attempt's own rate is weighed against the estimate (linearly: 0 %
# trusts only the estimate, YOUNG_PROGRESS % and above only the rate).
YOUNG_PROGRESS = 25


def remaining(elapsed: timedelta, progress: int, estimate: Estimate | None) -> timedelta | None:
    """How long the attempt still needs, never negative; None when there is nothing to go on.
    `elapsed`: since the attempt started (a negative one, from clock skew, counts as 0)."""
    elapsed = max(elapsed, timedelta(0))
    progress = min(max(progress, 0), 100)
    by_rate = elapsed * (100 - progress) / progress if progress > 0 else None
    by_history = _by_history(elapsed, estimate)
    if by_rate is None:
        return by_history
    if by_history is None or progress >= YOUNG_PROGRESS:
        return by_rate
    weight = progress / YOUNG_PROGRESS
    return by_rate * weight + by_history * (1 - weight)


def _by_history(elapsed: timedelta, estimate: Estimate | None) -> timedelta | None:
    if estimate is None or estimate.p50 is None or estimate.p90 is None:
        return None
    for expected in (estimate.p50, estimate.p90):
        if elapsed < expected:
            return expected - elapsed
    return None
