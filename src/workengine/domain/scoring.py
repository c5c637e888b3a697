"""Task selection score: priority weight x deadline boost, and the index segments.

The score of a task depends on `now`, so it cannot be stored in an index. But it only takes
16 values: each (priority, deadline bucket) pair is a contiguous range of due times, and
inside one range the tie-break order (due, created, id) is the index order. Selection
therefore probes one index range per pair and compares at most 16 heads, whatever the
backlog. `segments()` produces those ranges. (tests/selection_reference.py writes the rule out
task by task, as the oracle the SQL is tested against.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from workengine.domain.model import Priority

PRIORITY_WEIGHT: dict[Priority, int] = {
    Priority.CRITICAL: 1000,
    Priority.HIGH: 100,
    Priority.MEDIUM: 10,
    Priority.LOW: 1,
}

OVERDUE_BOOST = 10
DUE_TODAY_BOOST = 5
DUE_SOON_BOOST = 2
NO_BOOST = 1
SOON_WINDOW = timedelta(hours=72)
# The deadline buckets by the boost they give (each boost belongs to one bucket), as
# ExplainSelection names them.
DEADLINE_BUCKETS: dict[int, str] = {
    OVERDUE_BOOST: "OVERDUE",
    DUE_TODAY_BOOST: "DUE_TODAY",
    DUE_SOON_BOOST: "DUE_SOON",
    NO_BOOST: "LATER",
}

# What the database stores as the deadline of a task without one (tasks.due_key, migration
# 0006), so undated tasks sort after every dated one: due times must come before it. Two days
# short of the year 10000, not datetime.max: psycopg returns timestamps in the session's time
# zone, and datetime.max read in any zone east of UTC would be in the year 10000, which Python
# cannot hold.
UNDATED = datetime(9999, 12, 30, tzinfo=UTC)

# PostgreSQL timestamps have microsecond resolution, so a half-open range [lo, hi) is
# exactly the closed range [lo, hi - 1 µs]; closed ranges let a missing due time (stored as
# UNDATED) fall into the last bucket.
RESOLUTION = timedelta(microseconds=1)


@dataclass(frozen=True)
class Segment:
    """Tasks of one priority whose due time lies in [due_from, due_to]; None is unbounded."""

    priority: Priority
    boost: int
    due_from: datetime | None
    due_to: datetime | None

    @property
    def score(self) -> int:
        return PRIORITY_WEIGHT[self.priority] * self.boost


def end_of_today(now: datetime, timezone: str) -> datetime:
    """The first instant of tomorrow in `timezone`, as an aware datetime."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    tomorrow = local.date() + timedelta(days=1)
    midnight = datetime.combine(tomorrow, time.min, tzinfo=zone)
    if midnight <= now:
        # Clocks went back across midnight and `now` is in the repeated hour: tomorrow starts
        # at the second occurrence of that midnight.
        midnight = midnight.replace(fold=1)
    return midnight


def segments(
    now: datetime, timezone: str, min_priority: Priority | None = None, max_priority: Priority | None = None
) -> list[Segment]:
    """The (priority, deadline bucket) ranges selection probes, within the priority bounds."""
    today_ends = end_of_today(now, timezone)
    soon_ends = now + SOON_WINDOW
    buckets = [
        (OVERDUE_BOOST, None, now - RESOLUTION),
        (DUE_TODAY_BOOST, now, today_ends - RESOLUTION),
        (DUE_SOON_BOOST, today_ends, soon_ends - RESOLUTION),
        (NO_BOOST, soon_ends, None),
    ]
    result = []
    for priority in Priority:
        if min_priority is not None and priority < min_priority:
            continue
        if max_priority is not None and priority > max_priority:
            continue
        for boost, due_from, due_to in buckets:
            result.append(Segment(priority, boost, due_from, due_to))
    return result
