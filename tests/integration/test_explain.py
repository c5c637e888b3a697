"""ExplainSelection over a real server: every reason a task is not first, the ranks beyond the
ranking, validation naming the field, and the plans of its statements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import psycopg
import pytest
from google.protobuf import duration_pb2

from tests.integration.helpers import PRIORITY, Stub, complete, create, expect_error, register, seed_for_plans
from workengine.domain import explain, scoring
from workengine.domain.model import NewOrchestrator, NewTask, SelectionCriteria
from workengine.engine import WorkEngine
from workengine.store import statements
from workengine.store.database import Database
from workengine.v1 import orchestrator_pb2, task_pb2
from workengine.v1 import work_engine_service_pb2 as pb

REASON = pb.NotFirstReason


async def explain_ids(stub: Stub, task_ids: list[str], **fields: object) -> pb.ExplainSelectionResponse:
    request = pb.ExplainSelectionRequest(orchestrator_id="ada", task_ids=task_ids, **fields)  # type: ignore[arg-type]
    response: pb.ExplainSelectionResponse = await stub.ExplainSelection(request)
    return response


async def start(stub: Stub, task_id: str) -> int:
    started = await stub.ExecuteTask(pb.ExecuteTaskRequest(orchestrator_id="ada", task_id=task_id))
    assert started.outcome == pb.EXECUTE_OUTCOME_STARTED
    return int(started.attempt)


async def test_every_reason_a_task_is_not_first(stub: Stub) -> None:
    await register(stub, "ada", timezone="America/Los_Angeles")
    await register(stub, "bob")
    now = datetime.now(UTC)
    first = await create(stub, "overdue critical", priority="CRITICAL", due=now - timedelta(hours=1))
    second = await create(stub, "undated high", priority="HIGH", tags=["api"])
    third = await create(stub, "low", priority="LOW")
    done_dependency = await create(stub, "finished dependency", priority="LOW")
    await complete(stub, done_dependency.id, await start(stub, done_dependency.id))
    waits = await create(
        stub, "waits", priority="CRITICAL", depends_on=[done_dependency.id, third.id, second.id]
    )
    running = await create(stub, "running")
    attempt = await start(stub, running.id)
    reported = await create(stub, "reported blocked")
    retry_after = duration_pb2.Duration(seconds=3600)
    await stub.CompleteTask(
        pb.CompleteTaskRequest(
            task_id=reported.id,
            attempt=await start(stub, reported.id),
            status=pb.COMPLETION_STATUS_BLOCKED,
            result=task_pb2.TaskResult(error="waiting for the vendor"),
            retry_after=retry_after,
        )
    )
    failed = await create(stub, "failed")
    await complete(stub, failed.id, await start(stub, failed.id), pb.COMPLETION_STATUS_FAILED, error="boom")
    cancelled = await create(stub, "cancelled")
    await stub.CancelTask(pb.CancelTaskRequest(task_id=cancelled.id, reason="not needed"))
    bobs = await create(stub, "bob's", orchestrator_id="bob", priority="CRITICAL")

    asked = [third.id, first.id, waits.id, running.id, reported.id, done_dependency.id, failed.id]
    asked += [cancelled.id, bobs.id, "nope", third.id]
    response = await explain_ids(stub, asked, limit=1)
    assert response.orchestrator_id == "ada" and response.timezone == "America/Los_Angeles"
    assert [entry.task.id for entry in response.ranked] == [first.id]
    got = {(a.task_id, a.reason): a for a in response.explained}
    assert [a.task_id for a in response.explained] == asked  # in request order, repeats included
    assert got[third.id, REASON.NOT_FIRST_REASON_RANKED].rank == 3  # counted beyond the limit
    assert got[first.id, REASON.NOT_FIRST_REASON_RANKED].rank == 1
    assert "first" in got[first.id, REASON.NOT_FIRST_REASON_RANKED].detail
    blocked = got[waits.id, REASON.NOT_FIRST_REASON_BLOCKED]
    assert list(blocked.blocked_on) == sorted([third.id, second.id])
    assert "waits on 2 unfinished dependencies" in blocked.detail
    assert got[running.id, REASON.NOT_FIRST_REASON_IN_PROGRESS].attempt == attempt
    reported_blocked = got[reported.id, REASON.NOT_FIRST_REASON_BLOCKED]
    assert not reported_blocked.blocked_on
    assert (
        "waiting for the vendor" in reported_blocked.detail and "back to TODO at" in reported_blocked.detail
    )
    assert "-08:00" in reported_blocked.detail or "-07:00" in reported_blocked.detail  # the zone's clock
    assert "DONE" in got[done_dependency.id, REASON.NOT_FIRST_REASON_FINISHED].detail
    assert "FAILED: boom" in got[failed.id, REASON.NOT_FIRST_REASON_FINISHED].detail
    assert "CANCELLED: not needed" in got[cancelled.id, REASON.NOT_FIRST_REASON_FINISHED].detail
    assert (
        got[bobs.id, REASON.NOT_FIRST_REASON_OTHER_ORCHESTRATOR].detail == "assigned to another orchestrator"
    )
    assert (("nope", REASON.NOT_FIRST_REASON_NOT_FOUND)) in got
    assert all(a.reason != REASON.NOT_FIRST_REASON_UNSPECIFIED for a in response.explained)


async def test_a_ready_task_the_criteria_exclude_is_filtered_by_the_criterion_named(stub: Stub) -> None:
    await register(stub)
    low = await create(stub, "low", priority="LOW", tags=["api"])
    critical = await create(stub, "critical", priority="CRITICAL", tags=["api", "ops"])
    high = await create(stub, "high", priority="HIGH", tags=["docs"])
    ids = [low.id, critical.id, high.id]

    async def reasons(**criteria: object) -> list[tuple[int, str]]:
        response = await explain_ids(stub, ids, criteria=task_pb2.SelectionCriteria(**criteria))  # type: ignore[arg-type]
        return [(a.reason, a.detail) for a in response.explained]

    filtered, ranked = REASON.NOT_FIRST_REASON_FILTERED, REASON.NOT_FIRST_REASON_RANKED
    by_tags = await reasons(required_tags=["api", "ops"])
    assert by_tags[0] == (filtered, "lacks criteria.required_tags ops")
    assert by_tags[1][0] == ranked
    assert by_tags[2] == (filtered, "lacks criteria.required_tags api, ops")
    by_priority = await reasons(min_priority=PRIORITY["MEDIUM"], max_priority=PRIORITY["HIGH"])
    assert by_priority[0] == (filtered, "priority LOW is below criteria.min_priority MEDIUM")
    assert by_priority[1] == (filtered, "priority CRITICAL is above criteria.max_priority HIGH")
    assert by_priority[2][0] == ranked
    excluded = await reasons(exclude_task_ids=[critical.id])
    assert excluded[1] == (filtered, "excluded by criteria.exclude_task_ids")
    assert [a[0] for a in (excluded[0], excluded[2])] == [ranked, ranked]


async def test_ranks_beyond_the_ranking_are_counted_until_the_count_stops(
    stub: Stub, monkeypatch: pytest.MonkeyPatch
) -> None:
    await register(stub)
    tasks = [await create(stub, f"task {index}", priority="MEDIUM") for index in range(6)]
    ids = [t.id for t in tasks]
    response = await explain_ids(stub, ids[::-1], limit=2)
    assert [a.rank for a in response.explained] == [6, 5, 4, 3, 2, 1]
    # Counting stops after RANK_COUNT_LIMIT tasks ahead: rank 0, "at least N".
    monkeypatch.setattr(explain, "RANK_COUNT_LIMIT", 3)
    response = await explain_ids(stub, ids, limit=1)
    assert [a.rank for a in response.explained] == [1, 2, 3, 0, 0, 0]
    assert "at least 3 ready tasks rank ahead" in response.explained[3].detail
    assert {a.reason for a in response.explained} == {REASON.NOT_FIRST_REASON_RANKED}


async def test_the_score_parts_and_the_due_time_in_the_orchestrators_zone(stub: Stub) -> None:
    await register(stub, "ada", timezone="Asia/Tokyo")
    due = datetime.now(UTC) - timedelta(minutes=5)
    overdue = await create(stub, "overdue", priority="HIGH", due=due)
    undated = await create(stub, "undated", priority="LOW")
    response = await explain_ids(stub, [])
    assert [entry.task.id for entry in response.ranked] == [overdue.id, undated.id]
    top, bottom = response.ranked
    assert (top.rank, top.score, top.priority_weight, top.deadline_boost) == (1, 1000, 100, 10)
    assert top.deadline_bucket == pb.DEADLINE_BUCKET_OVERDUE
    local = datetime.fromisoformat(top.local_due_time)
    assert local == due.replace(microsecond=local.microsecond) and local.utcoffset() == timedelta(hours=9)
    assert (bottom.rank, bottom.score, bottom.deadline_bucket, bottom.local_due_time) == (
        2,
        1,
        pb.DEADLINE_BUCKET_LATER,
        "",
    )


async def test_an_away_orchestrators_queue_is_still_explained_and_the_default_limit_is_20(stub: Stub) -> None:
    await register(stub)
    for index in range(21):
        await create(stub, f"task {index}")
    await stub.SetOrchestratorStatus(
        pb.SetOrchestratorStatusRequest(
            orchestrator_id="ada", status=orchestrator_pb2.ORCHESTRATOR_STATUS_AWAY
        )
    )
    assert len((await explain_ids(stub, [])).ranked) == 20
    assert len((await explain_ids(stub, [], limit=21)).ranked) == 21


async def test_malformed_requests_name_the_field(stub: Stub) -> None:
    await register(stub)
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    await expect_error(explain_ids(stub, [], limit=-1), invalid, "limit")
    await expect_error(explain_ids(stub, [], limit=1001), invalid, "limit: must be at most 1000")
    await expect_error(
        explain_ids(stub, [f"t{i}" for i in range(101)]), invalid, "task_ids: has more than 100"
    )
    await expect_error(explain_ids(stub, ["ok", "not an id"]), invalid, "task_ids[1]")
    await expect_error(
        explain_ids(
            stub,
            [],
            criteria=task_pb2.SelectionCriteria(min_priority=PRIORITY["HIGH"], max_priority=PRIORITY["LOW"]),
        ),
        invalid,
        "criteria.min_priority",
    )
    await expect_error(
        stub.ExplainSelection(pb.ExplainSelectionRequest(orchestrator_id="")), invalid, "orchestrator_id"
    )
    await expect_error(
        stub.ExplainSelection(pb.ExplainSelectionRequest(orchestrator_id="nobody")),
        grpc.StatusCode.NOT_FOUND,
        "orchestrator_id: orchestrator nobody not found",
    )
    assert len((await explain_ids(stub, [], limit=1000)).ranked) == 0  # the bounds themselves pass


async def test_a_connection_that_served_a_snapshot_writes_again(database_url: str) -> None:
    # One connection: the read-only REPEATABLE READ of the explanation must not stay with it.
    engine = WorkEngine(Database(database_url, pool_size=1, max_overflow=0))
    try:
        await engine.access.register(NewOrchestrator(id="ada", display_name="Ada"), None)
        await engine.tasks.create(NewTask(id="a", orchestrator_id="ada", workspace_id="ws", title="a"))
        explained = await engine.execution.explain("ada", SelectionCriteria(), task_ids=["a"])
        assert explained.explained[0].rank == 1
        await engine.tasks.create(NewTask(id="b", orchestrator_id="ada", workspace_id="ws", title="b"))
        claimed = await engine.execution.claim_next("ada", SelectionCriteria())
        assert claimed is not None and claimed.context.task.id == "a"
        # The one connection, after those writes: back to the server's defaults.
        connection = await engine.db.pool.acquire()
        try:
            assert (connection.read_only, connection.isolation_level) == (None, None)
        finally:
            engine.db.pool.release(connection)
    finally:
        await engine.close()


@pytest.mark.parametrize("statement_name", ["explain_ranking", "explain_ranks"])
def test_the_explain_statements_walk_the_ready_index(database_url: str, statement_name: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        seed_for_plans(connection, -50)
        segments = scoring.segments(datetime.now(UTC), "UTC")
        params = {
            "orchestrator_id": "ada",
            "required_tags": [],
            "excluded_ids": [],
            "priorities": [int(s.priority) for s in segments],
            "weights": [scoring.PRIORITY_WEIGHT[s.priority] for s in segments],
            "boosts": [s.boost for s in segments],
            "due_froms": [s.due_from for s in segments],
            "due_tos": [s.due_to for s in segments],
            "limit": 20,
            "ids": ["x1", "x2", "x7"],
            "count_limit": explain.RANK_COUNT_LIMIT,
        }
        query = "EXPLAIN (FORMAT TEXT) " + statements.query(statement_name)
        plan = "\n".join(row[0] for row in connection.execute(query, params))
    assert "tasks_ready_idx" in plan, plan
    assert "Seq Scan on tasks" not in plan, plan
    # The count's bound is a range of the index, not a filter over the whole segment.
    bounds = [line.strip() for line in plan.splitlines() if "ROW(due_key, created_at, id) <" in line]
    assert all(line.startswith("Index Cond:") for line in bounds), plan
    assert bool(bounds) == (statement_name == "explain_ranks"), plan
