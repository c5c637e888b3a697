"""Graceful stop: watch streams end at once with UNAVAILABLE, long polls answer "no task"."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from google.protobuf import duration_pb2

from tests.integration.helpers import claim, create, register
from workengine.api.server import start_server
from workengine.engine import WorkEngine
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc


async def test_stop_ends_streams_and_long_polls_promptly(engine: WorkEngine) -> None:
    running = await start_server(engine, "127.0.0.1", 0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        await register(stub)
        task = await create(stub)
        watch = stub.WatchTaskProgress(pb.WatchTaskProgressRequest(task_id=task.id))
        snapshot = await asyncio.wait_for(watch.read(), timeout=5)
        assert isinstance(snapshot, pb.WatchTaskProgressResponse)
        await claim(stub)  # nothing else is ready: the long poll below waits
        poll = asyncio.create_task(claim(stub, wait=duration_pb2.Duration(seconds=30)))
        await asyncio.sleep(0.3)

        started = time.monotonic()
        await running.stop(grace=10)
        assert time.monotonic() - started < 5, "stop waited for the grace period"

        polled = await asyncio.wait_for(poll, timeout=5)
        assert not polled.HasField("context")
        # The STARTED event may still be buffered before the end of the stream.
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            for _ in range(10):
                await asyncio.wait_for(watch.read(), timeout=5)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "after_cursor" in (ended.value.details() or "")
    assert engine.hub.subscriber_count == 0
