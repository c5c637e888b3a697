"""Hostile input: every RPC, random and malicious values, over a real socket.

Each call must end with a status that means something to a client (OK, INVALID_ARGUMENT,
NOT_FOUND, ...; never UNKNOWN or INTERNAL), its message must not leak SQL or Python, and the
server must stay healthy: health SERVING and a normal create/claim/complete still work.

Hypothesis runs on a worker thread with a blocking channel while the aio server serves on the
test's event loop. The RPCs come from the service descriptor, so a new RPC is covered the day
it is added. `derandomize=True`: CI runs the same examples every time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor as pb_descriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings

from tests.integration import hostile
from tests.integration.helpers import Stub, claim, complete, create, expect_error, register
from workengine.api.server import SERVICE_NAME, Security, start_server
from workengine.domain.model import TaskFilter
from workengine.engine import WorkEngine, paging
from workengine.store.database import Database
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["WorkEngineService"]
METHODS = list(SERVICE.methods)

# A status a client can act on. UNKNOWN, INTERNAL, UNAVAILABLE (the database is up),
# DEADLINE_EXCEEDED (nothing should hang) or CANCELLED would each be a bug.
ANSWERS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}

HYPOTHESIS = settings(
    deadline=None,
    derandomize=not os.environ.get("FUZZ_N"),
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


async def seed(stub: Stub) -> None:
    """The ids the strategies favour (hostile.KNOWN_IDS), in every state."""
    await register(stub, "ada")
    await register(stub, "bob")
    await register(stub, "away", status=2)  # AWAY
    await create(stub, "done", task_id="t-done", channel_id="ch-1")
    await create(stub, "running", task_id="t-running", priority="CRITICAL")
    await create(stub, "blocked", task_id="t-blocked", depends_on=["t-running"])
    started = await claim(stub)
    assert started.context.task.id == "t-running"
    await stub.ExecuteTask(pb.ExecuteTaskRequest(orchestrator_id="ada", task_id="t-done"))
    await complete(stub, "t-done", 1)
    await create(stub, "todo", task_id="t-todo", orchestrator_id="bob", tags=["x"])


def invoke(channel: grpc.Channel, method: pb_descriptor.MethodDescriptor, request: bytes) -> tuple[Any, str]:
    """Sends raw request bytes; returns (status code, details). A stream is read up to its
    first message (a watch stays open: that is an answer too)."""
    path = f"/{SERVICE_NAME}/{method.name}"
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path)(request, timeout=3)
            for _ in stream:
                stream.cancel()
                break
            return grpc.StatusCode.OK, ""
        # A long poll is cut by the server 0.5 s before the call's deadline.
        timeout = 1.5 if method.name == "ClaimNextTask" else 15
        channel.unary_unary(path)(request, timeout=timeout)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as error:
        code, details = error.code(), error.details() or ""
        if method.server_streaming and code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
            return grpc.StatusCode.OK, ""  # cancelled by us after a message, or an open quiet watch
        return code, details


def check_answer(method: pb_descriptor.MethodDescriptor, request: bytes, code: Any, details: str) -> None:
    assert code in ANSWERS, f"{method.name}: {code.name}: {details[:300]}"
    assert not hostile.leaks(details, request), f"{method.name} leaks: {details[:300]}"
    assert len(details) < 2_000, f"{method.name}: a {len(details)}-character message"


async def assert_healthy(stub: Stub, channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE_NAME):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    await register(stub, "after")
    task = await create(stub, "still works", orchestrator_id="after", task_id="t-after")
    claimed = await claim(stub, "after")
    assert claimed.context.task.id == task.id
    done = await complete(stub, task.id, claimed.attempt)
    assert done.task.status == 4  # DONE


async def run_hypothesis(target: str, test: Callable[[grpc.Channel], None]) -> None:
    def run() -> None:
        with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", -1)]) as channel:
            test(channel)

    await asyncio.to_thread(run)


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
async def test_every_rpc_answers_hostile_values_properly(
    method: pb_descriptor.MethodDescriptor, stub: Stub, channel: grpc.aio.Channel, target: str
) -> None:
    await seed(stub)

    def fuzz(sync_channel: grpc.Channel) -> None:
        @settings(HYPOTHESIS, max_examples=int(os.environ.get("FUZZ_N", 30)))
        @given(request=hostile.messages(method.input_type))
        def one(request: Any) -> None:
            data = request.SerializeToString()
            check_answer(method, data, *invoke(sync_channel, method, data))

        one()

    await run_hypothesis(target, fuzz)
    await assert_healthy(stub, channel)


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
async def test_every_rpc_answers_malformed_bytes_properly(
    method: pb_descriptor.MethodDescriptor, stub: Stub, channel: grpc.aio.Channel, target: str
) -> None:
    await seed(stub)

    def fuzz(sync_channel: grpc.Channel) -> None:
        @settings(HYPOTHESIS, max_examples=int(os.environ.get("FUZZ_N", 15)))
        @given(request=hostile.malformed(method.input_type))
        def one(request: bytes) -> None:
            check_answer(method, request, *invoke(sync_channel, method, request))

        one()

    await run_hypothesis(target, fuzz)
    await assert_healthy(stub, channel)


@pytest.mark.parametrize(
    "payload",
    [b"\x0a\x02\xff\xfe", b"\x0a\x03\xed\xa0\x80", b"\x0a\x05ada", b"\x0a"],
    ids=["invalid-utf8", "lone-surrogate", "truncated", "no-length"],
)
async def test_undecodable_request_is_invalid_argument(payload: bytes, target: str) -> None:
    async with grpc.aio.insecure_channel(target) as raw:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await raw.unary_unary(f"/{SERVICE_NAME}/GetTask")(payload, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    details = raised.value.details() or ""
    check_answer(SERVICE.methods_by_name["GetTask"], payload, raised.value.code(), details)


# Regressions, one per bug the fuzzing above (or reading along with it) found.


def forged_token(created_at: str, item_id: object, filters: object) -> str:
    """A page token as the server writes it, with a correct digest: the digest is no secret."""
    payload = json.dumps([created_at, item_id, paging._filter_digest(filters)])
    return base64.urlsafe_b64encode(payload.encode()).decode()


@pytest.mark.parametrize(
    "created_at, item_id",
    [
        ("2026-01-01T00:00:00+00:00", "a\x00b"),  # was INTERNAL: the driver refuses NUL
        ("2026-01-01T00:00:00+00:00", "\ud800"),  # was INTERNAL: a lone surrogate cannot be encoded
        ("2026-01-01T00:00:00+00:00", {"a": 1}),
        ("2026-01-01T00:00:00+00:00", None),
        ("2026-01-01T00:00:00", "t-1"),  # naive: not what the server writes
    ],
    ids=["nul", "surrogate", "object", "null", "naive-time"],
)
async def test_forged_page_token_is_invalid_argument(stub: Stub, created_at: str, item_id: object) -> None:
    tasks = forged_token(created_at, item_id, TaskFilter())
    orchestrators = forged_token(created_at, item_id, ("orchestrators", None))
    await expect_error(
        stub.ListTasks(pb.ListTasksRequest(page_token=tasks)), grpc.StatusCode.INVALID_ARGUMENT, "page_token"
    )
    await expect_error(
        stub.ListOrchestrators(pb.ListOrchestratorsRequest(page_token=orchestrators)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_token",
    )


async def test_id_with_trailing_newline_is_refused(stub: Stub) -> None:
    # The id pattern ended in "$", which also matches before a final newline.
    await expect_error(register(stub, "ada\n"), grpc.StatusCode.INVALID_ARGUMENT, "orchestrator_id")
    await register(stub, "ada")
    await expect_error(create(stub, task_id="t-1\n"), grpc.StatusCode.INVALID_ARGUMENT, "task_id")
    await expect_error(create(stub, workspace_id="ws\n"), grpc.StatusCode.INVALID_ARGUMENT, "workspace_id")


async def test_undecodable_request_with_an_orchestrator_token_is_invalid_argument(database_url: str) -> None:
    # With authentication on, the guard reads the request's fields to authorize an
    # orchestrator's call: an undecodable request reached it as a placeholder without them.
    engine = WorkEngine(Database(database_url, pool_size=4))
    running = await start_server(engine, "127.0.0.1", 0, Security(admin_token="admin-secret"))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as raw:
            admin = pb_grpc.WorkEngineServiceStub(raw)
            registered = await admin.RegisterOrchestrator(
                pb.RegisterOrchestratorRequest(orchestrator_id="ada", display_name="Ada"),
                metadata=[("authorization", "Bearer admin-secret")],
            )
            as_ada = [("authorization", f"Bearer {registered.token}")]
            for rpc in ("GetTask", "ListTasks", "WatchTaskProgress"):
                path = f"/{SERVICE_NAME}/{rpc}"
                call = (
                    raw.unary_stream(path)(b"\x0a\x02\xff\xfe", metadata=as_ada, timeout=5)
                    if rpc == "WatchTaskProgress"
                    else raw.unary_unary(path)(b"\x0a\x02\xff\xfe", metadata=as_ada, timeout=5)
                )
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    if rpc == "WatchTaskProgress":
                        await call.read()
                    else:
                        await call
                assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (rpc, raised.value.details())
    finally:
        await running.stop(0)
        await engine.close()
