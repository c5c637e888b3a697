"""Database down -> UNAVAILABLE with a short, safe message."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.integration.helpers import expect_error
from workengine.api.server import RunningServer, start_server
from workengine.engine import WorkEngine
from workengine.store.database import Database
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def server_without_database() -> AsyncIterator[RunningServer]:
    engine = WorkEngine(Database(f"postgresql://postgres@127.0.0.1:{closed_port()}/nothing"))
    running = await start_server(engine, "127.0.0.1", 0)
    yield running
    await running.stop(0)
    await engine.close()


async def test_rpcs_fail_with_unavailable_when_the_database_is_down(
    server_without_database: RunningServer,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server_without_database.port}") as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        error = await expect_error(
            stub.GetTask(pb.GetTaskRequest(task_id="t1")), grpc.StatusCode.UNAVAILABLE, "database unavailable"
        )
        assert "SELECT" not in (error.details() or "")
        await expect_error(
            stub.ClaimNextTask(pb.ClaimNextTaskRequest(orchestrator_id="ada")), grpc.StatusCode.UNAVAILABLE
        )
