"""Scheduled starts (CreateTask.not_before): a task is not ready before its time, shows BLOCKED
until then, and becomes TODO by itself at that time, waking a claim parked for work; with
dependencies, at the later of the two."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from tests.integration.helpers import Stub, claim, complete, create, expect_error, register, timestamp
from tests.integration.monitoring import monitored_server, value
from workengine.domain.model import NewTask
from workengine.engine.tasks import request_fingerprint
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb

BLOCKED, TODO = task_pb2.TASK_STATUS_BLOCKED, task_pb2.TASK_STATUS_TODO


def seconds_from_now(value: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=value)


async def get(stub: Stub, task_id: str) -> task_pb2.Task:
    response: pb.GetTaskResponse = await stub.GetTask(pb.GetTaskRequest(task_id=task_id))
    return response.task


async def test_a_scheduled_task_is_blocked_until_its_time_then_wakes_a_parked_claim(stub: Stub) -> None:
    await register(stub, "ada")
    start = seconds_from_now(1.5)
    task = await create(stub, "later", not_before=timestamp(start))

    assert task.status == BLOCKED and task.status_reason.startswith("scheduled: not before")
    assert task.retry_time == task.not_before_time == timestamp(start)
    assert not (await stub.SelectNextTask(pb.SelectNextTaskRequest(orchestrator_id="ada"))).HasField("task")
    assert not (await claim(stub)).HasField("context")
    executed = await stub.ExecuteTask(pb.ExecuteTaskRequest(orchestrator_id="ada", task_id=task.id))
    assert executed.outcome == pb.EXECUTE_OUTCOME_BLOCKED and executed.blocked_reason.startswith("scheduled")
    stats = await stub.GetExecutionStats(pb.GetExecutionStatsRequest(orchestrator_id="ada"))
    assert [(c.status, c.count) for c in stats.by_status] == [(BLOCKED, 1)]
    explained = await stub.ExplainSelection(
        pb.ExplainSelectionRequest(orchestrator_id="ada", task_ids=[task.id])
    )
    (why,) = explained.explained
    assert why.reason == pb.NOT_FIRST_REASON_BLOCKED and why.detail.startswith("scheduled; back to TODO at")

    began = time.monotonic()
    claimed = await claim(stub, wait=duration(10))  # parked: woken by the release, not by a poll

    assert claimed.context.task.id == task.id
    assert datetime.now(UTC) >= start
    # Woken by the release: a claim not woken would re-check only after 10 s, at its wait's end.
    assert time.monotonic() - began < 8
    assert claimed.context.task.not_before_time == timestamp(start)
    assert not claimed.context.task.HasField("retry_time")


def duration(value: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromTimedelta(timedelta(seconds=value))
    return message


async def test_a_start_time_already_past_is_ready_at_once(stub: Stub) -> None:
    await register(stub, "ada")
    past = datetime.now(UTC) - timedelta(minutes=5)
    task = await create(stub, "now", not_before=timestamp(past))
    assert task.status == TODO and not task.HasField("retry_time") and task.status_reason == ""
    assert task.not_before_time == timestamp(past)
    assert (await claim(stub)).context.task.id == task.id


async def test_dependencies_met_before_the_start_time_leave_it_to_the_scheduler(stub: Stub) -> None:
    await register(stub, "ada")
    first = await create(stub, "first")
    start = seconds_from_now(1.5)
    task = await create(stub, "then", depends_on=[first.id], not_before=timestamp(start))
    assert task.status == BLOCKED and task.unmet_dependency_count == 1 and not task.HasField("retry_time")
    assert task.status_reason == "waiting on 1 unmet dependency"

    attempt = (await claim(stub)).attempt
    done = await complete(stub, first.id, attempt)

    assert list(done.unblocked_task_ids) == []
    waiting = await get(stub, task.id)
    assert waiting.status == BLOCKED and waiting.unmet_dependency_count == 0
    assert waiting.retry_time == timestamp(start) and waiting.status_reason.startswith("scheduled")
    claimed = await claim(stub, wait=duration(10))
    assert claimed.context.task.id == task.id and datetime.now(UTC) >= start


async def test_a_start_time_passed_while_waiting_on_dependencies_starts_with_the_last_one(stub: Stub) -> None:
    await register(stub, "ada")
    first = await create(stub, "first")
    task = await create(stub, "then", depends_on=[first.id], not_before=timestamp(seconds_from_now(0.3)))
    await asyncio.sleep(0.5)
    assert (await get(stub, task.id)).status == BLOCKED  # the scheduler leaves it to its dependency

    attempt = (await claim(stub)).attempt
    done = await complete(stub, first.id, attempt)

    assert list(done.unblocked_task_ids) == [task.id]
    assert (await get(stub, task.id)).status == TODO


async def test_a_scheduled_task_can_be_cancelled_and_its_time_is_validated(stub: Stub) -> None:
    await register(stub, "ada")
    task = await create(stub, "later", not_before=timestamp(seconds_from_now(3600)))
    cancelled = await stub.CancelTask(pb.CancelTaskRequest(task_id=task.id, reason="not needed"))
    assert cancelled.task.status == task_pb2.TASK_STATUS_CANCELLED and not cancelled.task.HasField(
        "retry_time"
    )

    request = pb.CreateTaskRequest(orchestrator_id="ada", workspace_id="ws-1", title="far")
    request.not_before.FromDatetime(datetime(9999, 12, 30, tzinfo=UTC))
    await expect_error(stub.CreateTask(request), grpc.StatusCode.INVALID_ARGUMENT, "not_before")


@pytest.mark.parametrize("not_before", [None, datetime(2030, 1, 1, tzinfo=UTC)])
def test_a_request_fingerprint_without_a_start_time_is_the_one_made_before_start_times(
    not_before: datetime | None,
) -> None:
    # An idempotent CreateTask retried across the upgrade is still the same request.
    new = NewTask(id="", orchestrator_id="ada", workspace_id="ws", title="t", not_before=not_before)
    fingerprint = request_fingerprint(new)
    assert (fingerprint == _fingerprint_without_not_before(new)) == (not_before is None)


def _fingerprint_without_not_before(new: NewTask) -> str:
    """request_fingerprint as it was written before scheduled starts."""
    fields = asdict(new)
    del fields["not_before"]
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def test_a_started_task_reported_blocked_is_not_called_scheduled(stub: Stub) -> None:
    await register(stub, "ada")
    task = await create(stub, "was scheduled", not_before=timestamp(datetime.now(UTC) - timedelta(seconds=1)))
    claimed = await claim(stub)
    await complete(stub, task.id, claimed.attempt, pb.COMPLETION_STATUS_BLOCKED)  # no reason given

    blocked = await get(stub, task.id)

    assert blocked.status == BLOCKED and blocked.status_reason == ""
    explained = await stub.ExplainSelection(
        pb.ExplainSelectionRequest(orchestrator_id="ada", task_ids=[task.id])
    )
    assert explained.explained[0].detail == "reported BLOCKED; BLOCKED until cancelled"


async def test_dependencies_done_at_creation_or_cancelled_leave_it_to_its_time(stub: Stub) -> None:
    await register(stub, "ada")
    done, cancelled = await create(stub, "done"), await create(stub, "cancelled")
    attempt = (await claim(stub)).attempt
    await complete(stub, done.id, attempt)
    start = seconds_from_now(1.5)
    met = await create(stub, "deps met", depends_on=[done.id], not_before=timestamp(start))
    waiting = await create(
        stub, "deps waiting", depends_on=[done.id, cancelled.id], not_before=timestamp(start)
    )
    assert met.status == BLOCKED and met.retry_time == timestamp(start)
    assert waiting.status == BLOCKED and waiting.unmet_dependency_count == 1

    released = await stub.CancelTask(pb.CancelTaskRequest(task_id=cancelled.id))

    assert list(released.unblocked_task_ids) == []
    assert (await get(stub, waiting.id)).retry_time == timestamp(start)
    first, second = await claim(stub, wait=duration(10)), await claim(stub, wait=duration(10))
    assert {first.context.task.id, second.context.task.id} == {met.id, waiting.id}
    assert datetime.now(UTC) >= start


async def test_an_idempotent_create_with_a_start_time_is_the_same_request_only_with_the_same_time(
    stub: Stub,
) -> None:
    await register(stub, "ada")
    start = timestamp(seconds_from_now(3600))

    def request(not_before: timestamp_pb2.Timestamp | None) -> pb.CreateTaskRequest:
        made = pb.CreateTaskRequest(
            orchestrator_id="ada", workspace_id="ws-1", title="t", idempotency_key="k"
        )
        if not_before is not None:
            made.not_before.CopyFrom(not_before)
        return made

    first = (await stub.CreateTask(request(start))).task
    again = (await stub.CreateTask(request(start))).task
    assert again == first
    for different in (timestamp(seconds_from_now(7200)), None):
        await expect_error(
            stub.CreateTask(request(different)), grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key"
        )


async def test_a_scheduled_release_is_not_counted_as_a_retry(database_url: str) -> None:
    async with monitored_server(database_url) as server:
        await register(server.stub, "ada")
        await create(server.stub, "later", not_before=timestamp(seconds_from_now(0.5)))
        assert (await claim(server.stub, wait=duration(10))).HasField("context")

        samples = await server.scrape()

        assert value(samples, "workengine_task_retries_total", reason="retry_after") == 0
        assert value(samples, "workengine_tasks_started_total") == 1
