"""Execution history over a real server (docs/history.md): which past executions a context
recalls and in which order, the estimate's fallback with its sample sizes, lessons, the limits,
and the ETA of progress reports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import duration_pb2, struct_pb2
from psycopg import sql

from tests.integration.helpers import Stub, claim, complete, create, expect_error, register
from tests.integration.watching import next_event, watch
from workengine.api.server import start_server
from workengine.engine import WorkEngine
from workengine.engine.history import AttemptGrouping
from workengine.store import statements
from workengine.store.database import Database
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

FAILED, BLOCKED = pb.COMPLETION_STATUS_FAILED, pb.COMPLETION_STATUS_BLOCKED
SAME_TASK = task_pb2.PAST_EXECUTION_SOURCE_SAME_TASK
SIMILAR_TASK = task_pb2.PAST_EXECUTION_SOURCE_SIMILAR_TASK
WORKSPACE = task_pb2.PAST_EXECUTION_SOURCE_WORKSPACE
BY_TAGS = task_pb2.SIMILARITY_GROUP_ORCHESTRATOR_WORKSPACE_TAGS
BY_ORCHESTRATOR = task_pb2.SIMILARITY_GROUP_ORCHESTRATOR_WORKSPACE
BY_WORKSPACE = task_pb2.SIMILARITY_GROUP_WORKSPACE


async def run_once(
    stub: Stub,
    task_id: str,
    status: Any = pb.COMPLETION_STATUS_COMPLETED,
    orchestrator_id: str = "ada",
    **result: Any,
) -> None:
    """Starts `task_id` (ExecuteTask) and finishes the attempt with `status`."""
    started = await stub.ExecuteTask(pb.ExecuteTaskRequest(orchestrator_id=orchestrator_id, task_id=task_id))
    assert started.outcome == pb.EXECUTE_OUTCOME_STARTED
    await complete(stub, task_id, started.attempt, status, **result)


async def finished(
    stub: Stub, title: str, tags: Sequence[str], status: Any = None, error: str = "", **fields: Any
) -> str:
    """A task of `fields` (orchestrator ada, workspace ws-1 unless given) run once to `status`."""
    orchestrator_id = fields.setdefault("orchestrator_id", "ada")
    task = await create(stub, title, tags=list(tags), **fields)
    await run_once(stub, task.id, status or pb.COMPLETION_STATUS_COMPLETED, orchestrator_id, error=error)
    return task.id


def listed(context: task_pb2.TaskContext) -> list[tuple[int, str, int]]:
    return [(p.source, p.task_id, p.attempt) for p in context.history]


async def test_a_retried_task_sees_its_own_failed_attempts_first_with_their_errors_and_lessons(
    stub: Stub,
) -> None:
    await register(stub, "ada")
    other = await finished(stub, "other work", ["a"])
    task = await create(stub, "flaky", tags=["a"])
    await run_once(
        stub, task.id, FAILED, error="timeout calling the API", lessons=["raise the client timeout"]
    )
    await stub.RetryTask(pb.RetryTaskRequest(task_id=task.id))
    started = await stub.ExecuteTask(pb.ExecuteTaskRequest(orchestrator_id="ada", task_id=task.id))
    await stub.CompleteTask(
        pb.CompleteTaskRequest(
            task_id=task.id,
            attempt=started.attempt,
            status=BLOCKED,
            result=task_pb2.TaskResult(error="waiting for credentials", output=struct({"tried": ["a", "b"]})),
            retry_after=seconds(1),
        )
    )

    context = (await claim(stub, wait=seconds(10))).context  # woken when the retry time comes

    assert context.task.id == task.id
    assert listed(context) == [(SAME_TASK, task.id, 2), (SAME_TASK, task.id, 1), (SIMILAR_TASK, other, 1)]
    blocked, failed, _ = context.history
    assert (blocked.outcome, blocked.error) == (task_pb2.ATTEMPT_OUTCOME_BLOCKED, "waiting for credentials")
    assert blocked.output_excerpt == '{"tried":["a","b"]}'
    assert (failed.outcome, failed.error) == (task_pb2.ATTEMPT_OUTCOME_FAILED, "timeout calling the API")
    assert list(failed.lessons) == ["raise the client timeout"]
    assert failed.title == "flaky" and failed.orchestrator_id == "ada" and failed.identity
    assert failed.duration.ToTimedelta() >= timedelta(0)
    assert failed.finish_time.ToDatetime(UTC) <= blocked.finish_time.ToDatetime(UTC)


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def seconds(value: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(timedelta(seconds=value))
    return duration


async def test_the_history_lists_the_same_task_then_similar_tasks_then_the_workspace(stub: Stub) -> None:
    await register(stub, "ada")
    await register(stub, "bob")
    similar = await finished(stub, "same tags, other order", ["b", "a"])
    differently_tagged = await finished(stub, "other tags", ["c"])
    by_bob = await finished(stub, "bob's", ["a", "b"], orchestrator_id="bob")
    await finished(stub, "other workspace", ["a", "b"], workspace_id="ws-2")
    cancelled = await create(stub, "cancelled while running", tags=["z"])
    started = await stub.ExecuteTask(pb.ExecuteTaskRequest(orchestrator_id="ada", task_id=cancelled.id))
    await stub.CancelTask(pb.CancelTaskRequest(task_id=cancelled.id, reason="no longer needed"))
    await create(stub, "running elsewhere", tags=["a", "b"])  # never finished: never listed
    task = await create(stub, "the task", tags=["a", "b"], priority="HIGH")
    await run_once(stub, task.id, FAILED, error="first try")
    await stub.RetryTask(pb.RetryTaskRequest(task_id=task.id))

    everything = await stub.PrepareTaskContext(
        pb.PrepareTaskContextRequest(orchestrator_id="ada", task_id=task.id, history_limit=50)
    )
    # Another task's attempt is listed only with a verdict on the work: not the cancelled one.
    assert listed(everything.context) == [
        (SAME_TASK, task.id, 1),
        (SIMILAR_TASK, similar, 1),
        (WORKSPACE, by_bob, 1),
        (WORKSPACE, differently_tagged, 1),
    ]
    assert started.attempt == 1 and cancelled.id not in {p.task_id for p in everything.context.history}

    two = (await claim(stub, history_limit=2)).context
    assert two.task.id == task.id and listed(two) == [(SAME_TASK, task.id, 1), (SIMILAR_TASK, similar, 1)]


async def test_the_default_is_five_and_zero_leaves_out_history_and_estimate(stub: Stub) -> None:
    await register(stub, "ada")
    for n in range(7):
        await finished(stub, f"done {n}", ["a"])
    task = await create(stub, "next", tags=["a"])

    default = await stub.PrepareTaskContext(
        pb.PrepareTaskContextRequest(orchestrator_id="ada", task_id=task.id)
    )
    assert len(default.context.history) == 5 and default.context.HasField("estimate")
    assert [p.title for p in default.context.history] == [f"done {n}" for n in (6, 5, 4, 3, 2)]

    none = await claim(stub, history_limit=0)
    assert none.context.task.id == task.id
    assert not none.context.history and not none.context.HasField("estimate")
    executed = await stub.ExecuteTask(
        pb.ExecuteTaskRequest(orchestrator_id="ada", task_id=(await create(stub, "x")).id, history_limit=1)
    )
    assert len(executed.context.history) == 1


async def set_durations(database_url: str, seconds_by_title: dict[str, float]) -> None:
    """Makes each titled task's attempts have run that long (the end stays, the start moves)."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        for title, value in seconds_by_title.items():
            await connection.execute(
                """UPDATE task_attempts a SET started_at = a.ended_at - make_interval(secs => %s)
                   FROM tasks t WHERE t.id = a.task_id AND t.title = %s""",
                (value, title),
            )


def samples(estimate: task_pb2.ExecutionEstimate) -> list[tuple[int, int, int]]:
    return [(g.group, g.completed, g.finished) for g in estimate.groups]


async def test_the_estimate_falls_back_group_by_group_reporting_each_groups_samples(
    stub: Stub, database_url: str
) -> None:
    await register(stub, "ada")
    await register(stub, "bob")
    durations = {}
    for n in range(3):  # ada, ws-1, tags {a}: 3 completed, 10 s each
        durations[f"tagged {n}"] = 10.0
        await finished(stub, f"tagged {n}", ["a"])
    for n in range(3):  # ada, ws-1, other tags: 20 s each
        durations[f"untagged {n}"] = 20.0
        await finished(stub, f"untagged {n}", [])
    await finished(stub, "untagged failure", [], FAILED, error="no")
    for n in range(4):  # bob, ws-1: 40 s each
        durations[f"bob {n}"] = 40.0
        await finished(stub, f"bob {n}", ["a"], orchestrator_id="bob")
    await set_durations(database_url, durations)
    task = await create(stub, "to estimate", tags=["a"])

    estimate = await estimate_of(stub, task.id)

    assert samples(estimate) == [(BY_TAGS, 3, 3), (BY_ORCHESTRATOR, 6, 7), (BY_WORKSPACE, 10, 11)]
    assert (estimate.duration_group, estimate.duration_samples) == (BY_ORCHESTRATOR, 6)
    assert estimate.p50_duration.ToTimedelta() == timedelta(seconds=15)  # 10,10,10,20,20,20
    assert estimate.p90_duration.ToTimedelta() == timedelta(seconds=20)
    assert (estimate.failure_group, estimate.failure_samples) == (BY_ORCHESTRATOR, 7)
    assert estimate.failure_share == pytest.approx(1 / 7)
    assert (estimate.min_samples, estimate.window) == (5, 100)

    for n in range(3, 5):
        durations[f"tagged {n}"] = 10.0
        await finished(stub, f"tagged {n}", ["a"])
    await set_durations(database_url, durations)
    narrowest = await estimate_of(stub, task.id)
    assert (narrowest.duration_group, narrowest.duration_samples) == (BY_TAGS, 5)
    assert narrowest.p50_duration.ToTimedelta() == timedelta(seconds=10)
    assert (narrowest.failure_group, narrowest.failure_share) == (BY_TAGS, 0.0)


async def test_the_widest_group_is_the_workspace_across_orchestrators(stub: Stub, database_url: str) -> None:
    await register(stub, "ada")
    await register(stub, "bob")
    await finished(stub, "ada's", ["a"])
    for n in range(4):
        await finished(stub, f"bob {n}", ["a"], orchestrator_id="bob")
    await finished(stub, "elsewhere", ["a"], orchestrator_id="bob", workspace_id="ws-2")
    await set_durations(database_url, {"ada's": 1.0} | {f"bob {n}": 3.0 for n in range(4)})
    task = await create(stub, "new", tags=["a"])

    estimate = await estimate_of(stub, task.id)

    assert samples(estimate) == [(BY_TAGS, 1, 1), (BY_ORCHESTRATOR, 1, 1), (BY_WORKSPACE, 5, 5)]
    assert (estimate.duration_group, estimate.duration_samples) == (BY_WORKSPACE, 5)
    assert estimate.p50_duration.ToTimedelta() == timedelta(seconds=3)
    assert (estimate.failure_group, estimate.failure_share) == (BY_WORKSPACE, 0.0)


async def test_an_estimate_reads_only_each_groups_most_recent_window(stub: Stub, database_url: str) -> None:
    await register(stub, "ada")
    for n in range(105):
        await finished(stub, f"run {n}", [])
    # The five oldest ran for hours: outside the window of 100, they do not count.
    await set_durations(database_url, {f"run {n}": 3600.0 if n < 5 else 2.0 for n in range(105)})
    task = await create(stub, "next")

    estimate = await estimate_of(stub, task.id)

    assert samples(estimate) == [(BY_TAGS, 100, 100), (BY_ORCHESTRATOR, 100, 100), (BY_WORKSPACE, 100, 100)]
    assert estimate.p90_duration.ToTimedelta() == timedelta(seconds=2)


async def test_too_few_samples_leave_the_figures_unset_and_say_how_few(stub: Stub) -> None:
    await register(stub, "ada")
    await finished(stub, "one", ["a"])
    await finished(stub, "two", ["a"], FAILED, error="x")
    task = await create(stub, "new", tags=["a"])

    estimate = await estimate_of(stub, task.id)

    assert not estimate.HasField("p50_duration") and not estimate.HasField("p90_duration")
    assert estimate.duration_group == task_pb2.SIMILARITY_GROUP_UNSPECIFIED == estimate.failure_group
    assert samples(estimate) == [(BY_TAGS, 1, 2), (BY_ORCHESTRATOR, 1, 2), (BY_WORKSPACE, 1, 2)]


async def estimate_of(stub: Stub, task_id: str) -> task_pb2.ExecutionEstimate:
    prepared: pb.PrepareTaskContextResponse = await stub.PrepareTaskContext(
        pb.PrepareTaskContextRequest(orchestrator_id="ada", task_id=task_id)
    )
    return prepared.context.estimate


async def test_lessons_are_validated_and_kept_with_the_result(stub: Stub) -> None:
    await register(stub, "ada")
    task = await create(stub, "t")
    attempt = (await claim(stub)).attempt
    for lessons, field in (
        ([f"l{n}" for n in range(11)], "result.lessons"),
        (["ok", ""], "result.lessons[1]"),
        (["x" * 1001], "result.lessons[0]"),
        (["nul\x00"], "result.lessons[0]"),
    ):
        await expect_error(
            complete(stub, task.id, attempt, lessons=lessons), grpc.StatusCode.INVALID_ARGUMENT, field
        )

    lessons = ["x" * 1000] + [f"lesson {n}" for n in range(9)]
    done = await complete(stub, task.id, attempt, lessons=lessons)
    assert list(done.task.result.lessons) == lessons
    again = await complete(stub, task.id, attempt, lessons=lessons)  # the identical call again
    assert list(again.task.result.lessons) == lessons


@pytest.mark.parametrize("limit", [-1, 51])
async def test_a_history_limit_out_of_range_is_refused_naming_it(stub: Stub, limit: int) -> None:
    await register(stub, "ada")
    task = await create(stub, "t")
    for call in (
        claim(stub, history_limit=limit),
        stub.ExecuteTask(pb.ExecuteTaskRequest(orchestrator_id="ada", task_id=task.id, history_limit=limit)),
        stub.PrepareTaskContext(
            pb.PrepareTaskContextRequest(orchestrator_id="ada", task_id=task.id, history_limit=limit)
        ),
    ):
        await expect_error(call, grpc.StatusCode.INVALID_ARGUMENT, "history_limit")


async def test_progress_carries_an_eta_on_the_task_and_its_event_and_a_new_attempt_starts_without(
    stub: Stub,
) -> None:
    await register(stub, "ada")
    task = await create(stub, "t")
    claimed = await claim(stub)
    assert not claimed.context.task.HasField("estimated_completion_time")
    events = watch(stub, task_id=task.id)
    first = await next_event(events)  # the snapshot
    assert first.kind == task_pb2.TASK_EVENT_KIND_SNAPSHOT

    zero = await progress(stub, task.id, claimed.attempt, 0)
    assert not zero.HasField("estimated_completion_time")  # no history, no rate: nothing to go on
    await asyncio.sleep(0.3)
    reported = await progress(stub, task.id, claimed.attempt, 10)

    eta = reported.estimated_completion_time.ToDatetime(UTC)
    assert reported.update_time.ToDatetime(UTC) + timedelta(seconds=2) < eta  # 10 % in >0.3 s: 9 x that left
    await next_event(events)  # the 0 % report
    event = await next_event(events)
    assert event.estimated_completion_time == reported.estimated_completion_time
    fetched = (await stub.GetTask(pb.GetTaskRequest(task_id=task.id))).task
    assert fetched.estimated_completion_time == reported.estimated_completion_time
    started = watch(stub, task_id=task.id, after_cursor=first.cursor - 1)  # from the STARTED event
    assert (await next_event(started)).kind == task_pb2.TASK_EVENT_KIND_STARTED
    started.cancel()
    replayed = watch(stub, task_id=task.id, after_cursor=first.cursor)
    assert (await next_event(replayed)).HasField("estimated_completion_time") is False  # the 0 % one
    assert (await next_event(replayed)).estimated_completion_time == reported.estimated_completion_time
    events.cancel()
    replayed.cancel()

    done = await complete(stub, task.id, claimed.attempt)
    assert not done.task.HasField("estimated_completion_time")


async def progress(stub: Stub, task_id: str, attempt: int, percent: int) -> task_pb2.Task:
    response: pb.UpdateTaskProgressResponse = await stub.UpdateTaskProgress(
        pb.UpdateTaskProgressRequest(task_id=task_id, attempt=attempt, progress=percent)
    )
    return response.task


@pytest.fixture
async def second_replica(database_url: str) -> AsyncIterator[Stub]:
    """Another server on the same database: it did not start the attempts it gets reports of."""
    engine = WorkEngine(Database(database_url, pool_size=4))
    running = await start_server(engine, "127.0.0.1", 0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield pb_grpc.WorkEngineServiceStub(channel)
    await running.stop(0)
    await engine.close()


async def ten_minute_history(stub: Stub, database_url: str) -> None:
    """Orchestrator ada, whose five past tasks in ws-1 each took 10 minutes."""
    await register(stub, "ada")
    for n in range(5):
        await finished(stub, f"done {n}", [])
    await set_durations(database_url, {f"done {n}": 600.0 for n in range(5)})


async def test_an_attempt_started_without_history_follows_its_rate_alone_on_every_replica(
    stub: Stub, second_replica: Stub, database_url: str
) -> None:
    await ten_minute_history(stub, database_url)
    task = await create(stub, "t")
    claimed = await claim(stub, history_limit=0)
    assert not claimed.context.HasField("estimate")

    # At 0 %, with no estimate asked for, nothing to go on, here or there.
    for replica in (stub, second_replica):
        assert not (await progress(replica, task.id, claimed.attempt, 0)).HasField(
            "estimated_completion_time"
        )
    await asyncio.sleep(0.2)
    # At 10 %, the rate alone (9 x the time run so far), not blended with the 10-minute estimate.
    start = claimed.context.task.start_time.ToDatetime(UTC)
    for replica in (stub, second_replica):
        reported = await progress(replica, task.id, claimed.attempt, 10)
        eta = reported.estimated_completion_time.ToDatetime(UTC)
        assert eta - start < timedelta(seconds=30), (eta, start)


async def test_an_attempt_s_estimate_leaves_out_work_that_ended_after_it_started(
    stub: Stub, second_replica: Stub, database_url: str
) -> None:
    await ten_minute_history(stub, database_url)
    task = await create(stub, "t")
    claimed = await claim(stub)
    # Work that ends after the attempt started is not in its estimate: 1 s, five times.
    for n in range(5):
        await finished(stub, f"later {n}", [])
    await set_durations(database_url, {f"later {n}": 1.0 for n in range(5)})

    there = await progress(second_replica, task.id, claimed.attempt, 0)  # reads it afresh

    start = claimed.context.task.start_time.ToDatetime(UTC)
    eta = there.estimated_completion_time.ToDatetime(UTC)
    assert abs(eta - (start + timedelta(minutes=10))) < timedelta(seconds=2), (eta, start)


async def test_a_report_to_another_replica_blends_the_same_estimate(
    stub: Stub, second_replica: Stub, database_url: str
) -> None:
    await ten_minute_history(stub, database_url)
    task = await create(stub, "t")
    claimed = await claim(stub)
    assert claimed.context.estimate.p50_duration.ToTimedelta() == timedelta(minutes=10)

    # At 0 % only the estimate speaks: about 10 minutes from the start, on either replica.
    here = await progress(stub, task.id, claimed.attempt, 0)
    there = await progress(second_replica, task.id, claimed.attempt, 0)
    start = claimed.context.task.start_time.ToDatetime(UTC)
    for reported in (here, there):
        eta = reported.estimated_completion_time.ToDatetime(UTC)
        assert abs(eta - (start + timedelta(minutes=10))) < timedelta(seconds=2), (eta, start)
    assert datetime.now(UTC) < there.estimated_completion_time.ToDatetime(UTC)


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
def test_the_history_statement_walks_the_finished_attempts_indexes(
    database_url: str, plan_cache_mode: str
) -> None:
    """60,000 finished attempts, analyzed: a plan that read them all would show. Generic too:
    the server prepares its statements."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"SET plan_cache_mode = {plan_cache_mode}")
        connection.execute(
            "INSERT INTO orchestrators (id, display_name, status) VALUES ('ada', 'Ada', 'ONLINE')"
        )
        connection.execute(
            """INSERT INTO tasks (id, orchestrator_id, workspace_id, title, priority, status, tags, attempt)
               SELECT 'x' || g, 'ada', 'ws-' || g % 3, 't', 2, 'DONE', ARRAY['t' || g % 4], 1
               FROM generate_series(1, 60000) g"""
        )
        connection.execute(
            """INSERT INTO task_attempts (task_id, attempt, started_at, ended_at, outcome, orchestrator_id,
                                          workspace_id, tag_key)
               SELECT id, 1, now() - interval '2 hours', now() - random() * interval '1 hour', 'COMPLETED',
                      orchestrator_id, workspace_id, tag_set_key(tags)
               FROM tasks"""
        )
        connection.execute("ANALYZE tasks; ANALYZE task_attempts")
        params = {
            "task_id": "x1",
            "orchestrator_id": "ada",
            "workspace_id": "ws-1",
            "tags": ["t1"],
            "history_limit": 50,
            "window": 100,
            "before": datetime.now(UTC),
        }
        # A statement prepared on the server, as the store's are once run a few times.
        prepared = statements.statement("execution_memory")
        # The simple query protocol: with the extended one, $1 would be PREPARE's own parameter.
        result = connection.pgconn.exec_(f"PREPARE memory AS {prepared.sql}".encode())
        assert result.status == psycopg.pq.ExecStatus.COMMAND_OK, result.error_message
        values = sql.SQL(", ").join(sql.Literal(v) for v in prepared.values(params))
        found = connection.execute(sql.SQL("EXPLAIN (FORMAT TEXT) EXECUTE memory({})").format(values))
        plan = "\n".join(row[0] for row in found)
    if plan_cache_mode == "force_generic_plan":
        assert "$1" in plan, plan
    assert "Seq Scan" not in plan, plan
    for index in (
        "task_attempts_similar_idx",
        "task_attempts_orchestrator_idx",
        "task_attempts_workspace_idx",
    ):
        assert f"Index Scan Backward using {index}" in plan, plan
    assert "task_attempts_pkey" in plan, plan
    # The window's end bounds each walk (an index condition), it does not filter it.
    bounded = [line for line in plan.splitlines() if "Index Cond: " in line and "(ended_at <" in line]
    assert len(bounded) == 3, plan
    assert not [line for line in plan.splitlines() if "Filter:" in line and "ended_at <" in line], plan


async def test_attempts_recorded_before_the_history_are_grouped_by_the_duty(
    stub: Stub, engine: WorkEngine, database_url: str
) -> None:
    await register(stub, "ada")
    done = [await finished(stub, f"old {n}", ["a"]) for n in range(3)]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        # As migration 0008 leaves the attempts recorded before it.
        await connection.execute(
            "UPDATE task_attempts SET orchestrator_id = NULL, workspace_id = NULL, tag_key = NULL"
        )
    task = await create(stub, "new", tags=["a"])
    assert [p.source for p in (await context_of(stub, task.id)).history] == []

    grouped = await AttemptGrouping(engine.db, batch=2).run()

    assert grouped == 3
    assert [p.task_id for p in (await context_of(stub, task.id)).history] == done[::-1]
    assert await AttemptGrouping(engine.db, batch=2).run() == 0


async def context_of(stub: Stub, task_id: str) -> task_pb2.TaskContext:
    prepared: pb.PrepareTaskContextResponse = await stub.PrepareTaskContext(
        pb.PrepareTaskContextRequest(orchestrator_id="ada", task_id=task_id)
    )
    return prepared.context


def test_a_tag_set_key_ignores_order_and_repeats_and_keeps_sets_apart(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:

        def key(*tags: str) -> str:
            found = connection.execute("SELECT tag_set_key(%s)", [list(tags)]).fetchone()
            assert found is not None
            return str(found[0])

        assert key("b", "a") == key("a", "b", "a")
        assert key() != key("")
        assert len({key("a", "b"), key("a\x1fb"), key("a,b"), key("a", "b,"), key("ab")}) == 5
