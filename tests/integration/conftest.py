"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from tests.integration.replicas import Replica, ReplicaFactory
from workengine.api.server import RunningServer, start_server
from workengine.engine import WorkEngine
from workengine.engine.feed import FeedSettings
from workengine.store.database import Database
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc


@pytest.fixture
async def replica(database_url: str) -> AsyncIterator[ReplicaFactory]:
    """Starts extra server 'processes' on the test database: engine, pool, feed, server."""
    started: list[tuple[WorkEngine, RunningServer, grpc.aio.Channel]] = []

    async def start(settings: FeedSettings) -> Replica:
        engine = WorkEngine(Database(database_url, pool_size=5), feed_settings=settings)
        running = await start_server(engine, "127.0.0.1", 0)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        started.append((engine, running, channel))
        return Replica(engine, pb_grpc.WorkEngineServiceStub(channel), f"127.0.0.1:{running.port}")

    yield start
    for engine, running, channel in started:
        await channel.close()
        await running.stop(0)
        await engine.close()
