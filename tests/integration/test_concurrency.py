"""Real concurrent clients, each on its own channel: no task is ever started twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import grpc
import pytest

from tests.integration.helpers import Stub, claim, complete, create, register
from workengine.domain import scoring
from workengine.domain.errors import TransactionConflict
from workengine.domain.model import AttemptOutcome, EventKind, NewTask, SelectionCriteria, TaskStatus
from workengine.engine import WorkEngine
from workengine.store.attempts import CompletionReport, LeaseRequest
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
    # Creation locks the dependency rows FOR KEY SHARE and completion locks its task FOR UPDATE,
    # so the completing transaction either sees the new edge or the new task sees the dependency
    # DONE: never neither.
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


PRIORITIES = ["LOW", "MEDIUM", "HIGH", "CRITICAL"]


async def test_an_open_claim_locks_only_its_winner(stub: Stub, engine: WorkEngine) -> None:
    # One ready task in each of four segments. A claim whose transaction is still open must
    # leave the other three heads free for a concurrent claimer.
    await register(stub)
    for priority in PRIORITIES:
        await create(stub, priority.lower(), priority=priority)
    segments = scoring.segments(datetime.now(UTC), "UTC")
    async with engine.db.transaction() as session:
        in_flight = await session.attempts.claim_next(
            "ada", segments, SelectionCriteria(), LeaseRequest(None, 300, "in-flight"), 20
        )
        assert in_flight is not None and in_flight[0].task.title == "critical"

        concurrent = await claim(stub)

        assert concurrent.context.task.title == "high"


async def test_concurrent_claims_never_come_back_empty_while_work_remains(stub: Stub, target: str) -> None:
    await register(stub)
    channels, stubs = await daemon_stubs(target, len(PRIORITIES))
    empty = 0
    try:
        for round_number in range(10):
            for priority in PRIORITIES:
                await create(stub, f"{priority} {round_number}", priority=priority)
            responses = await asyncio.gather(*(claim(s) for s in stubs))
            empty += sum(1 for r in responses if not r.HasField("context"))
    finally:
        for channel in channels:
            await channel.close()
    assert empty == 0, f"{empty} of {10 * len(PRIORITIES)} claims found no task while one was ready"


async def test_a_claim_takes_a_task_whose_dependent_is_being_created(stub: Stub, engine: WorkEngine) -> None:
    await register(stub)
    root = await create(stub, "root")
    async with engine.db.transaction() as creating_a_dependent:
        await creating_a_dependent.tasks.lock_dependencies([root.id])

        response = await claim(stub)

        assert response.context.task.id == root.id


async def test_creating_a_dependent_while_a_dependency_of_its_dependency_completes_does_not_deadlock(
    stub: Stub, engine: WorkEngine
) -> None:
    # deploy depends on [test, build] and test depends on build: creation locks test, then build;
    # the completion of build holds build and updates test. Neither may wait for the other.
    await register(stub)
    build = await create(stub, "build", task_id="b-build")
    test = await create(stub, "test", task_id="a-test", depends_on=[build.id])
    started = await stub.ExecuteTask(pb.ExecuteTaskRequest(orchestrator_id="ada", task_id=build.id))
    async with engine.db.transaction() as completing:
        await completing.attempts.complete(
            CompletionReport(
                build.id, started.attempt, TaskStatus.DONE, "", {}, "fingerprint", AttemptOutcome.COMPLETED
            ),
            EventKind.COMPLETED,
        )
        creating = asyncio.ensure_future(
            stub.CreateTask(
                pb.CreateTaskRequest(
                    task_id="c-deploy",
                    orchestrator_id="ada",
                    workspace_id="ws-1",
                    title="deploy",
                    depends_on=[test.id, build.id],
                )
            )
        )
        await asyncio.sleep(0.3)  # creation now holds its lock on a-test and waits for b-build
        unblocked = await asyncio.wait_for(completing.tasks.release_dependents(build.id), 5)
    deploy = (await asyncio.wait_for(creating, 5)).task

    assert [event.task.id for event in unblocked] == [test.id]
    assert deploy.status == task_pb2.TASK_STATUS_BLOCKED
    assert deploy.unmet_dependency_count == 1  # test is TODO now; build is DONE


async def test_a_completion_that_waits_out_a_dependents_creation_releases_that_dependent(
    stub: Stub, engine: WorkEngine
) -> None:
    # The creation of deploy holds its lock on build and counted build unmet; CompleteTask on build
    # waits for that lock, and its release (sent in the same pipeline) must then see the new edge.
    await register(stub)
    build = await create(stub, "build")
    started = await stub.ExecuteTask(pb.ExecuteTaskRequest(orchestrator_id="ada", task_id=build.id))
    async with engine.db.transaction() as creating:
        assert await creating.tasks.lock_dependencies([build.id]) == {build.id: TaskStatus.IN_PROGRESS}
        deploy = NewTask(
            id="deploy", orchestrator_id="ada", workspace_id="ws-1", title="deploy", depends_on=(build.id,)
        )
        assert await creating.tasks.insert(deploy, TaskStatus.BLOCKED, 1, "fingerprint") is not None
        completing = asyncio.ensure_future(complete(stub, build.id, started.attempt))
        await asyncio.sleep(0.3)
        assert not completing.done(), "the completion should wait for the creation's lock"
    response = await asyncio.wait_for(completing, 5)

    assert list(response.unblocked_task_ids) == [deploy.id]
    released = await stub.GetTask(pb.GetTaskRequest(task_id=deploy.id))
    assert released.task.status == task_pb2.TASK_STATUS_TODO
    assert released.task.unmet_dependency_count == 0


async def test_a_deadlock_surfaces_as_a_transaction_conflict(stub: Stub, engine: WorkEngine) -> None:
    await register(stub)
    first, second = await create(stub, "first"), await create(stub, "second")
    async with asyncio.timeout(10):
        with pytest.raises(TransactionConflict):
            async with engine.db.transaction() as one, engine.db.transaction() as other:
                await one.tasks.cancel(first.id, "", (TaskStatus.TODO,))
                await other.tasks.cancel(second.id, "", (TaskStatus.TODO,))
                await asyncio.gather(
                    one.tasks.cancel(second.id, "", (TaskStatus.TODO,)),
                    other.tasks.cancel(first.id, "", (TaskStatus.TODO,)),
                )
