"""Orchestrator and task management: register, get, list, status, create, list, cancel."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from tests.integration.helpers import Stub, claim, complete, create, expect_error, register
from workengine.v1 import orchestrator_pb2, task_pb2
from workengine.v1 import work_engine_service_pb2 as pb

ONLINE = orchestrator_pb2.ORCHESTRATOR_STATUS_ONLINE
AWAY = orchestrator_pb2.ORCHESTRATOR_STATUS_AWAY
OFFLINE = orchestrator_pb2.ORCHESTRATOR_STATUS_OFFLINE


async def get_task(stub: Stub, task_id: str) -> task_pb2.Task:
    response: pb.GetTaskResponse = await stub.GetTask(pb.GetTaskRequest(task_id=task_id))
    return response.task


async def list_tasks(stub: Stub, **fields: Any) -> pb.ListTasksResponse:
    response: pb.ListTasksResponse = await stub.ListTasks(pb.ListTasksRequest(**fields))
    return response


async def walk_pages(
    fetch_page: Callable[[str], Awaitable[tuple[list[str], str]]],
) -> tuple[list[str], list[int]]:
    """Follows next_page_token from the first page; returns the ids seen and each page's size."""
    seen: list[str] = []
    page_sizes: list[int] = []
    token = ""
    for _ in range(10):
        page_ids, token = await fetch_page(token)
        page_sizes.append(len(page_ids))
        seen.extend(page_ids)
        if not token:
            break
    return seen, page_sizes


async def cancel(stub: Stub, task_id: str, reason: str = "") -> pb.CancelTaskResponse:
    response: pb.CancelTaskResponse = await stub.CancelTask(
        pb.CancelTaskRequest(task_id=task_id, reason=reason)
    )
    return response


# RegisterOrchestrator


async def test_register_generates_an_id_when_none_is_given(stub: Stub) -> None:
    first = (await register(stub, "", display_name="First")).orchestrator
    second = (await register(stub, "", display_name="Other")).orchestrator
    assert first.id and second.id and first.id != second.id
    uuid.UUID(first.id)  # generated ids are UUIDs
    assert first.status == ONLINE
    assert first.timezone == "UTC"
    fetched = await stub.GetOrchestrator(pb.GetOrchestratorRequest(orchestrator_id=first.id))
    assert fetched.orchestrator.id == first.id


async def test_register_keeps_a_chosen_id_and_every_field(stub: Stub) -> None:
    registered = (
        await register(
            stub,
            "eng.vp:backend-1",
            display_name="Grace",
            role="engineering-vp",
            discipline="backend",
            capabilities=["python", "sql"],
            daemon_endpoint="http://daemon:8080",
            timezone="Europe/Paris",
            status=orchestrator_pb2.ORCHESTRATOR_STATUS_BUSY,
        )
    ).orchestrator
    assert registered.id == "eng.vp:backend-1"
    fetched = (
        await stub.GetOrchestrator(pb.GetOrchestratorRequest(orchestrator_id="eng.vp:backend-1"))
    ).orchestrator
    for orchestrator in (registered, fetched):
        assert orchestrator.display_name == "Grace"
        assert orchestrator.role == "engineering-vp"
        assert orchestrator.discipline == "backend"
        assert list(orchestrator.capabilities) == ["python", "sql"]
        assert orchestrator.daemon_endpoint == "http://daemon:8080"
        assert orchestrator.timezone == "Europe/Paris"
        assert orchestrator.status == orchestrator_pb2.ORCHESTRATOR_STATUS_BUSY
        assert orchestrator.HasField("create_time")
        assert orchestrator.HasField("last_heartbeat_time")


async def test_register_refuses_a_taken_id(stub: Stub) -> None:
    await register(stub, "ada")
    await expect_error(register(stub, "ada", display_name="Someone else"), grpc.StatusCode.ALREADY_EXISTS)
    fetched = (await stub.GetOrchestrator(pb.GetOrchestratorRequest(orchestrator_id="ada"))).orchestrator
    assert fetched.display_name == "Ada"


async def test_register_requires_a_display_name(stub: Stub) -> None:
    await expect_error(
        register(stub, "ada", display_name=""), grpc.StatusCode.INVALID_ARGUMENT, "display_name"
    )
    await expect_error(
        register(stub, "ada", display_name="   "), grpc.StatusCode.INVALID_ARGUMENT, "display_name"
    )
    await expect_error(
        stub.GetOrchestrator(pb.GetOrchestratorRequest(orchestrator_id="ada")), grpc.StatusCode.NOT_FOUND
    )


async def test_register_refuses_an_unknown_timezone(stub: Stub) -> None:
    await expect_error(
        register(stub, "ada", timezone="Mars/Olympus_Mons"), grpc.StatusCode.INVALID_ARGUMENT, "timezone"
    )
    await expect_error(
        register(stub, "ada", timezone="../../etc/passwd"), grpc.StatusCode.INVALID_ARGUMENT, "timezone"
    )


@pytest.mark.parametrize("zone", ["Europe", "A" * 300])
async def test_register_refuses_a_timezone_that_is_not_a_zone_file(stub: Stub, zone: str) -> None:
    await expect_error(register(stub, "ada", timezone=zone), grpc.StatusCode.INVALID_ARGUMENT, "timezone")


async def test_register_refuses_bad_id_characters(stub: Stub) -> None:
    for bad in ("has space", "slash/id", "é", "x" * 129):
        await expect_error(
            register(stub, bad, display_name="Bad"), grpc.StatusCode.INVALID_ARGUMENT, "orchestrator_id"
        )
    listed = await stub.ListOrchestrators(pb.ListOrchestratorsRequest())
    assert list(listed.orchestrators) == []


async def test_register_round_trips_the_charter(stub: Stub) -> None:
    charter = orchestrator_pb2.Charter(
        mission="ship reliable software",
        vision="every task finished",
        values=["care", "candour"],
        expertise=["postgres", "grpc"],
    )
    registered = (await register(stub, "ada", charter=charter)).orchestrator
    fetched = (await stub.GetOrchestrator(pb.GetOrchestratorRequest(orchestrator_id="ada"))).orchestrator
    assert registered.charter == charter
    assert fetched.charter == charter


# GetOrchestrator


async def test_get_orchestrator_of_an_unknown_id_is_not_found(stub: Stub) -> None:
    await register(stub, "ada")
    await expect_error(
        stub.GetOrchestrator(pb.GetOrchestratorRequest(orchestrator_id="nobody")), grpc.StatusCode.NOT_FOUND
    )


# ListOrchestrators


async def test_list_orchestrators_walks_every_page_oldest_first(stub: Stub) -> None:
    # Registered in an order that is not alphabetical, so "oldest first" is not "by id".
    names = ["eve", "bob", "dan", "ada", "cyd"]
    for name in names:
        await register(stub, name)

    async def fetch_page(token: str) -> tuple[list[str], str]:
        page = await stub.ListOrchestrators(pb.ListOrchestratorsRequest(page_size=2, page_token=token))
        return [o.id for o in page.orchestrators], page.next_page_token

    seen, page_sizes = await walk_pages(fetch_page)
    assert page_sizes == [2, 2, 1]
    assert seen == names
    assert len(set(seen)) == len(seen)


async def test_list_orchestrators_filters_by_status(stub: Stub) -> None:
    for name in ("ada", "bob", "cyd", "dan", "eve"):
        await register(stub, name)
    for name in ("bob", "dan"):
        await stub.SetOrchestratorStatus(pb.SetOrchestratorStatusRequest(orchestrator_id=name, status=AWAY))

    away = await stub.ListOrchestrators(pb.ListOrchestratorsRequest(status=AWAY))
    assert [o.id for o in away.orchestrators] == ["bob", "dan"]
    assert away.next_page_token == ""
    online = await stub.ListOrchestrators(pb.ListOrchestratorsRequest(status=ONLINE))
    assert [o.id for o in online.orchestrators] == ["ada", "cyd", "eve"]
    offline = await stub.ListOrchestrators(pb.ListOrchestratorsRequest(status=OFFLINE))
    assert list(offline.orchestrators) == []

    first = await stub.ListOrchestrators(pb.ListOrchestratorsRequest(status=ONLINE, page_size=2))
    assert [o.id for o in first.orchestrators] == ["ada", "cyd"]
    rest = await stub.ListOrchestrators(
        pb.ListOrchestratorsRequest(status=ONLINE, page_size=2, page_token=first.next_page_token)
    )
    assert [o.id for o in rest.orchestrators] == ["eve"]
    assert rest.next_page_token == ""


async def test_list_orchestrators_refuses_a_garbage_page_token(stub: Stub) -> None:
    await register(stub, "ada")
    for garbage in ("not-a-token", "bm90IGpzb24=", "WzEsMiwzXQ=="):
        await expect_error(
            stub.ListOrchestrators(pb.ListOrchestratorsRequest(page_token=garbage)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_token",
        )


async def test_list_orchestrators_refuses_a_token_issued_for_another_status(stub: Stub) -> None:
    for name in ("ada", "bob", "cyd"):
        await register(stub, name)
    first = await stub.ListOrchestrators(pb.ListOrchestratorsRequest(page_size=1))
    assert first.next_page_token
    await expect_error(
        stub.ListOrchestrators(
            pb.ListOrchestratorsRequest(page_size=1, page_token=first.next_page_token, status=AWAY)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_token",
    )


# SetOrchestratorStatus


async def test_set_status_requires_a_status(stub: Stub) -> None:
    await register(stub, "ada")
    await expect_error(
        stub.SetOrchestratorStatus(
            pb.SetOrchestratorStatusRequest(
                orchestrator_id="ada", status=orchestrator_pb2.ORCHESTRATOR_STATUS_UNSPECIFIED
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "status",
    )


async def test_set_status_of_an_unknown_orchestrator_is_not_found(stub: Stub) -> None:
    await expect_error(
        stub.SetOrchestratorStatus(pb.SetOrchestratorStatusRequest(orchestrator_id="nobody", status=AWAY)),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_set_status_changes_status_and_heartbeat(stub: Stub) -> None:
    registered = (await register(stub, "ada")).orchestrator
    changed = (
        await stub.SetOrchestratorStatus(
            pb.SetOrchestratorStatusRequest(orchestrator_id="ada", status=OFFLINE)
        )
    ).orchestrator
    assert changed.status == OFFLINE
    assert changed.last_heartbeat_time.ToDatetime() > registered.last_heartbeat_time.ToDatetime()
    assert changed.update_time.ToDatetime() > registered.update_time.ToDatetime()
    assert changed.create_time == registered.create_time
    fetched = (await stub.GetOrchestrator(pb.GetOrchestratorRequest(orchestrator_id="ada"))).orchestrator
    assert fetched.status == OFFLINE
    assert fetched.last_heartbeat_time == changed.last_heartbeat_time


# CreateTask


async def test_create_defaults_priority_to_medium(stub: Stub) -> None:
    await register(stub, "ada")
    created = (
        await stub.CreateTask(pb.CreateTaskRequest(orchestrator_id="ada", workspace_id="ws-1", title="t"))
    ).task
    assert created.priority == task_pb2.TASK_PRIORITY_MEDIUM
    assert created.status == task_pb2.TASK_STATUS_TODO
    assert created.id
    assert (await get_task(stub, created.id)).priority == task_pb2.TASK_PRIORITY_MEDIUM


async def test_create_for_an_unknown_orchestrator_is_not_found(stub: Stub) -> None:
    await register(stub, "ada")
    await expect_error(create(stub, orchestrator_id="nobody"), grpc.StatusCode.NOT_FOUND)
    assert list((await list_tasks(stub)).tasks) == []


async def test_create_with_an_unknown_dependency_is_not_found(stub: Stub) -> None:
    await register(stub, "ada")
    known = await create(stub, "known")
    await expect_error(
        create(stub, "waiting", depends_on=[known.id, "missing-task"]),
        grpc.StatusCode.NOT_FOUND,
        "depends_on",
    )
    assert [t.id for t in (await list_tasks(stub)).tasks] == [known.id]


async def test_create_refuses_a_self_dependency(stub: Stub) -> None:
    await register(stub, "ada")
    await expect_error(
        create(stub, "loop", task_id="loop", depends_on=["loop"]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "depends_on",
    )
    await expect_error(get_task(stub, "loop"), grpc.StatusCode.NOT_FOUND)


async def test_create_refuses_a_title_over_500_characters(stub: Stub) -> None:
    await register(stub, "ada")
    await expect_error(create(stub, "x" * 501), grpc.StatusCode.INVALID_ARGUMENT, "title")
    await expect_error(create(stub, ""), grpc.StatusCode.INVALID_ARGUMENT, "title")
    assert len((await create(stub, "x" * 500)).title) == 500


async def test_create_refuses_more_than_32_tags(stub: Stub) -> None:
    await register(stub, "ada")
    await expect_error(
        create(stub, tags=[f"tag-{i}" for i in range(33)]), grpc.StatusCode.INVALID_ARGUMENT, "tags"
    )
    assert len((await create(stub, tags=[f"tag-{i}" for i in range(32)])).tags) == 32


async def test_create_refuses_metadata_over_64_kib(stub: Stub) -> None:
    await register(stub, "ada")
    metadata = struct_pb2.Struct()
    metadata.update({"blob": "x" * (64 * 1024)})
    await expect_error(create(stub, metadata=metadata), grpc.StatusCode.INVALID_ARGUMENT, "metadata")
    small = struct_pb2.Struct()
    small.update({"blob": "x" * (60 * 1024)})
    assert (await create(stub, metadata=small)).metadata == small


async def test_create_refuses_a_taken_task_id(stub: Stub) -> None:
    await register(stub, "ada")
    await create(stub, "first", task_id="t-1")
    await expect_error(create(stub, "second", task_id="t-1"), grpc.StatusCode.ALREADY_EXISTS)
    assert (await get_task(stub, "t-1")).title == "first"


async def test_a_done_or_cancelled_dependency_counts_as_met(stub: Stub) -> None:
    await register(stub, "ada")
    finished = await create(stub, "finished")
    claimed = await claim(stub)
    assert claimed.context.task.id == finished.id
    await complete(stub, finished.id, claimed.attempt)
    dropped = await create(stub, "dropped")
    await cancel(stub, dropped.id, "not needed")
    pending = await create(stub, "pending")

    ready = await create(stub, "ready", depends_on=[finished.id, dropped.id])
    assert ready.status == task_pb2.TASK_STATUS_TODO
    assert ready.unmet_dependency_count == 0
    waiting = await create(stub, "waiting", depends_on=[finished.id, dropped.id, pending.id])
    assert waiting.status == task_pb2.TASK_STATUS_BLOCKED
    assert waiting.unmet_dependency_count == 1


async def test_create_round_trips_metadata(stub: Stub) -> None:
    await register(stub, "ada")
    metadata = struct_pb2.Struct()
    metadata.update(
        {
            "text": "hello",
            "number": 42,
            "fraction": 0.25,
            "flag": True,
            "nothing": None,
            "list": [1, "two", {"three": 3}],
            "nested": {"deep": {"deeper": ["x"]}},
        }
    )
    created = await create(stub, metadata=metadata, tags=["a", "b"])
    assert created.metadata == metadata
    fetched = await get_task(stub, created.id)
    assert fetched.metadata == metadata
    assert list(fetched.tags) == ["a", "b"]


# GetTask


async def test_get_task_errors(stub: Stub) -> None:
    await register(stub, "ada")
    await expect_error(get_task(stub, "missing"), grpc.StatusCode.NOT_FOUND)
    await expect_error(get_task(stub, ""), grpc.StatusCode.INVALID_ARGUMENT, "task_id")


# ListTasks


async def test_list_tasks_filters_combine(stub: Stub) -> None:
    await register(stub, "ada")
    await register(stub, "bob")
    a1 = await create(stub, "a1", tags=["red"])
    a2 = await create(stub, "a2", workspace_id="ws-2", tags=["red", "blue"])
    a3 = await create(stub, "a3", depends_on=[a1.id])
    b1 = await create(stub, "b1", orchestrator_id="bob", tags=["red"])
    b2 = await create(stub, "b2", orchestrator_id="bob", workspace_id="ws-2")
    await cancel(stub, a2.id)

    async def ids(**fields: Any) -> list[str]:
        return [t.id for t in (await list_tasks(stub, **fields)).tasks]

    assert await ids() == [a1.id, a2.id, a3.id, b1.id, b2.id]
    assert await ids(orchestrator_id="ada") == [a1.id, a2.id, a3.id]
    assert await ids(orchestrator_id="bob") == [b1.id, b2.id]
    assert await ids(workspace_id="ws-2") == [a2.id, b2.id]
    assert await ids(orchestrator_id="bob", workspace_id="ws-2") == [b2.id]
    assert await ids(statuses=[task_pb2.TASK_STATUS_BLOCKED]) == [a3.id]
    assert await ids(statuses=[task_pb2.TASK_STATUS_BLOCKED, task_pb2.TASK_STATUS_CANCELLED]) == [
        a2.id,
        a3.id,
    ]
    assert await ids(statuses=[task_pb2.TASK_STATUS_DONE]) == []
    assert await ids(tag="red") == [a1.id, a2.id, b1.id]
    assert await ids(tag="blue") == [a2.id]
    assert await ids(tag="red", orchestrator_id="ada", statuses=[task_pb2.TASK_STATUS_TODO]) == [a1.id]
    assert await ids(workspace_id="ws-nowhere") == []


async def test_list_tasks_pages_oldest_first(stub: Stub) -> None:
    await register(stub, "ada")
    # Ids chosen in reverse alphabetical order, so "oldest first" is not "by id".
    created = [(await create(stub, f"task {i}", task_id=f"t-{9 - i}")).id for i in range(7)]

    async def fetch_page(token: str) -> tuple[list[str], str]:
        page = await list_tasks(stub, orchestrator_id="ada", page_size=3, page_token=token)
        return [t.id for t in page.tasks], page.next_page_token

    seen, page_sizes = await walk_pages(fetch_page)
    assert page_sizes == [3, 3, 1]
    assert seen == created


async def test_list_tasks_refuses_a_token_reused_with_other_filters(stub: Stub) -> None:
    await register(stub, "ada")
    for i in range(4):
        await create(stub, f"task {i}")
    first = await list_tasks(stub, orchestrator_id="ada", page_size=2)
    assert first.next_page_token
    for other in (
        {"orchestrator_id": "bob"},
        {"orchestrator_id": "ada", "workspace_id": "ws-1"},
        {"orchestrator_id": "ada", "statuses": [task_pb2.TASK_STATUS_TODO]},
        {"orchestrator_id": "ada", "tag": "x"},
    ):
        await expect_error(
            list_tasks(stub, page_size=2, page_token=first.next_page_token, **other),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_token",
        )
    same = await list_tasks(stub, orchestrator_id="ada", page_size=2, page_token=first.next_page_token)
    assert len(same.tasks) == 2


# CancelTask


async def test_cancel_a_todo_task_records_the_reason(stub: Stub) -> None:
    await register(stub, "ada")
    task = await create(stub, "doomed")
    cancelled = await cancel(stub, task.id, "no longer needed")
    assert cancelled.task.status == task_pb2.TASK_STATUS_CANCELLED
    assert cancelled.task.status_reason == "no longer needed"
    assert cancelled.task.HasField("complete_time")
    assert list(cancelled.unblocked_task_ids) == []
    fetched = await get_task(stub, task.id)
    assert fetched.status == task_pb2.TASK_STATUS_CANCELLED
    assert fetched.status_reason == "no longer needed"
    # A cancelled task is never handed out.
    assert not (await claim(stub)).HasField("context")


async def test_cancelling_a_dependency_unblocks_its_dependent(stub: Stub) -> None:
    await register(stub, "ada")
    dependency = await create(stub, "dependency")
    other = await create(stub, "other")
    single = await create(stub, "single", depends_on=[dependency.id])
    double = await create(stub, "double", depends_on=[dependency.id, other.id])
    assert single.status == task_pb2.TASK_STATUS_BLOCKED

    cancelled = await cancel(stub, dependency.id, "dropped")
    assert list(cancelled.unblocked_task_ids) == [single.id]
    single_now = await get_task(stub, single.id)
    assert single_now.status == task_pb2.TASK_STATUS_TODO
    assert single_now.unmet_dependency_count == 0
    double_now = await get_task(stub, double.id)
    assert double_now.status == task_pb2.TASK_STATUS_BLOCKED
    assert double_now.unmet_dependency_count == 1


async def test_cancelling_an_in_progress_task_fences_its_attempt(stub: Stub) -> None:
    await register(stub, "ada")
    task = await create(stub, "running")
    claimed = await claim(stub)
    assert claimed.context.task.id == task.id

    cancelled = await cancel(stub, task.id, "stop")
    assert cancelled.task.status == task_pb2.TASK_STATUS_CANCELLED
    await expect_error(complete(stub, task.id, claimed.attempt), grpc.StatusCode.FAILED_PRECONDITION)
    await expect_error(
        stub.UpdateTaskProgress(
            pb.UpdateTaskProgressRequest(task_id=task.id, attempt=claimed.attempt, progress=5)
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert (await get_task(stub, task.id)).status == task_pb2.TASK_STATUS_CANCELLED


async def test_cancelling_a_finished_task_is_refused(stub: Stub) -> None:
    await register(stub, "ada")
    task = await create(stub, "finished")
    claimed = await claim(stub)
    await complete(stub, task.id, claimed.attempt)
    await expect_error(cancel(stub, task.id), grpc.StatusCode.FAILED_PRECONDITION)
    assert (await get_task(stub, task.id)).status == task_pb2.TASK_STATUS_DONE

    dropped = await create(stub, "dropped")
    await cancel(stub, dropped.id)
    await expect_error(cancel(stub, dropped.id), grpc.StatusCode.FAILED_PRECONDITION)


async def test_cancelling_an_unknown_task_is_not_found(stub: Stub) -> None:
    await register(stub, "ada")
    await expect_error(cancel(stub, "missing"), grpc.StatusCode.NOT_FOUND)
