"""CreateTask with an idempotency key: safe to retry, and never two tasks for one intent."""

from __future__ import annotations

import asyncio

import grpc

from tests.integration.helpers import Stub, create, expect_error, register
from workengine.engine import WorkEngine
from workengine.v1 import work_engine_service_pb2 as pb


async def test_the_same_key_and_request_returns_the_first_task(stub: Stub, engine: WorkEngine) -> None:
    await register(stub)
    first = await create(stub, "deploy", idempotency_key="deploy-42", tags=["ops"])
    again = await create(stub, "deploy", idempotency_key="deploy-42", tags=["ops"])

    assert again == first  # the generated id too
    assert first.idempotency_key == "deploy-42"
    async with engine.db.autocommit() as session:
        page = await session.events.tail(0, 100)
    assert [e.kind.value for e in page.events] == ["CREATED"]


async def test_the_same_key_with_a_different_request_is_refused(stub: Stub) -> None:
    await register(stub)
    await create(stub, "deploy", idempotency_key="deploy-42")
    error = await expect_error(
        create(stub, "deploy to prod", idempotency_key="deploy-42"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "idempotency_key",
    )
    assert "different request" in (error.details() or "")


async def test_keys_are_scoped_to_the_orchestrator(stub: Stub) -> None:
    await register(stub, "ada")
    await register(stub, "bob")
    for_ada = await create(stub, "deploy", orchestrator_id="ada", idempotency_key="k")
    for_bob = await create(stub, "deploy", orchestrator_id="bob", idempotency_key="k")
    assert for_ada.id != for_bob.id


async def test_concurrent_retries_create_one_task(stub: Stub) -> None:
    await register(stub)
    created = await asyncio.gather(*(create(stub, "deploy", idempotency_key="once") for _ in range(12)))
    assert len({task.id for task in created}) == 1
    listed = await stub.ListTasks(pb.ListTasksRequest(orchestrator_id="ada"))
    assert len(listed.tasks) == 1


async def test_a_taken_id_without_a_key_is_still_already_exists(stub: Stub) -> None:
    await register(stub)
    await create(stub, task_id="t-1", idempotency_key="a")
    await expect_error(create(stub, task_id="t-1"), grpc.StatusCode.ALREADY_EXISTS)
    await expect_error(create(stub, task_id="t-1", idempotency_key="b"), grpc.StatusCode.ALREADY_EXISTS)
    await expect_error(
        create(stub, idempotency_key="x" * 201), grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key"
    )
