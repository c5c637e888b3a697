"""workengine.client's typed errors, against the real server: the refusals a daemon acts on
(ReportRefused and its reason), NotFound and InvalidArgument naming the field, streams raising
them too, and the raw grpc error still reachable from each."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from workengine.client import (
    AsyncWorkEngineClient,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    Refusal,
    ReportRefused,
    WorkEngineClient,
    WorkEngineError,
    errors,
)
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb


@pytest.fixture
async def client(target: str) -> Any:
    async with AsyncWorkEngineClient(target) as opened:
        await opened.register_orchestrator("Ada", orchestrator_id="ada")
        yield opened


async def claimed_task(client: AsyncWorkEngineClient, lease: timedelta | None = None) -> tuple[str, int]:
    await client.create_task("ada", "ws", "work")
    claimed = await client.claim_next_task("ada", lease_duration=lease)
    return claimed.context.task.id, claimed.attempt


async def wait_until_todo(client: AsyncWorkEngineClient, task_id: str) -> None:
    for _ in range(100):
        if (await client.get_task(task_id)).status == task_pb2.TASK_STATUS_TODO:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the lease never expired")


async def test_a_report_after_the_lease_expired_is_refused_with_lease_expired_then_superseded(
    client: AsyncWorkEngineClient,
) -> None:
    task_id, attempt = await claimed_task(client, lease=timedelta(seconds=1))
    await wait_until_todo(client, task_id)

    with pytest.raises(ReportRefused) as expired:
        await client.heartbeat(task_id, attempt)
    again = await client.claim_next_task("ada")
    with pytest.raises(ReportRefused) as superseded:
        await client.update_task_progress(task_id, attempt, 50)

    assert again.attempt == attempt + 1
    assert expired.value.reason is Refusal.LEASE_EXPIRED
    assert superseded.value.reason is Refusal.ATTEMPT_SUPERSEDED
    assert superseded.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_report_on_a_cancelled_task_is_refused_with_task_cancelled(
    client: AsyncWorkEngineClient,
) -> None:
    task_id, attempt = await claimed_task(client)
    await client.cancel_task(task_id, "not needed")

    with pytest.raises(ReportRefused) as on_complete:
        await client.complete_task(task_id, attempt, output={"late": True})

    assert on_complete.value.reason == "TASK_CANCELLED"
    assert isinstance(on_complete.value, FailedPrecondition)


async def test_a_refused_call_that_is_not_a_report_is_a_failed_precondition_with_its_reason(
    client: AsyncWorkEngineClient,
) -> None:
    task = await client.create_task("ada", "ws", "fine")

    with pytest.raises(FailedPrecondition) as raised:
        await client.retry_task(task.id)  # only a FAILED task can be retried

    assert not isinstance(raised.value, ReportRefused)
    assert raised.value.reason is Refusal.TASK_NOT_RUNNING


async def test_not_found_and_invalid_argument_name_the_field(client: AsyncWorkEngineClient) -> None:
    task_id, attempt = await claimed_task(client)

    with pytest.raises(NotFound) as unknown_task:
        await client.get_task("nope")
    with pytest.raises(NotFound) as unknown_dependency:
        await client.create_task("ada", "ws", "after", depends_on=["missing"])
    with pytest.raises(InvalidArgument) as too_much:
        await client.update_task_progress(task_id, attempt, 150)

    assert unknown_task.value.field == "task_id"
    info = unknown_task.value.detail(error_details_pb2.ErrorInfo)  # the server's structured detail
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "NOT_FOUND",
        "workengine.v1",
        {"field": "task_id"},
    )
    assert unknown_dependency.value.field == "depends_on"
    assert too_much.value.field == "progress"
    assert too_much.value.description and not too_much.value.description.startswith("progress:")


async def test_the_raw_grpc_error_stays_reachable(client: AsyncWorkEngineClient) -> None:
    with pytest.raises(grpc.RpcError) as raised:  # code written against raw errors still works
        await client.get_task("nope")

    error = raised.value
    assert isinstance(error, NotFound) and isinstance(error, WorkEngineError)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "task_id: task nope not found"
    assert str(error) == "NOT_FOUND: task_id: task nope not found"
    assert isinstance(error.rpc_error, grpc.aio.AioRpcError)
    assert error.__cause__ is error.rpc_error
    assert error.rpc_error.code() == grpc.StatusCode.NOT_FOUND
    status = rpc_status.from_call(error)  # grpc_status reads it as it reads the original
    assert status is not None and status.code == code_pb2.NOT_FOUND


async def test_a_stream_raises_typed_errors_too(client: AsyncWorkEngineClient) -> None:
    with pytest.raises(OutOfRange) as raised:
        async for _ in client.watch_task_progress(orchestrator_id="ada", after_cursor=10**12):
            pass

    assert raised.value.code() == grpc.StatusCode.OUT_OF_RANGE


async def test_the_sync_client_raises_the_same_typed_errors(target: str) -> None:
    def work() -> tuple[WorkEngineError, WorkEngineError, WorkEngineError]:
        with WorkEngineClient(target) as sync:
            sync.register_orchestrator("Ada", orchestrator_id="ada")
            task = sync.create_task("ada", "ws", "t")
            claimed = sync.claim_next_task("ada")
            sync.cancel_task(task.id)
            with pytest.raises(ReportRefused) as refused:
                sync.heartbeat(task.id, claimed.attempt)
            with pytest.raises(NotFound) as missing:
                sync.get_orchestrator("nobody")
            with pytest.raises(OutOfRange) as pruned:
                list(sync.watch_task_progress(task_id=task.id, after_cursor=10**12))
            return refused.value, missing.value, pruned.value

    refused, missing, pruned = await asyncio.to_thread(work)

    assert isinstance(refused, ReportRefused) and refused.reason is Refusal.TASK_CANCELLED
    assert isinstance(missing, NotFound) and missing.field == "orchestrator_id"
    assert isinstance(missing.rpc_error, grpc.RpcError) and not isinstance(missing.rpc_error, WorkEngineError)
    assert pruned.code() == grpc.StatusCode.OUT_OF_RANGE


class FakeRpcError(grpc.RpcError):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str, *rich: Any) -> None:
        self._code, self._details = code, details
        status = status_pb2.Status(code=code.value[0], message=details)
        for detail in rich:
            status.details.add().Pack(detail)
        self._trailing = (("grpc-status-details-bin", status.SerializeToString()),) if rich else ()

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._trailing


def test_a_reason_this_client_does_not_know_is_kept_as_text() -> None:
    info = error_details_pb2.ErrorInfo(reason="TASK_ON_FIRE", domain="workengine.v1")
    error = errors.from_rpc_error(FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "hot", info), "Heartbeat")

    assert isinstance(error, ReportRefused)
    assert error.reason == "TASK_ON_FIRE" and not isinstance(error.reason, Refusal)


def test_every_code_has_its_class_and_fields_fall_back_to_the_message() -> None:
    def typed(code: grpc.StatusCode, details: str = "x") -> WorkEngineError:
        return errors.from_rpc_error(FakeRpcError(code, details), "GetTask")

    assert type(typed(grpc.StatusCode.UNAVAILABLE)) is errors.Unavailable
    assert type(typed(grpc.StatusCode.ALREADY_EXISTS)) is errors.AlreadyExists
    assert type(typed(grpc.StatusCode.PERMISSION_DENIED)) is errors.PermissionDenied
    assert type(typed(grpc.StatusCode.UNAUTHENTICATED)) is errors.Unauthenticated
    assert type(typed(grpc.StatusCode.DEADLINE_EXCEEDED)) is errors.DeadlineExceeded
    assert type(typed(grpc.StatusCode.INTERNAL)) is WorkEngineError
    assert type(typed(grpc.StatusCode.FAILED_PRECONDITION)) is FailedPrecondition
    assert typed(grpc.StatusCode.FAILED_PRECONDITION).reason == ""
    # An older server without the structured detail: the "<field>: <problem>" message.
    assert typed(grpc.StatusCode.NOT_FOUND, "task_id: task t not found").field == "task_id"
    assert typed(grpc.StatusCode.NOT_FOUND, "task t not found").field == ""
    already = typed(grpc.StatusCode.ABORTED)
    assert errors.from_rpc_error(already) is already


def test_the_grpc_status_details_of_a_typed_error() -> None:
    violation = error_details_pb2.BadRequest.FieldViolation(field="title", description="too long")
    error = errors.from_rpc_error(
        FakeRpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "title: too long",
            error_details_pb2.BadRequest(field_violations=[violation]),
        )
    )

    assert isinstance(error, InvalidArgument)
    assert (error.field, error.description) == ("title", "too long")
    assert error.detail(error_details_pb2.ErrorInfo) is None
    assert error.status is not None and error.status.code == code_pb2.INVALID_ARGUMENT


def test_report_methods_are_the_calls_a_daemon_reports_with() -> None:
    rpcs = {method.name for method in pb.DESCRIPTOR.services_by_name["WorkEngineService"].methods}
    assert rpcs >= errors.REPORT_METHODS
