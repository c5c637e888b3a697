"""Leases: a started task is held only while its daemon shows signs of life. Expired leases
return the task (or fail it when out of attempts), late reports are refused with a reason the
daemon can act on, and every attempt is kept in the task's history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import psycopg
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.integration.helpers import Stub, claim, complete, create, expect_error, register
from workengine.engine import WorkEngine
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb


def seconds(value: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(timedelta(seconds=value))
    return duration


def error_reason(error: grpc.aio.AioRpcError) -> str:
    """The google.rpc.ErrorInfo reason the server attached, if any."""
    status = rpc_status.from_call(error)
    assert status is not None, error.details()
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert info.domain == "workengine.v1"
            return str(info.reason)
    return ""


async def refused(call: object, reason: str) -> None:
    error = await expect_error(call, grpc.StatusCode.FAILED_PRECONDITION)
    assert error_reason(error) == reason, error.details()


async def heartbeat(
    stub: Stub, task_id: str, attempt: int, lease: duration_pb2.Duration | None = None
) -> pb.HeartbeatResponse:
    request = pb.HeartbeatRequest(task_id=task_id, attempt=attempt, lease_duration=lease)
    response: pb.HeartbeatResponse = await stub.Heartbeat(request)
    return response


async def progress(
    stub: Stub, task_id: str, attempt: int, percent: int = 10
) -> pb.UpdateTaskProgressResponse:
    request = pb.UpdateTaskProgressRequest(task_id=task_id, attempt=attempt, progress=percent)
    response: pb.UpdateTaskProgressResponse = await stub.UpdateTaskProgress(request)
    return response


async def get(stub: Stub, task_id: str) -> pb.GetTaskResponse:
    response: pb.GetTaskResponse = await stub.GetTask(pb.GetTaskRequest(task_id=task_id))
    return response


async def wait_for_status(stub: Stub, task_id: str, status: int, within: float = 5.0) -> task_pb2.Task:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        task = (await get(stub, task_id)).task
        if task.status == status or asyncio.get_running_loop().time() > deadline:
            assert task.status == status, task_pb2.TaskStatus.Name(task.status)
            return task
        await asyncio.sleep(0.05)


def expires_in(task: task_pb2.Task) -> float:
    return (task.lease_expire_time.ToDatetime(tzinfo=UTC) - datetime.now(UTC)).total_seconds()


async def test_a_start_holds_the_lease_it_asked_for_else_the_tasks_else_the_default(stub: Stub) -> None:
    await register(stub)
    default = await create(stub, "default", priority="CRITICAL")
    own = await create(stub, "own", priority="HIGH", lease_duration=seconds(120))
    asked = await create(stub, "asked", priority="MEDIUM", lease_duration=seconds(120))

    by_default = await claim(stub)
    by_task = await claim(stub)
    by_request = await stub.ExecuteTask(
        pb.ExecuteTaskRequest(orchestrator_id="ada", task_id=asked.id, lease_duration=seconds(30))
    )

    assert by_default.context.task.id == default.id
    assert 290 < expires_in(by_default.context.task) <= 300
    assert by_task.context.task.id == own.id and by_task.context.task.lease_duration.seconds == 120
    assert 110 < expires_in(by_task.context.task) <= 120
    assert 20 < expires_in(by_request.context.task) <= 30
    await expect_error(
        claim(stub, lease_duration=seconds(0.5)), grpc.StatusCode.INVALID_ARGUMENT, "lease_duration"
    )
    await expect_error(
        claim(stub, lease_duration=seconds(86_401)), grpc.StatusCode.INVALID_ARGUMENT, "lease_duration"
    )


async def test_heartbeats_and_progress_extend_the_lease(stub: Stub) -> None:
    await register(stub)
    await create(stub, lease_duration=seconds(30))
    claimed = await claim(stub)
    task_id, attempt = claimed.context.task.id, claimed.attempt

    extended: pb.HeartbeatResponse = await heartbeat(stub, task_id, attempt, seconds(600))
    assert (
        590 < (extended.lease_expire_time.ToDatetime(tzinfo=UTC) - datetime.now(UTC)).total_seconds() <= 600
    )

    # Progress renews by the attempt's own lease length, like a heartbeat without a duration.
    reported: pb.UpdateTaskProgressResponse = await progress(stub, task_id, attempt)
    assert 20 < expires_in(reported.task) <= 30
    again: pb.HeartbeatResponse = await heartbeat(stub, task_id, attempt)
    assert 20 < (again.lease_expire_time.ToDatetime(tzinfo=UTC) - datetime.now(UTC)).total_seconds() <= 30


async def test_a_heartbeating_daemon_keeps_its_task_past_the_lease(stub: Stub) -> None:
    await register(stub)
    await create(stub, lease_duration=seconds(1))
    claimed = await claim(stub)
    for _ in range(6):  # 1.8 s in all, with the reaper looking every 0.2 s
        await asyncio.sleep(0.3)
        await heartbeat(stub, claimed.context.task.id, claimed.attempt)

    await complete(stub, claimed.context.task.id, claimed.attempt)

    done = await get(stub, claimed.context.task.id)
    assert done.task.status == task_pb2.TASK_STATUS_DONE and done.task.lease_expiry_count == 0


async def test_an_expired_lease_returns_the_task_and_refuses_the_late_reports(stub: Stub) -> None:
    await register(stub)
    task = await create(stub, lease_duration=seconds(1))
    first = await claim(stub, identity="daemon-1")

    await asyncio.sleep(1.1)
    # Expired but perhaps not yet reaped: lost all the same.
    await refused(heartbeat(stub, task.id, first.attempt), "LEASE_EXPIRED")
    returned = await wait_for_status(stub, task.id, task_pb2.TASK_STATUS_TODO)

    assert returned.lease_expiry_count == 1 and returned.failure_count == 0
    assert returned.status_reason == "lease expired"
    assert not returned.HasField("lease_expire_time")
    await refused(progress(stub, task.id, first.attempt), "LEASE_EXPIRED")
    await refused(complete(stub, task.id, first.attempt), "LEASE_EXPIRED")

    second = await claim(stub, identity="daemon-2")
    assert second.context.task.id == task.id and second.attempt == first.attempt + 1
    await refused(complete(stub, task.id, first.attempt), "ATTEMPT_SUPERSEDED")
    await refused(heartbeat(stub, task.id, second.attempt + 1), "ATTEMPT_NOT_STARTED")
    await complete(stub, task.id, second.attempt)

    history = (await get(stub, task.id)).attempts
    assert [(a.attempt, a.identity, a.outcome) for a in history] == [
        (1, "daemon-1", task_pb2.ATTEMPT_OUTCOME_LEASE_EXPIRED),
        (2, "daemon-2", task_pb2.ATTEMPT_OUTCOME_COMPLETED),
    ]
    assert history[0].reason == "lease expired"
    assert history[0].end_time.ToDatetime() <= history[1].start_time.ToDatetime()


async def test_the_lease_expiry_is_an_event(stub: Stub) -> None:
    await register(stub)
    task = await create(stub, lease_duration=seconds(1))
    watch = stub.WatchTaskProgress(pb.WatchTaskProgressRequest(task_id=task.id))
    snapshot = await watch.read()
    claimed = await claim(stub)
    kinds = [snapshot.event.kind]
    while True:
        response = await watch.read()
        kinds.append(response.event.kind)
        if response.event.kind == task_pb2.TASK_EVENT_KIND_LEASE_EXPIRED:
            assert response.event.task.status == task_pb2.TASK_STATUS_TODO
            assert response.event.attempt == claimed.attempt
            assert response.event.message == "lease expired"
            break
    watch.cancel()
    assert kinds == [
        task_pb2.TASK_EVENT_KIND_SNAPSHOT,
        task_pb2.TASK_EVENT_KIND_STARTED,
        task_pb2.TASK_EVENT_KIND_LEASE_EXPIRED,
    ]


async def test_out_of_attempts_the_task_fails_and_retry_needs_a_bigger_budget(stub: Stub) -> None:
    await register(stub)
    task = await create(stub, lease_duration=seconds(1), max_attempts=2)
    for _ in range(2):
        await claim(stub)
        await asyncio.sleep(1.0)
        await wait_for_status(
            stub, task.id, task_pb2.TASK_STATUS_TODO if _ == 0 else task_pb2.TASK_STATUS_FAILED
        )

    failed = (await get(stub, task.id)).task
    assert failed.lease_expiry_count == 2 and failed.status_reason == "lease expired"
    assert failed.HasField("complete_time")
    await expect_error(
        stub.RetryTask(pb.RetryTaskRequest(task_id=task.id)), grpc.StatusCode.FAILED_PRECONDITION, "all 2"
    )

    retried: pb.RetryTaskResponse = await stub.RetryTask(pb.RetryTaskRequest(task_id=task.id, max_attempts=3))

    assert retried.task.status == task_pb2.TASK_STATUS_TODO and retried.task.max_attempts == 3
    assert not retried.task.HasField("complete_time")
    assert (await claim(stub)).context.task.id == task.id


async def test_reported_failures_count_against_the_budget(stub: Stub) -> None:
    await register(stub)
    task = await create(stub, max_attempts=2)
    first = await claim(stub)
    await complete(stub, task.id, first.attempt, pb.COMPLETION_STATUS_FAILED, error="flaky")

    retried: pb.RetryTaskResponse = await stub.RetryTask(pb.RetryTaskRequest(task_id=task.id))
    assert retried.task.failure_count == 1 and retried.task.status == task_pb2.TASK_STATUS_TODO
    second = await claim(stub)
    await complete(stub, task.id, second.attempt, pb.COMPLETION_STATUS_FAILED, error="flaky again")

    await expect_error(
        stub.RetryTask(pb.RetryTaskRequest(task_id=task.id)), grpc.StatusCode.FAILED_PRECONDITION
    )
    history = (await get(stub, task.id)).attempts
    assert [(a.outcome, a.reason) for a in history] == [
        (task_pb2.ATTEMPT_OUTCOME_FAILED, "flaky"),
        (task_pb2.ATTEMPT_OUTCOME_FAILED, "flaky again"),
    ]


async def test_an_expiry_spends_the_budget_with_failures_but_not_blocked_reports(stub: Stub) -> None:
    """The reaper's SQL: lease expiries plus reported failures reach max_attempts -> FAILED;
    a BLOCKED report is no failure."""
    await register(stub)
    failing = await create(stub, "fails, then expires", lease_duration=seconds(1), max_attempts=2)
    first = await claim(stub)
    await complete(stub, failing.id, first.attempt, pb.COMPLETION_STATUS_FAILED, error="flaky")
    await stub.RetryTask(pb.RetryTaskRequest(task_id=failing.id))
    assert (await claim(stub)).context.task.id == failing.id
    failed = await wait_for_status(stub, failing.id, task_pb2.TASK_STATUS_FAILED)
    assert (failed.failure_count, failed.lease_expiry_count) == (1, 1)

    blocking = await create(stub, "blocked, then expires", lease_duration=seconds(1), max_attempts=2)
    started = await claim(stub)
    await stub.CompleteTask(
        pb.CompleteTaskRequest(
            task_id=blocking.id,
            attempt=started.attempt,
            status=pb.COMPLETION_STATUS_BLOCKED,
            result=task_pb2.TaskResult(error="rate limited"),
            retry_after=seconds(1),
        )
    )
    again = await claim(stub, wait=seconds(10))
    assert again.context.task.id == blocking.id and again.attempt == 2
    returned = await wait_for_status(stub, blocking.id, task_pb2.TASK_STATUS_TODO)
    assert (returned.failure_count, returned.lease_expiry_count) == (0, 1)


async def test_retry_is_only_for_failed_tasks(stub: Stub) -> None:
    await register(stub)
    task = await create(stub)
    await expect_error(
        stub.RetryTask(pb.RetryTaskRequest(task_id=task.id)), grpc.StatusCode.FAILED_PRECONDITION, "TODO"
    )
    await expect_error(stub.RetryTask(pb.RetryTaskRequest(task_id="missing")), grpc.StatusCode.NOT_FOUND)
    await expect_error(
        stub.RetryTask(pb.RetryTaskRequest(task_id=task.id, max_attempts=101)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "max_attempts",
    )
    await expect_error(create(stub, max_attempts=-1), grpc.StatusCode.INVALID_ARGUMENT, "max_attempts")


async def test_a_cancelled_task_tells_its_daemon_to_stop(stub: Stub) -> None:
    await register(stub)
    task = await create(stub)
    claimed = await claim(stub)
    await stub.CancelTask(pb.CancelTaskRequest(task_id=task.id, reason="not needed"))

    await refused(heartbeat(stub, task.id, claimed.attempt), "TASK_CANCELLED")
    await refused(progress(stub, task.id, claimed.attempt), "TASK_CANCELLED")
    await refused(complete(stub, task.id, claimed.attempt), "TASK_CANCELLED")
    cancelled = await get(stub, task.id)
    assert not cancelled.task.HasField("lease_expire_time")
    assert [(a.outcome, a.reason) for a in cancelled.attempts] == [
        (task_pb2.ATTEMPT_OUTCOME_CANCELLED, "not needed")
    ]


async def test_a_finished_task_refuses_heartbeats(stub: Stub) -> None:
    await register(stub)
    task = await create(stub)
    claimed = await claim(stub)
    await complete(stub, task.id, claimed.attempt)

    await refused(heartbeat(stub, task.id, claimed.attempt), "TASK_NOT_RUNNING")
    await expect_error(heartbeat(stub, "missing", 1), grpc.StatusCode.NOT_FOUND)
    await expect_error(heartbeat(stub, task.id, 0), grpc.StatusCode.INVALID_ARGUMENT, "attempt")


async def test_the_default_identity_is_the_callers_address(stub: Stub) -> None:
    await register(stub)
    task = await create(stub)
    await claim(stub)

    (attempt,) = (await get(stub, task.id)).attempts
    assert attempt.identity.startswith("ipv4:127.0.0.1:"), attempt.identity
    assert attempt.outcome == task_pb2.ATTEMPT_OUTCOME_RUNNING and not attempt.HasField("end_time")


async def test_reapers_in_several_processes_expire_each_lease_once(
    stub: Stub, engine: WorkEngine, replica: object
) -> None:
    from tests.integration.replicas import ReplicaFactory
    from workengine.engine.feed import FeedSettings

    assert callable(replica)
    start: ReplicaFactory = replica
    others = [await start(FeedSettings()) for _ in range(2)]
    await register(stub)
    ids = [(await create(stub, f"t{n}", lease_duration=seconds(1))).id for n in range(60)]
    for _ in ids:
        await claim(stub)
    await asyncio.sleep(1.05)

    # Every process's reaper at once, on top of the background ones.
    reaped = await asyncio.gather(
        engine.deadlines.reap_expired_leases(),
        *(o.engine.deadlines.reap_expired_leases() for o in others),
    )

    assert sum(reaped) <= len(ids)
    for task_id in ids:
        task = await wait_for_status(stub, task_id, task_pb2.TASK_STATUS_TODO)
        assert task.lease_expiry_count == 1
    async with engine.db.autocommit() as session:
        page = await session.events.tail(0, 10_000)
    expiries = [e.task.id for e in page.events if e.kind.value == "LEASE_EXPIRED"]
    assert sorted(expiries) == sorted(ids)


async def test_the_schema_refuses_a_running_task_without_a_lease(stub: Stub, database_url: str) -> None:
    await register(stub)
    task = await create(stub)
    with (
        psycopg.connect(database_url, autocommit=True) as connection,
        pytest.raises(psycopg.errors.CheckViolation, match="tasks_running_has_lease"),
    ):
        connection.execute("UPDATE tasks SET status = 'IN_PROGRESS' WHERE id = %s", (task.id,))
