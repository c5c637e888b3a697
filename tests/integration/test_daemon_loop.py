"""The full loop a daemon runs: register, create with dependencies, claim, progress, complete."""

from __future__ import annotations

from google.protobuf import struct_pb2

from tests.integration.helpers import Stub, claim, complete, create, register
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb


async def test_register_create_claim_progress_complete_unblocks_dependents_and_counts(stub: Stub) -> None:
    await register(stub, "ada", timezone="Europe/Paris")
    design = await create(stub, "design the API", priority="HIGH")
    build = await create(stub, "build it", priority="CRITICAL", depends_on=[design.id])
    docs = await create(stub, "document it", priority="LOW", depends_on=[design.id, build.id])
    assert design.status == task_pb2.TASK_STATUS_TODO
    assert build.status == task_pb2.TASK_STATUS_BLOCKED
    assert docs.unmet_dependency_count == 2

    # The CRITICAL task is blocked, so the HIGH one is the best ready task.
    first = await claim(stub)
    assert first.context.task.id == design.id
    assert first.attempt == 1
    assert first.context.orchestrator.timezone == "Europe/Paris"

    metadata = struct_pb2.Struct()
    metadata.update({"step": "schema"})
    progressed = await stub.UpdateTaskProgress(
        pb.UpdateTaskProgressRequest(
            task_id=design.id, attempt=1, progress=40, message="schema drafted", metadata=metadata
        )
    )
    assert progressed.task.progress == 40
    assert progressed.task.progress_message == "schema drafted"

    done = await complete(stub, design.id, 1, error="")
    assert done.task.status == task_pb2.TASK_STATUS_DONE
    assert list(done.unblocked_task_ids) == [build.id]
    docs_now = (await stub.GetTask(pb.GetTaskRequest(task_id=docs.id))).task
    assert docs_now.status == task_pb2.TASK_STATUS_BLOCKED
    assert docs_now.unmet_dependency_count == 1

    second = await claim(stub)
    assert second.context.task.id == build.id
    assert [(d.task_id, d.met) for d in second.context.dependencies] == [(design.id, True)]
    built = await complete(stub, build.id, second.attempt)
    assert list(built.unblocked_task_ids) == [docs.id]

    third = await claim(stub)
    assert third.context.task.id == docs.id
    await complete(stub, docs.id, third.attempt, status=pb.COMPLETION_STATUS_FAILED, error="no writer")

    assert not (await claim(stub)).HasField("context")

    stats = await stub.GetExecutionStats(pb.GetExecutionStatsRequest(orchestrator_id="ada"))
    assert (stats.total_tasks, stats.completed_tasks, stats.failed_tasks) == (3, 2, 1)
    assert abs(stats.success_rate_percent - 200 / 3) < 1e-9
    assert stats.p95_completion_seconds >= stats.p50_completion_seconds >= 0
    assert {(c.status, c.count) for c in stats.by_status} == {
        (task_pb2.TASK_STATUS_DONE, 2),
        (task_pb2.TASK_STATUS_FAILED, 1),
    }
    assert {(c.priority, c.count) for c in stats.by_priority} == {
        (task_pb2.TASK_PRIORITY_CRITICAL, 1),
        (task_pb2.TASK_PRIORITY_HIGH, 1),
        (task_pb2.TASK_PRIORITY_LOW, 1),
    }
