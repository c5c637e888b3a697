"""Authentication and authorization over a real socket: the admin token, orchestrator tokens,
their rotation, revocation and expiry; refused with the right code for unary and streaming RPCs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.integration.helpers import claim, complete, create, register
from workengine.api.server import RunningServer, Security, start_server
from workengine.client import AsyncWorkEngineClient, PermissionDenied, Unauthenticated
from workengine.domain.access import token_hash
from workengine.engine import WorkEngine
from workengine.store.database import Database
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

ADMIN_TOKEN = "admin-token-for-the-tests-0123456789"
Stub = pb_grpc.WorkEngineServiceStub
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED


def _with_authorization(details: Any, value: str) -> Any:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    metadata.add("authorization", value)
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


# Two classes: grpc.aio files an interceptor under the first interceptor type it matches only.
class _UnaryAuthorization(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, value: str) -> None:
        self.value = value

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_authorization(details, self.value), request)


class _StreamAuthorization(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, value: str) -> None:
        self.value = value

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_authorization(details, self.value), request)


class Clock:
    """The engine's clock, movable: token expiry is judged by it."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Secured:
    engine: WorkEngine
    running: RunningServer
    target: str
    clock: Clock
    channels: list[grpc.aio.Channel]

    def stub(self, authorization: str | None) -> Stub:
        interceptors: list[Any] = []
        if authorization is not None:
            interceptors = [_UnaryAuthorization(authorization), _StreamAuthorization(authorization)]
        channel = grpc.aio.insecure_channel(self.target, interceptors=interceptors)
        self.channels.append(channel)
        return pb_grpc.WorkEngineServiceStub(channel)

    def as_token(self, token: str) -> Stub:
        return self.stub(f"Bearer {token}")

    @property
    def admin(self) -> Stub:
        return self.as_token(ADMIN_TOKEN)


@pytest.fixture
async def secured(database_url: str) -> AsyncIterator[Secured]:
    clock = Clock()
    engine = WorkEngine(Database(database_url, pool_size=10), clock=clock)
    running = await start_server(engine, "127.0.0.1", 0, Security(admin_token=ADMIN_TOKEN))
    secured = Secured(engine, running, f"127.0.0.1:{running.port}", clock, [])
    yield secured
    for channel in secured.channels:
        await channel.close()
    await running.stop(0)
    await engine.close()


@dataclass
class World:
    ada_token: str
    bob_token: str
    ada_task: str
    bob_task: str


@pytest.fixture
async def world(secured: Secured) -> World:
    admin = secured.admin
    ada = await register(admin, "ada")
    bob = await register(admin, "bob")
    ada_task = await create(admin, "ada's", orchestrator_id="ada", workspace_id="ws-1")
    bob_task = await create(admin, "bob's", orchestrator_id="bob", workspace_id="ws-1")
    return World(ada.token, bob.token, ada_task.id, bob_task.id)


async def refused(call: Awaitable[Any], code: grpc.StatusCode, message: str = "") -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    details = caught.value.details() or ""
    assert message in details
    return details


async def stream_refused(stub: Stub, code: grpc.StatusCode, message: str = "", **target: str) -> str:
    call = stub.WatchTaskProgress(pb.WatchTaskProgressRequest(**target))  # type: ignore[arg-type]
    details = await refused(asyncio.wait_for(call.read(), 10), code, message)
    call.cancel()
    return details


def unary_calls(world: World) -> list[tuple[str, Callable[[Stub], Awaitable[Any]]]]:
    """One call of every unary RPC, aimed at bob and bob's task."""
    bob, task = "bob", world.bob_task
    return [
        ("SelectNextTask", lambda s: s.SelectNextTask(pb.SelectNextTaskRequest(orchestrator_id=bob))),
        ("ClaimNextTask", lambda s: s.ClaimNextTask(pb.ClaimNextTaskRequest(orchestrator_id=bob))),
        (
            "ExplainSelection",
            lambda s: s.ExplainSelection(pb.ExplainSelectionRequest(orchestrator_id=bob, task_ids=[task])),
        ),
        (
            "PrepareTaskContext",
            lambda s: s.PrepareTaskContext(pb.PrepareTaskContextRequest(orchestrator_id=bob, task_id=task)),
        ),
        ("ExecuteTask", lambda s: s.ExecuteTask(pb.ExecuteTaskRequest(orchestrator_id=bob, task_id=task))),
        (
            "UpdateTaskProgress",
            lambda s: s.UpdateTaskProgress(pb.UpdateTaskProgressRequest(task_id=task, attempt=1, progress=5)),
        ),
        (
            "CompleteTask",
            lambda s: s.CompleteTask(
                pb.CompleteTaskRequest(task_id=task, attempt=1, status=pb.COMPLETION_STATUS_COMPLETED)
            ),
        ),
        ("Heartbeat", lambda s: s.Heartbeat(pb.HeartbeatRequest(task_id=task, attempt=1))),
        ("RetryTask", lambda s: s.RetryTask(pb.RetryTaskRequest(task_id=task))),
        (
            "GetExecutionStats",
            lambda s: s.GetExecutionStats(pb.GetExecutionStatsRequest(orchestrator_id=bob)),
        ),
        (
            "RegisterOrchestrator",
            lambda s: s.RegisterOrchestrator(pb.RegisterOrchestratorRequest(display_name="Eve")),
        ),
        ("GetOrchestrator", lambda s: s.GetOrchestrator(pb.GetOrchestratorRequest(orchestrator_id=bob))),
        ("ListOrchestrators", lambda s: s.ListOrchestrators(pb.ListOrchestratorsRequest())),
        (
            "SetOrchestratorStatus",
            lambda s: s.SetOrchestratorStatus(
                pb.SetOrchestratorStatusRequest(orchestrator_id=bob, status=3)  # type: ignore[arg-type]
            ),
        ),
        (
            "RotateOrchestratorToken",
            lambda s: s.RotateOrchestratorToken(pb.RotateOrchestratorTokenRequest(orchestrator_id=bob)),
        ),
        (
            "RevokeOrchestratorTokens",
            lambda s: s.RevokeOrchestratorTokens(pb.RevokeOrchestratorTokensRequest(orchestrator_id=bob)),
        ),
        (
            "CreateTask",
            lambda s: s.CreateTask(pb.CreateTaskRequest(orchestrator_id=bob, workspace_id="ws-1", title="x")),
        ),
        ("GetTask", lambda s: s.GetTask(pb.GetTaskRequest(task_id=task))),
        ("ListTasks", lambda s: s.ListTasks(pb.ListTasksRequest(orchestrator_id=bob))),
        ("CancelTask", lambda s: s.CancelTask(pb.CancelTaskRequest(task_id=task))),
    ]


def test_the_calls_cover_every_unary_rpc() -> None:
    service = pb.DESCRIPTOR.services_by_name["WorkEngineService"]
    unary = {m.name for m in service.methods if not m.server_streaming}
    covered = {name for name, _ in unary_calls(World("", "", "", ""))}
    assert covered == unary


@pytest.mark.parametrize(
    ("authorization", "problem"),
    [
        (None, "authorization: missing"),
        ("wet_no_scheme", "authorization: malformed"),
        ("Basic YWRtaW46YWRtaW4=", "authorization: malformed"),
        ("Bearer", "authorization: malformed"),
        ("Bearer wet_not-a-token-we-issued", "authorization: unknown token"),
        ("Bearer admin-token-for-the-tests-012345678", "authorization: unknown token"),
    ],
)
async def test_every_rpc_refuses_a_missing_malformed_or_wrong_token(
    secured: Secured, world: World, authorization: str | None, problem: str
) -> None:
    stub = secured.stub(authorization)
    for name, call in unary_calls(world):
        details = await refused(call(stub), UNAUTHENTICATED, problem)
        assert "admin-token" not in details, name
    for target in ({"task_id": world.bob_task}, {"orchestrator_id": "bob"}, {"workspace_id": "ws-1"}):
        await stream_refused(stub, UNAUTHENTICATED, problem, **target)


async def test_another_orchestrators_token_is_permission_denied_everywhere(
    secured: Secured, world: World
) -> None:
    ada = secured.as_token(world.ada_token)
    for name, call in unary_calls(world):
        details = await refused(call(ada), PERMISSION_DENIED)
        assert world.ada_token not in details and ADMIN_TOKEN not in details, name
    await stream_refused(ada, PERMISSION_DENIED, "assigned to another orchestrator", task_id=world.bob_task)
    await stream_refused(ada, PERMISSION_DENIED, "acts for orchestrator ada only", orchestrator_id="bob")
    await stream_refused(ada, PERMISSION_DENIED, "needs the admin token", workspace_id="ws-1")
    # Nothing of bob's changed.
    task = (await secured.admin.GetTask(pb.GetTaskRequest(task_id=world.bob_task))).task
    assert task.status == 1 and task.attempt == 0


async def test_an_orchestrator_token_runs_its_own_daemon_loop(secured: Secured, world: World) -> None:
    ada = secured.as_token(world.ada_token)
    mine = await create(ada, "made by ada", orchestrator_id="ada", workspace_id="ws-2")
    watch = ada.WatchTaskProgress(pb.WatchTaskProgressRequest(task_id=world.ada_task))
    assert (await asyncio.wait_for(watch.read(), 10)).event.task.id == world.ada_task  # the snapshot
    orchestrator_watch = ada.WatchTaskProgress(pb.WatchTaskProgressRequest(orchestrator_id="ada"))
    assert (await asyncio.wait_for(orchestrator_watch.read(), 10)).event.task.orchestrator_id == "ada"
    orchestrator_watch.cancel()
    claimed = await claim(ada, "ada")
    task_id, attempt = claimed.context.task.id, claimed.attempt
    await ada.UpdateTaskProgress(pb.UpdateTaskProgressRequest(task_id=task_id, attempt=attempt, progress=50))
    await complete(ada, task_id, attempt)
    assert (await ada.GetTask(pb.GetTaskRequest(task_id=task_id))).task.status == 4  # DONE
    # Listing without a filter lists its own tasks; with its own id likewise.
    listed = await ada.ListTasks(pb.ListTasksRequest())
    assert {t.id for t in listed.tasks} == {world.ada_task, mine.id}
    assert {t.orchestrator_id for t in listed.tasks} == {"ada"}
    again = await ada.ListTasks(pb.ListTasksRequest(orchestrator_id="ada", page_size=1))
    more = await ada.ListTasks(pb.ListTasksRequest(page_size=1, page_token=again.next_page_token))
    assert len(again.tasks) == len(more.tasks) == 1
    await ada.CancelTask(pb.CancelTaskRequest(task_id=mine.id))
    stats = await ada.GetExecutionStats(pb.GetExecutionStatsRequest(orchestrator_id="ada"))
    assert stats.completed_tasks == 1
    orchestrator = (await ada.GetOrchestrator(pb.GetOrchestratorRequest(orchestrator_id="ada"))).orchestrator
    assert orchestrator.id == "ada"
    watch.cancel()
    # An unknown task is NOT_FOUND, as without authentication.
    await refused(ada.GetTask(pb.GetTaskRequest(task_id="nope")), grpc.StatusCode.NOT_FOUND)


async def test_an_orchestrator_token_explains_its_own_queue_only(secured: Secured, world: World) -> None:
    ada = secured.as_token(world.ada_token)
    request = pb.ExplainSelectionRequest(orchestrator_id="ada", task_ids=[world.ada_task, world.bob_task])
    explained = await ada.ExplainSelection(request)
    assert [entry.task.id for entry in explained.ranked] == [world.ada_task]
    # Bob's task is named as another's, and nothing more is told of it.
    assert [(a.task_id, a.reason) for a in explained.explained] == [
        (world.ada_task, pb.NOT_FIRST_REASON_RANKED),
        (world.bob_task, pb.NOT_FIRST_REASON_OTHER_ORCHESTRATOR),
    ]
    assert "bob" not in explained.explained[1].detail
    await refused(
        ada.ExplainSelection(pb.ExplainSelectionRequest(orchestrator_id="bob")),
        PERMISSION_DENIED,
        "acts for orchestrator ada only",
    )
    bob = await secured.admin.ExplainSelection(pb.ExplainSelectionRequest(orchestrator_id="bob"))
    assert [entry.task.id for entry in bob.ranked] == [world.bob_task]


async def test_the_admin_can_do_everything(secured: Secured, world: World) -> None:
    admin = secured.admin
    for name, call in unary_calls(world):
        try:
            await call(admin)
        except grpc.aio.AioRpcError as error:  # domain refusals only (e.g. a stale attempt)
            assert error.code() not in (UNAUTHENTICATED, PERMISSION_DENIED), (name, error.details())
    listed = await admin.ListTasks(pb.ListTasksRequest())
    assert {"ada", "bob"} <= {t.orchestrator_id for t in listed.tasks}
    watch = admin.WatchTaskProgress(pb.WatchTaskProgressRequest(workspace_id="ws-1"))
    assert (await asyncio.wait_for(watch.read(), 10)).event.task.workspace_id == "ws-1"
    watch.cancel()


async def test_reflection_and_health_need_no_token(secured: Secured) -> None:
    async with grpc.aio.insecure_channel(secured.target) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        async for answer in reflection:
            names = {s.name for s in answer.list_services_response.service}
            assert "workengine.v1.WorkEngineService" in names
            break


async def test_tokens_are_stored_only_as_hashes(secured: Secured, world: World) -> None:
    async with secured.engine.db.autocommit() as session:
        assert await session.orchestrators.find_token(world.ada_token) is None
        stored = await session.orchestrators.find_token(token_hash(world.ada_token))
    assert stored is not None and stored.orchestrator_id == "ada"


async def test_a_revoked_token_is_unauthenticated_for_unary_and_streams(
    secured: Secured, world: World
) -> None:
    ada = secured.as_token(world.ada_token)
    await ada.GetTask(pb.GetTaskRequest(task_id=world.ada_task))
    revoked = await secured.admin.RevokeOrchestratorTokens(
        pb.RevokeOrchestratorTokensRequest(orchestrator_id="ada")
    )
    assert revoked.revoked_count == 1
    await refused(ada.GetTask(pb.GetTaskRequest(task_id=world.ada_task)), UNAUTHENTICATED, "token revoked")
    await stream_refused(ada, UNAUTHENTICATED, "token revoked", task_id=world.ada_task)
    # bob is untouched; an unknown orchestrator is NOT_FOUND.
    await secured.as_token(world.bob_token).GetTask(pb.GetTaskRequest(task_id=world.bob_task))
    await refused(
        secured.admin.RevokeOrchestratorTokens(pb.RevokeOrchestratorTokensRequest(orchestrator_id="nobody")),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_rotation_issues_a_new_token_and_retires_the_old_one(secured: Secured, world: World) -> None:
    old = secured.as_token(world.ada_token)
    rotated = await old.RotateOrchestratorToken(pb.RotateOrchestratorTokenRequest(orchestrator_id="ada"))
    assert rotated.token.startswith("wet_") and rotated.token != world.ada_token
    assert not rotated.HasField("token_expire_time")
    await refused(old.GetTask(pb.GetTaskRequest(task_id=world.ada_task)), UNAUTHENTICATED, "token revoked")
    new = secured.as_token(rotated.token)
    await new.GetTask(pb.GetTaskRequest(task_id=world.ada_task))
    await refused(new.GetTask(pb.GetTaskRequest(task_id=world.bob_task)), PERMISSION_DENIED)


async def test_rotation_with_a_grace_period_keeps_the_old_token_working_until_it_ends(
    secured: Secured, world: World
) -> None:
    request = pb.RotateOrchestratorTokenRequest(orchestrator_id="ada")
    request.previous_token_grace.FromTimedelta(timedelta(minutes=10))
    rotated = await secured.admin.RotateOrchestratorToken(request)
    old, new = secured.as_token(world.ada_token), secured.as_token(rotated.token)
    await old.GetTask(pb.GetTaskRequest(task_id=world.ada_task))
    await new.GetTask(pb.GetTaskRequest(task_id=world.ada_task))
    secured.clock.offset = timedelta(minutes=11)
    await refused(old.GetTask(pb.GetTaskRequest(task_id=world.ada_task)), UNAUTHENTICATED, "token revoked")
    await new.GetTask(pb.GetTaskRequest(task_id=world.ada_task))


async def test_an_expired_token_is_unauthenticated_for_unary_and_streams(secured: Secured) -> None:
    request = pb.RegisterOrchestratorRequest(orchestrator_id="eve", display_name="Eve")
    request.token_ttl.FromTimedelta(timedelta(hours=1))
    registered = await secured.admin.RegisterOrchestrator(request)
    expires = registered.token_expire_time.ToDatetime(tzinfo=UTC)
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
    eve = secured.as_token(registered.token)
    task = await create(eve, "eve's", orchestrator_id="eve")
    secured.clock.offset = timedelta(hours=1, seconds=1)
    await refused(eve.GetTask(pb.GetTaskRequest(task_id=task.id)), UNAUTHENTICATED, "token expired")
    await stream_refused(eve, UNAUTHENTICATED, "token expired", task_id=task.id)
    # A rotation with a lifetime hands out a token that works again.
    secured.clock.offset = timedelta(0)
    rotate = pb.RotateOrchestratorTokenRequest(orchestrator_id="eve")
    rotate.token_ttl.FromTimedelta(timedelta(days=1))
    fresh = await secured.admin.RotateOrchestratorToken(rotate)
    await secured.as_token(fresh.token).GetTask(pb.GetTaskRequest(task_id=task.id))


async def test_token_lifetimes_out_of_range_are_invalid_arguments(secured: Secured) -> None:
    request = pb.RegisterOrchestratorRequest(display_name="Eve")
    request.token_ttl.FromTimedelta(timedelta(days=4000))
    await refused(secured.admin.RegisterOrchestrator(request), grpc.StatusCode.INVALID_ARGUMENT, "token_ttl")


async def test_the_python_client_sends_its_token(secured: Secured, world: World) -> None:
    async with AsyncWorkEngineClient(secured.target, token=world.ada_token) as client:
        assert (await client.get_task(world.ada_task)).id == world.ada_task
        events = client.watch_task_progress(task_id=world.ada_task)
        assert (await anext(events)).task.id == world.ada_task
        await events.aclose()  # type: ignore[attr-defined]
        with pytest.raises(PermissionDenied) as denied:
            await client.get_task(world.bob_task)
        assert denied.value.code() == PERMISSION_DENIED
    async with AsyncWorkEngineClient(secured.target) as anonymous:
        with pytest.raises(Unauthenticated) as unknown:
            await anonymous.get_task(world.ada_task)
        assert unknown.value.code() == UNAUTHENTICATED
