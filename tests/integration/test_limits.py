"""Server limits: each refusal is a clear error naming the limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from tests.integration.helpers import create, register
from workengine.api.server import RunningServer, Security, start_server
from workengine.engine import WorkEngine
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

ADMIN_TOKEN = "admin-token-for-the-limit-tests-0123"


@pytest.fixture
async def limited(engine: WorkEngine) -> AsyncIterator[Callable[..., Any]]:
    servers: list[RunningServer] = []

    async def start(security: Security) -> str:
        running = await start_server(engine, "127.0.0.1", 0, security)
        servers.append(running)
        return f"127.0.0.1:{running.port}"

    yield start
    for running in servers:
        await running.stop(0)


def watch(stub: pb_grpc.WorkEngineServiceStub, token: str | None = None, **target: Any) -> Any:
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    return stub.WatchTaskProgress(pb.WatchTaskProgressRequest(**target), metadata=metadata)


async def test_a_page_size_above_the_maximum_is_invalid_argument_naming_it(
    stub: pb_grpc.WorkEngineServiceStub,
) -> None:
    for call in (
        stub.ListTasks(pb.ListTasksRequest(page_size=1001)),
        stub.ListOrchestrators(pb.ListOrchestratorsRequest(page_size=1001)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details() == "page_size: must be at most 1000"
    assert len((await stub.ListTasks(pb.ListTasksRequest(page_size=1000))).tasks) == 0


async def test_a_request_above_the_maximum_message_size_is_resource_exhausted(
    limited: Callable[..., Any],
) -> None:
    target = await limited(Security(max_message_bytes=128 * 1024))
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        await register(stub, "ada")
        request = pb.CreateTaskRequest(orchestrator_id="ada", workspace_id="ws", title="big")
        request.metadata.update({"blob": "x" * 140_000})
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateTask(request)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in (caught.value.details() or "")
        request.metadata.update({"blob": "x" * 70_000})
        with pytest.raises(grpc.aio.AioRpcError) as caught:  # under the message limit, over metadata's
            await stub.CreateTask(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details() == "metadata: is larger than 65536 bytes as JSON"


async def test_streams_per_client_address_are_limited_without_authentication(
    limited: Callable[..., Any],
) -> None:
    target = await limited(Security(max_streams_per_client=2))
    async with grpc.aio.insecure_channel(target) as one, grpc.aio.insecure_channel(target) as two:
        first, second = pb_grpc.WorkEngineServiceStub(one), pb_grpc.WorkEngineServiceStub(two)
        await register(first, "ada")
        task = await create(first, orchestrator_id="ada", workspace_id="ws")
        calls = [watch(first, task_id=task.id), watch(second, task_id=task.id)]
        for call in calls:
            await asyncio.wait_for(call.read(), 10)  # the snapshot: the stream is open
        third = watch(second, task_id=task.id)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(third.read(), 10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = caught.value.details() or ""
        assert "max_streams_per_client" in details and "127.0.0.1" in details and "2 open streams" in details
        calls[0].cancel()
        await asyncio.sleep(0.2)
        fourth = watch(first, task_id=task.id)
        await asyncio.wait_for(fourth.read(), 10)
        fourth.cancel()
        calls[1].cancel()


async def test_streams_are_limited_per_token_with_authentication(limited: Callable[..., Any]) -> None:
    target = await limited(Security(admin_token=ADMIN_TOKEN, max_streams_per_client=1))
    admin = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        ada = (
            await stub.RegisterOrchestrator(
                pb.RegisterOrchestratorRequest(orchestrator_id="ada", display_name="A"), metadata=admin
            )
        ).token
        bob = (
            await stub.RegisterOrchestrator(
                pb.RegisterOrchestratorRequest(orchestrator_id="bob", display_name="B"), metadata=admin
            )
        ).token
        ada_task, bob_task = [
            (
                await stub.CreateTask(
                    pb.CreateTaskRequest(orchestrator_id=o, workspace_id="ws", title="t"), metadata=admin
                )
            ).task
            for o in ("ada", "bob")
        ]
        ada_watch = watch(stub, ada, task_id=ada_task.id)
        await asyncio.wait_for(ada_watch.read(), 10)
        refused = watch(stub, ada, task_id=ada_task.id)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(refused.read(), 10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "orchestrator ada already has 1 open streams" in (caught.value.details() or "")
        assert ada not in (caught.value.details() or "")
        # Another token on the same connection has its own allowance.
        bob_watch = watch(stub, bob, task_id=bob_task.id)
        await asyncio.wait_for(bob_watch.read(), 10)
        bob_watch.cancel()
        ada_watch.cancel()


async def test_the_default_limits(stub: pb_grpc.WorkEngineServiceStub, server: RunningServer) -> None:
    assert Security().max_streams_per_client == 100
    assert Security().max_message_bytes == 8 * 1024 * 1024
    await register(stub, "ada")
    task = await create(stub, orchestrator_id="ada")
    call = watch(stub, task_id=task.id)
    assert (await asyncio.wait_for(call.read(), 10)).event.task.id == task.id
    assert server.guard is not None and server.guard.open_streams("ipv4:127.0.0.1") == 1
    call.cancel()
    await asyncio.sleep(0.2)
    assert server.guard.open_streams("ipv4:127.0.0.1") == 0
