"""The selection rule written out task by task: the oracle the selection SQL is tested against.

The engine never scores one task at a time (selection probes the index ranges of
`domain.scoring.segments`); these say what the result must be.
"""

from __future__ import annotations

from datetime import datetime

from workengine.domain.model import Priority
from workengine.domain.scoring import (
    DUE_SOON_BOOST,
    DUE_TODAY_BOOST,
    NO_BOOST,
    OVERDUE_BOOST,
    PRIORITY_WEIGHT,
    SOON_WINDOW,
    UNDATED,
    end_of_today,
)


def deadline_boost(due_at: datetime | None, now: datetime, timezone: str) -> int:
    if due_at is None:
        return NO_BOOST
    if due_at < now:
        return OVERDUE_BOOST
    if due_at < end_of_today(now, timezone):
        return DUE_TODAY_BOOST
    if due_at < now + SOON_WINDOW:
        return DUE_SOON_BOOST
    return NO_BOOST


def score(priority: Priority, due_at: datetime | None, now: datetime, timezone: str) -> int:
    return PRIORITY_WEIGHT[priority] * deadline_boost(due_at, now, timezone)


def sort_key(
    priority: Priority,
    due_at: datetime | None,
    created_at: datetime,
    task_id: str,
    now: datetime,
    timezone: str,
) -> tuple[int, int, datetime, int, datetime, str]:
    """Ascending sort key: highest score, then earlier due (none last), higher priority, older, id."""
    no_due = due_at is None
    due_key = due_at if due_at is not None else UNDATED
    return (
        -score(priority, due_at, now, timezone),
        int(no_due),
        due_key,
        -int(priority),
        created_at,
        task_id,
    )
