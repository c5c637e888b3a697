"""ExplainSelection's values: the ready tasks as a claim would take them, with their score
parts, and for each task a caller asks about, why it is not first."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from workengine.domain import transitions
from workengine.domain.model import SelectionCriteria, Task, TaskStatus
from workengine.domain.scoring import DEADLINE_BUCKETS


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


# A BLOCKED task lists at most this many of its unfinished dependencies (it may have 10,000).
BLOCKED_ON_LIMIT = 100
# A ready task beyond the ranking gets its rank by counting the tasks ahead of it, each an index
# entry read (about 1.5 µs each on a 2-core machine). Counting stops at RANK_COUNT_LIMIT per task,
# and at RANK_COUNT_BUDGET per request shared among the tasks (so 1,000 each for 100 tasks);
# a task with that many ahead is reported with rank 0, "at least N ahead".
RANK_COUNT_LIMIT = 10_000
RANK_COUNT_BUDGET = 100_000


def rank_count_limit(tasks_to_count: int) -> int:
    """How far the tasks ahead of each of `tasks_to_count` tasks are counted."""
    return min(RANK_COUNT_LIMIT, RANK_COUNT_BUDGET // max(tasks_to_count, 1))


FINISHED_STATUSES = frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED})


def filtered_by(task: Task, criteria: SelectionCriteria) -> str:
    """Which criterion keeps a ready task out of the ranking, as a sentence; "" when none does."""
    if task.id in criteria.exclude_task_ids:
        return "excluded by criteria.exclude_task_ids"
    if criteria.min_priority is not None and task.priority < criteria.min_priority:
        return f"priority {task.priority.name} is below criteria.min_priority {criteria.min_priority.name}"
    if criteria.max_priority is not None and task.priority > criteria.max_priority:
        return f"priority {task.priority.name} is above criteria.max_priority {criteria.max_priority.name}"
    missing = [tag for tag in dict.fromkeys(criteria.required_tags) if tag not in task.tags]
    if missing:
        return f"lacks criteria.required_tags {', '.join(missing)}"
    return ""


def _blocked(task: Task, unmet_dependency_ids: tuple[str, ...], timezone: str) -> NotFirst:
    if task.unmet_dependency_count > 0:
        listed = ", ".join(unmet_dependency_ids)
        more = len(unmet_dependency_ids) < task.unmet_dependency_count
        detail = (
            f"waits on {task.unmet_dependency_count} unfinished "
            f"{'dependency' if task.unmet_dependency_count == 1 else 'dependencies'}"
            f"{f' (the first {len(unmet_dependency_ids)})' if more else ''}: {listed}"
        )
        return NotFirst(task.id, NotFirstReason.BLOCKED, detail=detail, blocked_on=unmet_dependency_ids)
    until = (
        f"back to TODO at {task.retry_at.astimezone(ZoneInfo(timezone)).isoformat()}"
        if task.retry_at is not None
        else "BLOCKED until cancelled"
    )
    if transitions.scheduled(task):
        return NotFirst(task.id, NotFirstReason.BLOCKED, detail=f"scheduled; {until}")
    reason = f": {task.status_reason}" if task.status_reason else ""
    return NotFirst(task.id, NotFirstReason.BLOCKED, detail=f"reported BLOCKED{reason}; {until}")


def not_candidate(
    task: Task, unmet_dependency_ids: tuple[str, ...], orchestrator_id: str, timezone: str
) -> NotFirst | None:
    """Why `task` cannot be claimed by the orchestrator whatever the criteria; None when it is
    one of its ready (TODO) tasks."""
    if task.orchestrator_id != orchestrator_id:
        # Neither the other orchestrator nor the task's state: the caller may not see them.
        return NotFirst(task.id, NotFirstReason.OTHER_ORCHESTRATOR, detail="assigned to another orchestrator")
    if task.status is TaskStatus.IN_PROGRESS:
        detail = f"running under attempt {task.attempt}"
        return NotFirst(task.id, NotFirstReason.IN_PROGRESS, detail=detail, attempt=task.attempt)
    if task.status is TaskStatus.BLOCKED:
        return _blocked(task, unmet_dependency_ids, timezone)
    if task.status in FINISHED_STATUSES:
        reason = f": {task.status_reason}" if task.status_reason else ""
        return NotFirst(task.id, NotFirstReason.FINISHED, detail=f"finished {task.status.value}{reason}")
    return None


def ranked_at(task_id: str, rank: int, score: int | None = None, counted: int = 0) -> NotFirst:
    """A ready task at `rank` (1 = what a claim would start now); rank 0: `counted` or more
    tasks rank ahead of it, where counting stopped."""
    scored = f" (score {score})" if score is not None else ""
    if rank == 0:
        detail = f"ready{scored}, but at least {counted} ready tasks rank ahead of it (counting stops there)"
    elif rank == 1:
        detail = f"first: a claim now would start it{scored}"
    else:
        others = f"{rank - 1} other {'task' if rank == 2 else 'tasks'}"
        detail = f"ranked {rank}: a claim would start {others} first{scored}"
    return NotFirst(task_id, NotFirstReason.RANKED, rank=rank, detail=detail)


def not_found(task_id: str) -> NotFirst:
    return NotFirst(task_id, NotFirstReason.NOT_FOUND, detail="no task has this id")


def ranked_task(rank: int, task: Task, weight: int, boost: int, timezone: str) -> RankedTask:
    """The ranking's entry for `task`, its due time shown in the orchestrator's zone."""
    local_due = task.due_at.astimezone(ZoneInfo(timezone)) if task.due_at is not None else None
    return RankedTask(
        rank=rank,
        task=task,
        score=weight * boost,
        priority_weight=weight,
        deadline_bucket=DEADLINE_BUCKETS[boost],
        deadline_boost=boost,
        local_due=local_due,
    )
