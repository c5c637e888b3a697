"""SelectNextTask / ClaimNextTask choose exactly what the scoring rules say, over all tasks."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import duration_pb2

from tests import selection_reference as reference
from tests.integration.helpers import PRIORITY, Stub, claim, create, expect_error, register, seed_for_plans
from workengine.domain import scoring
from workengine.domain.model import NewOrchestrator, NewTask, Priority, SelectionCriteria, Task
from workengine.engine import WorkEngine
from workengine.store import statements
from workengine.store.database import Database
from workengine.store.runner import array_text
from workengine.v1 import orchestrator_pb2, task_pb2
from workengine.v1 import work_engine_service_pb2 as pb

NOW = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)


def reference_best(tasks: list[Task], now: datetime, timezone: str) -> Task:
    def key(task: Task) -> tuple[object, ...]:
        assert task.created_at is not None
        return reference.sort_key(task.priority, task.due_at, task.created_at, task.id, now, timezone)

    return min(tasks, key=key)


@pytest.fixture
async def clocked_engine(database_url: str) -> WorkEngine:
    engine = WorkEngine(Database(database_url), clock=lambda: NOW)
    return engine


@pytest.mark.parametrize("timezone", ["UTC", "America/Los_Angeles", "Pacific/Kiritimati"])
async def test_selection_matches_the_reference_rules_over_hundreds_of_tasks(
    clocked_engine: WorkEngine, timezone: str
) -> None:
    engine = clocked_engine
    rng = random.Random(f"selection-{timezone}")
    await engine.access.register(NewOrchestrator(id="ada", display_name="Ada", timezone=timezone), None)
    due_choices = [None, -30, -1, 0.5, 1.2, 2, 20, 30, 50, 71.9, 72.1, 200]
    pending: list[Task] = []
    for index in range(300):
        hours = rng.choice(due_choices)
        due = None if hours is None else NOW + timedelta(hours=hours, minutes=rng.randint(0, 59))
        pending.append(
            await engine.tasks.create(
                NewTask(
                    id=f"t{index:03d}",
                    orchestrator_id="ada",
                    workspace_id="ws",
                    title=f"task {index}",
                    priority=rng.choice(list(Priority)),
                    due_at=due,
                )
            )
        )
    try:
        for _ in range(80):
            chosen = await engine.execution.select_next("ada", SelectionCriteria())
            assert chosen is not None
            expected = reference_best(pending, NOW, timezone)
            assert chosen.task.id == expected.id
            assert chosen.score == reference.score(expected.priority, expected.due_at, NOW, timezone)
            await engine.tasks.cancel(expected.id, "picked")
            pending.remove(expected)
    finally:
        await engine.close()


async def test_the_best_task_is_found_beyond_the_first_fifty_candidates(stub: Stub) -> None:
    # The original design scored only the first 50 candidates; the winner here is the 151st.
    await register(stub)
    for index in range(150):
        await create(stub, f"routine {index}", priority="LOW")
    urgent = await create(stub, "urgent", priority="CRITICAL")
    for index in range(20):
        await create(stub, f"later {index}", priority="LOW")
    selected = await stub.SelectNextTask(pb.SelectNextTaskRequest(orchestrator_id="ada"))
    assert selected.task.id == urgent.id
    assert selected.score == 1000


async def test_overdue_high_beats_undated_high_and_ties_break_by_due_then_age(stub: Stub) -> None:
    await register(stub)
    now = datetime.now(UTC)
    undated = await create(stub, "undated high", priority="HIGH")
    overdue = await create(stub, "overdue high", priority="HIGH", due=now - timedelta(hours=1))
    older_overdue = await create(stub, "older deadline", priority="HIGH", due=now - timedelta(hours=2))
    first = (await stub.SelectNextTask(pb.SelectNextTaskRequest(orchestrator_id="ada"))).task
    assert first.id == older_overdue.id
    order = [(await claim(stub)).context.task.id for _ in range(3)]
    assert order == [older_overdue.id, overdue.id, undated.id]


async def test_criteria_narrow_the_choice(stub: Stub) -> None:
    await register(stub)
    critical = await create(stub, "critical", priority="CRITICAL", tags=["ops"])
    high_backend = await create(stub, "high backend", priority="HIGH", tags=["backend", "api"])
    low_backend = await create(stub, "low backend", priority="LOW", tags=["backend"])

    async def pick(**criteria: Any) -> str:
        request = pb.SelectNextTaskRequest(
            orchestrator_id="ada", criteria=task_pb2.SelectionCriteria(**criteria)
        )
        return str((await stub.SelectNextTask(request)).task.id)

    assert await pick() == critical.id
    assert await pick(required_tags=["backend"]) == high_backend.id
    assert await pick(required_tags=["backend", "api"]) == high_backend.id
    assert await pick(max_priority=PRIORITY["MEDIUM"]) == low_backend.id
    assert await pick(min_priority=PRIORITY["HIGH"], exclude_task_ids=[critical.id]) == high_backend.id
    assert await pick(required_tags=["nothing-has-this"]) == ""
    await expect_error(
        stub.SelectNextTask(
            pb.SelectNextTaskRequest(
                orchestrator_id="ada",
                criteria=task_pb2.SelectionCriteria(
                    min_priority=PRIORITY["HIGH"], max_priority=PRIORITY["LOW"]
                ),
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "criteria.min_priority",
    )


async def test_tasks_of_other_orchestrators_and_blocked_tasks_are_never_selected(stub: Stub) -> None:
    await register(stub, "ada")
    await register(stub, "bob")
    await create(stub, "bob's", orchestrator_id="bob", priority="CRITICAL")
    blocker = await create(stub, "blocker", priority="LOW")
    await create(stub, "blocked", priority="CRITICAL", depends_on=[blocker.id])
    selected = await stub.SelectNextTask(pb.SelectNextTaskRequest(orchestrator_id="ada"))
    assert selected.task.id == blocker.id


async def test_no_work_is_handed_out_while_the_orchestrator_is_away(stub: Stub) -> None:
    await register(stub)
    await create(stub)
    await stub.SetOrchestratorStatus(
        pb.SetOrchestratorStatusRequest(
            orchestrator_id="ada", status=orchestrator_pb2.ORCHESTRATOR_STATUS_AWAY
        )
    )
    await expect_error(
        stub.SelectNextTask(pb.SelectNextTaskRequest(orchestrator_id="ada")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "AWAY",
    )
    await expect_error(claim(stub), grpc.StatusCode.FAILED_PRECONDITION, "AWAY")
    await expect_error(
        stub.SelectNextTask(pb.SelectNextTaskRequest(orchestrator_id="nobody")),
        grpc.StatusCode.NOT_FOUND,
        "nobody",
    )


async def test_claim_long_poll_returns_when_a_task_appears(stub: Stub) -> None:
    await register(stub)
    waiting = asyncio.create_task(claim(stub, wait=duration_pb2.Duration(seconds=10)))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    created = await create(stub, "arrives later")
    claimed = await asyncio.wait_for(waiting, timeout=5)
    assert claimed.context.task.id == created.id
    empty = await claim(stub, wait=duration_pb2.Duration(nanos=200_000_000))
    assert not empty.HasField("context")


@pytest.mark.parametrize("statement_name", ["select_next_task", "claim_next_task"])
def test_selection_uses_the_ready_index(database_url: str, statement_name: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        seed_for_plans(connection)
        statement = statements.query(statement_name)
        segments = scoring.segments(NOW, "UTC")
        params = {
            "orchestrator_id": "ada",
            "required_tags": [],
            "excluded_ids": [],
            "priorities": [int(s.priority) for s in segments],
            "weights": [scoring.PRIORITY_WEIGHT[s.priority] for s in segments],
            "boosts": [s.boost for s in segments],
            "due_froms": [s.due_from for s in segments],
            "due_tos": [s.due_to for s in segments],
            "lease_seconds": None,
            "default_lease_seconds": 300,
            "identity": "explain",
            "estimated": True,
            "seq": 1,
            "event_kind": "STARTED",
            "event_message": "",
            "event_metadata": "{}",
            "related_limit": 20,
        }
        explain_sql = "EXPLAIN (FORMAT TEXT) " + statement
        plan = "\n".join(row[0] for row in connection.execute(explain_sql, params))
    assert "tasks_ready_idx" in plan, plan
    assert "Seq Scan on tasks" not in plan, plan


HOSTILE_TAGS = ['a"b', "c\\d", "e,f", "{g}", "h i", "NULL", "ünï", "\\", '"']


async def test_criteria_match_tags_and_ids_with_quotes_commas_braces_and_backslashes(stub: Stub) -> None:
    # The criteria travel to PostgreSQL as array text (store.runner.array_text).
    await register(stub)
    tagged = {tag: await create(stub, f"tagged {tag!r}", priority="LOW", tags=[tag]) for tag in HOSTILE_TAGS}
    best = await create(stub, "best, not tagged", priority="CRITICAL")

    async def pick(**criteria: Any) -> str:
        request = pb.SelectNextTaskRequest(
            orchestrator_id="ada", criteria=task_pb2.SelectionCriteria(**criteria)
        )
        return str((await stub.SelectNextTask(request)).task.id)

    for tag, task in tagged.items():
        assert await pick(required_tags=[tag]) == task.id, tag
    assert await pick(required_tags=HOSTILE_TAGS[:2]) == ""
    assert await pick(exclude_task_ids=[best.id]) != best.id
    assert await pick() == best.id


async def test_array_text_reads_back_as_the_same_values(database_url: str) -> None:
    moment = datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC)
    async with await psycopg.AsyncConnection.connect(database_url) as connection:
        cursor = await connection.execute(
            "SELECT CAST(%s AS text[]), CAST(%s AS integer[]), CAST(%s AS timestamptz[])",
            [array_text([*HOSTILE_TAGS, ""]), array_text([3, None, -7]), array_text([moment, None])],
        )
        found = await cursor.fetchone()
    assert found == ([*HOSTILE_TAGS, ""], [3, None, -7], [moment, None])
