"""ExplainSelection's values: the ready tasks as a claim would take them, with their score
parts, and for each task a caller asks about, why it is not first."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from workengine.domain.model import Task


class NotFirstReason(enum.StrEnum):
    RANKED = "RANKED"  # ready and in the ranking, at `rank`
    BLOCKED = "BLOCKED"  # waiting: on dependencies (blocked_on) or a BLOCKED report/retry time
    IN_PROGRESS = "IN_PROGRESS"  # running under `attempt`
    FINISHED = "FINISHED"  # DONE, FAILED or CANCELLED (status in detail)
    FILTERED = "FILTERED"  # ready, but a criterion excludes it (detail says which)
    OTHER_ORCHESTRATOR = "OTHER_ORCHESTRATOR"
    NOT_FOUND = "NOT_FOUND"


@dataclass(frozen=True)
class RankedTask:
    rank: int  # 1 = what a claim would start now
    task: Task
    score: int
    priority_weight: int
    deadline_bucket: str  # "OVERDUE", "DUE_TODAY", "DUE_SOON" or "LATER" (the buckets of domain/scoring.py)
    deadline_boost: int
    local_due: datetime | None  # due time in the orchestrator's time zone (None: no due time)


@dataclass(frozen=True)
class NotFirst:
    task_id: str
    reason: NotFirstReason
    rank: int = 0  # for RANKED (may exceed the ranking's limit)
    detail: str = ""  # a sentence a person can read
    blocked_on: tuple[str, ...] = ()  # unmet dependency ids, for BLOCKED
    attempt: int = 0  # for IN_PROGRESS


@dataclass(frozen=True)
class Explanation:
    orchestrator_id: str
    timezone: str
    ranked: tuple[RankedTask, ...]
    explained: tuple[NotFirst, ...]  # one per requested task id, in request order
