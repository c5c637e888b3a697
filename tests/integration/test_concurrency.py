"""Real concurrent clients, each on its own channel: no task is ever started twice."""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest

from tests.integration.helpers import Stub, claim, complete, create, register
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

DAEMONS = 8


async def daemon_stubs(target: str, count: int) -> tuple[list[grpc.aio.Channel], list[Stub]]:
    channels = [grpc.aio.insecure_channel(target) for _ in range(count)]
    return channels, [pb_grpc.WorkEngineServiceStub(c) for c in channels]


async def test_concurrent_daemons_claim_each_task_exactly_once(stub: Stub, target: str) -> None:
    await register(stub)
    created = [await create(stub, f"task {i}", priority=["LOW", "MEDIUM", "HIGH"][i % 3]) for i in range(60)]
    channels, stubs = await daemon_stubs(target, DAEMONS)
    claims: list[tuple[int, str, int]] = []

    async def run_daemon(index: int, daemon: Stub) -> None:
        while True:
            response = await claim(daemon)
            if not response.HasField("context"):
                return
            claims.append((index, response.context.task.id, response.attempt))
            await complete(daemon, response.context.task.id, response.attempt)

    try:
        await asyncio.gather(*(run_daemon(i, s) for i, s in enumerate(stubs)))
    finally:
        for channel in channels:
            await channel.close()
    per_task = Counter(task_id for _, task_id, _ in claims)
    assert set(per_task) == {t.id for t in created}
    assert all(count == 1 for count in per_task.values())
    assert all(attempt == 1 for _, _, attempt in claims)
    assert len({daemon for daemon, _, _ in claims}) > 1, "work was not spread over the daemons"


async def test_concurrent_execute_of_one_task_starts_it_once(stub: Stub, target: str) -> None:
    await register(stub)
    task = await create(stub)
    channels, stubs = await daemon_stubs(target, DAEMONS)
    try:
        results = await asyncio.gather(
            *(s.ExecuteTask(pb.ExecuteTaskRequest(orchestrator_id="ada", task_id=task.id)) for s in stubs),
            return_exceptions=True,
        )
    finally:
        for channel in channels:
            await channel.close()
    started = [r for r in results if isinstance(r, pb.ExecuteTaskResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(started) == 1 and started[0].attempt == 1
    assert len(refused) == DAEMONS - 1
    assert {e.code() for e in refused} <= {grpc.StatusCode.ABORTED}
    final = (await stub.GetTask(pb.GetTaskRequest(task_id=task.id))).task
    assert final.attempt == 1


@pytest.mark.parametrize("dependencies", [2, 25])
async def test_dependencies_completing_concurrently_unblock_the_dependent_exactly_once(
    stub: Stub, target: str, dependencies: int
) -> None:
    await register(stub)
    parents = [await create(stub, f"parent {i}") for i in range(dependencies)]
    child = await create(stub, "child", depends_on=[p.id for p in parents])
    attempts = {}
    for parent in parents:
        started = await stub.ExecuteTask(pb.ExecuteTaskRequest(orchestrator_id="ada", task_id=parent.id))
        attempts[parent.id] = started.attempt
    channels, stubs = await daemon_stubs(target, dependencies)
    try:
        responses = await asyncio.gather(
            *(complete(s, p.id, attempts[p.id]) for s, p in zip(stubs, parents, strict=True))
        )
    finally:
        for channel in channels:
            await channel.close()
    unblocked = [task_id for r in responses for task_id in r.unblocked_task_ids]
    assert unblocked == [child.id]
    final = (await stub.GetTask(pb.GetTaskRequest(task_id=child.id))).task
    assert final.status == task_pb2.TASK_STATUS_TODO
    assert final.unmet_dependency_count == 0


async def test_creating_a_dependent_while_its_dependency_completes_never_strands_it(
    stub: Stub, target: str
) -> None:
    # The dependency rows are locked FOR SHARE during creation, so the completing transaction
    # either sees the new edge or the new task sees the dependency DONE: never neither.
    await register(stub)
    channels, stubs = await daemon_stubs(target, 2)
    try:
        for round_number in range(15):
            parent = await create(stub, f"parent {round_number}")
            attempt = (
                await stub.ExecuteTask(pb.ExecuteTaskRequest(orchestrator_id="ada", task_id=parent.id))
            ).attempt
            child_task, _ = await asyncio.gather(
                create(stubs[0], f"child {round_number}", depends_on=[parent.id]),
                complete(stubs[1], parent.id, attempt),
            )
            child = (await stub.GetTask(pb.GetTaskRequest(task_id=child_task.id))).task
            assert child.status == task_pb2.TASK_STATUS_TODO, f"round {round_number}: child stranded"
            assert child.unmet_dependency_count == 0
    finally:
        for channel in channels:
            await channel.close()
