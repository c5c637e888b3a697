"""ExplainSelection's ranking is the order claims then take: claimed one by one, across time
zones and criteria, with tasks in every bucket and priority, ties and undated tasks."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests import selection_reference as reference
from workengine.domain.explain import NotFirstReason
from workengine.domain.model import NewOrchestrator, NewTask, Priority, SelectionCriteria, Task
from workengine.engine import WorkEngine
from workengine.store.database import Database

# 22:30 UTC: "today" ends in 1.5 h in UTC, has just begun in Kiritimati (UTC+14) and is in its
# afternoon in Los Angeles, so the same due times fall in different buckets per zone.
NOW = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)
# Hours from NOW: overdue, due today in some zones, within 72 hours, beyond, and repeats of the
# same instants so that due times tie and age and id decide.
DUE_HOURS = [None, None, -30, -1, -1, 0.5, 1.2, 1.2, 2, 20, 30, 50, 71.9, 72.1, 200]
TAGS = ["api", "ops", "docs"]
CRITERIA = [
    SelectionCriteria(),
    SelectionCriteria(min_priority=Priority.MEDIUM),
    SelectionCriteria(max_priority=Priority.HIGH, required_tags=("api",)),
    SelectionCriteria(min_priority=Priority.MEDIUM, max_priority=Priority.HIGH, required_tags=("api", "ops")),
    SelectionCriteria(exclude_task_ids=("t000", "t003", "t007", "t011", "t019")),
]


@pytest.fixture
async def clocked_engine(database_url: str) -> AsyncIterator[WorkEngine]:
    engine = WorkEngine(Database(database_url), clock=lambda: NOW)
    yield engine
    await engine.close()


def admitted(task: Task, criteria: SelectionCriteria) -> bool:
    low, high = criteria.min_priority, criteria.max_priority
    return (
        task.id not in criteria.exclude_task_ids
        and (low is None or task.priority >= low)
        and (high is None or task.priority <= high)
        and set(criteria.required_tags) <= set(task.tags)
    )


def reference_order(tasks: list[Task], criteria: SelectionCriteria, timezone: str) -> list[str]:
    def key(task: Task) -> tuple[object, ...]:
        assert task.created_at is not None
        return reference.sort_key(task.priority, task.due_at, task.created_at, task.id, NOW, timezone)

    return [t.id for t in sorted((t for t in tasks if admitted(t, criteria)), key=key)]


async def create_tasks(
    engine: WorkEngine, database_url: str, orchestrator_id: str, seed: str, count: int
) -> list[Task]:
    rng = random.Random(seed)
    created = []
    for index in range(count):
        hours = rng.choice(DUE_HOURS)
        new = NewTask(
            id=f"t{index:03d}",
            orchestrator_id=orchestrator_id,
            workspace_id="ws",
            title=f"task {index}",
            priority=rng.choice(list(Priority)),
            due_at=None if hours is None else NOW + timedelta(hours=hours),
            tags=tuple(tag for tag in TAGS if rng.random() < 0.5),
        )
        created.append(new)
    # Ids are global: each orchestrator gets its own prefix.
    for new in created:
        await engine.tasks.create(replace(new, id=f"{orchestrator_id}-{new.id}"))
    # Three creation times only, so that age ties too and the id decides.
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        await connection.execute(
            "UPDATE tasks SET created_at = %s + (ascii(right(id, 1)) %% 3) * interval '1 second'"
            " WHERE orchestrator_id = %s",
            [NOW - timedelta(days=1), orchestrator_id],
        )
    return [(await engine.tasks.get_with_attempts(f"{orchestrator_id}-{new.id}"))[0] for new in created]


@pytest.mark.parametrize("timezone", ["UTC", "Pacific/Kiritimati", "America/Los_Angeles"])
async def test_the_explained_order_is_the_order_of_the_claims_that_follow(
    clocked_engine: WorkEngine, database_url: str, timezone: str
) -> None:
    engine = clocked_engine
    for number, criteria in enumerate(CRITERIA):
        orchestrator_id = f"o{number}"
        await engine.access.register(
            NewOrchestrator(id=orchestrator_id, display_name="O", timezone=timezone), None
        )
        tasks = await create_tasks(engine, database_url, orchestrator_id, f"{timezone}-{number}", 70)
        criteria = replace(
            criteria, exclude_task_ids=tuple(f"{orchestrator_id}-{i}" for i in criteria.exclude_task_ids)
        )
        expected = reference_order(tasks, criteria, timezone)
        assert len(expected) >= 5, "the criteria leave too little to compare"
        explanation = await engine.execution.explain(orchestrator_id, criteria, limit=1000)
        explained = [entry.task.id for entry in explanation.ranked]
        assert explained == expected, (timezone, criteria)
        for entry in explanation.ranked:
            task = entry.task
            assert entry.deadline_boost == reference.deadline_boost(task.due_at, NOW, timezone)
            assert entry.score == reference.score(task.priority, task.due_at, NOW, timezone)
            assert entry.score == entry.priority_weight * entry.deadline_boost
            assert entry.local_due == task.due_at
            assert entry.local_due is None or str(entry.local_due.tzinfo) == timezone
        # A short ranking is the start of the long one, and ranks past it are counted.
        short = await engine.execution.explain(orchestrator_id, criteria, limit=3, task_ids=expected)
        assert [entry.task.id for entry in short.ranked] == expected[:3]
        assert [(a.reason, a.rank) for a in short.explained] == [
            (NotFirstReason.RANKED, rank) for rank in range(1, len(expected) + 1)
        ]
        claimed = []
        while (claim := await engine.execution.claim_next(orchestrator_id, criteria)) is not None:
            claimed.append(claim.context.task.id)
        assert claimed == explained, (timezone, criteria)
