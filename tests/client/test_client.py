"""workengine.client: retries (only UNAVAILABLE, only idempotent calls), deadlines, the metadata
hook, against a scripted fake server; then the sync and asyncio clients against the real one."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest

from workengine.client import (
    IDEMPOTENT_METHODS,
    AsyncWorkEngineClient,
    RetryPolicy,
    Unavailable,
    WorkEngineClient,
)
from workengine.v1 import orchestrator_pb2, task_pb2
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

FAST = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.02)


class FlakyServicer(pb_grpc.WorkEngineServiceServicer):
    """Fails the first `failures` calls of every method with UNAVAILABLE; records each call."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[str, dict[str, str]]] = []

    async def _attempt(self, method: str, context: Any) -> None:
        self.calls.append((method, dict(context.invocation_metadata())))
        if sum(name == method for name, _ in self.calls) <= self.failures:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable")

    async def GetTask(self, request: pb.GetTaskRequest, context: Any) -> pb.GetTaskResponse:
        await self._attempt("GetTask", context)
        return pb.GetTaskResponse(task=task_pb2.Task(id=request.task_id))

    async def ClaimNextTask(self, request: pb.ClaimNextTaskRequest, context: Any) -> pb.ClaimNextTaskResponse:
        await self._attempt("ClaimNextTask", context)
        return pb.ClaimNextTaskResponse(attempt=1)

    async def CompleteTask(self, request: pb.CompleteTaskRequest, context: Any) -> pb.CompleteTaskResponse:
        await self._attempt("CompleteTask", context)
        return pb.CompleteTaskResponse(
            task=task_pb2.Task(id=request.task_id, status=task_pb2.TASK_STATUS_DONE)
        )

    async def GetOrchestrator(self, request: pb.GetOrchestratorRequest, context: Any) -> Any:
        self.calls.append(("GetOrchestrator", {}))
        await asyncio.sleep(5)  # longer than any deadline the tests set
        return pb.GetOrchestratorResponse()


async def _fake_server(servicer: FlakyServicer) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_WorkEngineServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[FlakyServicer, str]]:
    servicer = FlakyServicer(failures=2)
    server, address = await _fake_server(servicer)
    yield servicer, address
    await server.stop(0)


def test_retry_delays_are_jittered_exponential_and_capped() -> None:
    policy = RetryPolicy(max_attempts=10, initial_backoff=0.1, max_backoff=1.0, multiplier=2.0)
    rng = random.Random(7)
    unavailable = grpc.StatusCode.UNAVAILABLE

    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    for attempts_made, ceiling in enumerate(ceilings, start=1):
        delays = [policy.delay_before_retry("GetTask", unavailable, attempts_made, rng) for _ in range(200)]
        assert all(d is not None and 0 <= d <= ceiling for d in delays)
        assert max(d for d in delays if d is not None) > ceiling * 0.8  # jitter spans the range

    assert policy.delay_before_retry("GetTask", unavailable, 10, rng) is None  # attempts exhausted
    assert policy.delay_before_retry("GetTask", grpc.StatusCode.INTERNAL, 1, rng) is None
    assert policy.delay_before_retry("GetTask", grpc.StatusCode.DEADLINE_EXCEEDED, 1, rng) is None
    for method in ("ClaimNextTask", "ExecuteTask", "CreateTask", "RegisterOrchestrator", "CancelTask"):
        assert method not in IDEMPOTENT_METHODS
        assert policy.delay_before_retry(method, unavailable, 1, rng) is None
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


async def test_async_client_retries_an_idempotent_call_through_unavailable(
    flaky: tuple[FlakyServicer, str],
) -> None:
    servicer, address = flaky
    async with AsyncWorkEngineClient(address, retry=FAST) as client:
        task = await client.get_task("t-1")
        done = await client.complete_task("t-1", 1, output={"ok": True})

    assert task.id == "t-1"
    assert done.task.status == task_pb2.TASK_STATUS_DONE
    assert [name for name, _ in servicer.calls] == ["GetTask"] * 3 + ["CompleteTask"] * 3


async def test_async_client_never_retries_a_claim(flaky: tuple[FlakyServicer, str]) -> None:
    servicer, address = flaky
    async with AsyncWorkEngineClient(address, retry=FAST) as client:
        with pytest.raises(grpc.RpcError) as raised:
            await client.claim_next_task("ada")

    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert [name for name, _ in servicer.calls] == ["ClaimNextTask"]


async def test_retries_give_up_after_max_attempts(flaky: tuple[FlakyServicer, str]) -> None:
    servicer, address = flaky
    async with AsyncWorkEngineClient(
        address, retry=RetryPolicy(max_attempts=2, initial_backoff=0.01)
    ) as client:
        with pytest.raises(grpc.RpcError) as raised:
            await client.get_task("t-1")

    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(servicer.calls) == 2


async def test_sync_client_retries_and_sends_the_metadata_hook_on_every_attempt(
    flaky: tuple[FlakyServicer, str],
) -> None:
    servicer, address = flaky
    asked: list[str] = []

    def auth(method: str) -> list[tuple[str, str]]:
        asked.append(method)
        return [("authorization", f"Bearer token-{len(asked)}")]

    def work() -> str:
        with WorkEngineClient(address, retry=FAST, metadata=auth) as client:
            return client.get_task("t-9").id

    assert await asyncio.to_thread(work) == "t-9"
    assert asked == ["GetTask"] * 3
    assert [metadata["authorization"] for _, metadata in servicer.calls] == [
        "Bearer token-1",
        "Bearer token-2",
        "Bearer token-3",
    ]


async def test_every_call_has_a_deadline_and_a_missed_one_is_not_retried(
    flaky: tuple[FlakyServicer, str],
) -> None:
    servicer, address = flaky
    async with AsyncWorkEngineClient(address, timeout=0.2, retry=FAST) as client:
        with pytest.raises(grpc.RpcError) as raised:
            await client.get_orchestrator("ada")
        with pytest.raises(grpc.RpcError) as overridden:
            await client.get_orchestrator("ada", timeout=0.1)

    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert overridden.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert [name for name, _ in servicer.calls] == ["GetOrchestrator", "GetOrchestrator"]


async def test_async_client_runs_the_daemon_loop_against_the_real_server(target: str) -> None:
    async with AsyncWorkEngineClient(target) as client:
        await client.register_orchestrator("Ada", orchestrator_id="ada", timezone="Europe/Paris")
        design = await client.create_task("ada", "ws", "design", priority=task_pb2.TASK_PRIORITY_HIGH)
        review = await client.create_task("ada", "ws", "review", depends_on=[design.id], metadata={"n": 1})
        watched = client.watch_task_progress(task_id=design.id)
        snapshot = await anext(watched)

        claimed = await client.claim_next_task("ada", wait=timedelta(seconds=1))
        await client.update_task_progress(design.id, claimed.attempt, 40, "drafting", metadata={"step": 1})
        done = await client.complete_task(design.id, claimed.attempt, output={"summary": "designed"})
        live = [event async for event in watched]
        nothing = await client.select_next_task(
            "ada", criteria=task_pb2.SelectionCriteria(required_tags=["x"])
        )
        listed = [task.id async for task in client.list_tasks(orchestrator_id="ada", page_size=1)]
        stats = await client.get_execution_stats("ada")

    assert review.status == task_pb2.TASK_STATUS_BLOCKED
    assert snapshot.kind == task_pb2.TASK_EVENT_KIND_SNAPSHOT
    assert claimed.context.task.id == design.id
    assert claimed.attempt == 1
    assert list(done.unblocked_task_ids) == [review.id]
    assert [e.kind for e in live] == [
        task_pb2.TASK_EVENT_KIND_STARTED,
        task_pb2.TASK_EVENT_KIND_PROGRESS,
        task_pb2.TASK_EVENT_KIND_COMPLETED,
    ]
    assert live[1].metadata["step"] == 1
    assert not nothing.HasField("task")
    assert listed == [design.id, review.id]  # two pages of one
    assert (stats.total_tasks, stats.completed_tasks) == (2, 1)


async def test_sync_client_surfaces_server_errors_with_their_status(target: str) -> None:
    def work() -> tuple[grpc.StatusCode, str, str]:
        with WorkEngineClient(target) as client:
            client.register_orchestrator("Ada", orchestrator_id="ada")
            task = client.create_task("ada", "ws", "t")
            claimed = client.claim_next_task("ada")
            with pytest.raises(grpc.RpcError) as raised:
                client.update_task_progress(task.id, claimed.attempt, 150)
            client.complete_task(task.id, claimed.attempt, pb.COMPLETION_STATUS_FAILED, error="no luck")
            return raised.value.code(), raised.value.details(), client.get_task(task.id).result.error

    code, details, error = await asyncio.to_thread(work)

    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("progress:")
    assert error == "no luck"


def test_both_clients_have_a_method_for_every_rpc() -> None:
    rpcs = [method.name for method in pb.DESCRIPTOR.services_by_name["WorkEngineService"].methods]
    snake = [re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() for name in rpcs]

    assert {"heartbeat", "retry_task", "claim_next_task"} <= set(snake)
    for client_class in (WorkEngineClient, AsyncWorkEngineClient):
        assert [name for name in snake if not callable(getattr(client_class, name, None))] == []


async def test_list_methods_walk_every_page(target: str) -> None:
    def sync_walk() -> tuple[list[str], list[str]]:
        with WorkEngineClient(target) as client:
            for name in ("a", "b", "c"):
                client.register_orchestrator(name.upper(), orchestrator_id=name)
            client.set_orchestrator_status("b", orchestrator_pb2.ORCHESTRATOR_STATUS_AWAY)
            everyone = [o.id for o in client.list_orchestrators(page_size=2)]
            online = [
                o.id for o in client.list_orchestrators(status=orchestrator_pb2.ORCHESTRATOR_STATUS_ONLINE)
            ]
            return everyone, online

    everyone, online = await asyncio.to_thread(sync_walk)
    async with AsyncWorkEngineClient(target) as client:
        again = [o.id async for o in client.list_orchestrators(page_size=1)]

    assert everyone == again == ["a", "b", "c"]
    assert online == ["a", "c"]


async def test_call_reaches_any_rpc_with_the_clients_retries_and_typed_errors(
    flaky: tuple[FlakyServicer, str],
) -> None:
    servicer, address = flaky
    async with AsyncWorkEngineClient(address, retry=FAST) as client:
        found = await client.call("GetTask", pb.GetTaskRequest(task_id="t-1"))
        with pytest.raises(Unavailable):
            await client.call("ClaimNextTask", pb.ClaimNextTaskRequest(orchestrator_id="ada"))

    assert found.task.id == "t-1"
    assert [name for name, _ in servicer.calls] == ["GetTask"] * 3 + ["ClaimNextTask"]


async def test_call_returns_the_whole_response(target: str) -> None:
    def work() -> pb.RegisterOrchestratorResponse:
        with WorkEngineClient(target) as client:
            request = pb.RegisterOrchestratorRequest(orchestrator_id="ada", display_name="Ada")
            response: pb.RegisterOrchestratorResponse = client.call("RegisterOrchestrator", request)
            return response

    registered = await asyncio.to_thread(work)

    assert registered.orchestrator.id == "ada" and registered.token.startswith("wet_")
