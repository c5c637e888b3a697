"""Log records emitted while a call is served name it, for unary and streaming calls alike:
CallContext (api/call_context.py) records the method and peer inside the call's own behaviour,
so records of the guard, the servicer's error mapping and the engine carry them, also after a
stream resumes from a yield and while other calls run; under tracing they carry the trace id.
A real aio server on a socket with the real interceptor chain; the records go through serve's
JSON handler."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from workengine.api.server import RunningServer, Security, start_server
from workengine.domain.model import Bookmark
from workengine.engine import WorkEngine
from workengine.logs import Redactor, log_handler
from workengine.tracing import Tracing
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

ADMIN_TOKEN = "call-logs-admin-token-0123456789"
SERVICE = "/workengine.v1.WorkEngineService"
engine_log = logging.getLogger("workengine.engine.test_call_logs")


@pytest.fixture
async def authenticated(engine: WorkEngine) -> AsyncIterator[RunningServer]:
    running = await start_server(engine, "127.0.0.1", 0, Security(admin_token=ADMIN_TOKEN))
    yield running
    await running.stop(0)


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the root logger receives, as serve's JSON handler writes it."""
    stream = io.StringIO()
    handler = log_handler(stream, "json", Redactor([ADMIN_TOKEN]))
    logging.getLogger().addHandler(handler)
    yield stream
    logging.getLogger().removeHandler(handler)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def break_the_engine(engine: WorkEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """GetOrchestrator and WatchTaskProgress reach engine code that logs, waits (letting the
    other call run), logs again, and fails: the servicer then logs 'unhandled error'."""

    async def get(orchestrator_id: str) -> Any:
        engine_log.warning("engine: unary %s", orchestrator_id)
        await asyncio.sleep(0.05)
        engine_log.warning("engine: unary after a wait")
        raise RuntimeError("unary broke")

    async def watch(*_: Any) -> AsyncIterator[Bookmark]:
        engine_log.warning("engine: stream starts")
        yield Bookmark(cursor=1, occurred_at=datetime.now(UTC))
        await asyncio.sleep(0.05)
        engine_log.warning("engine: stream resumed after a yield")
        raise RuntimeError("stream broke")

    monkeypatch.setattr(engine.orchestrators, "get", get)
    monkeypatch.setattr(engine.watcher, "watch", watch)


async def _unary(stub: pb_grpc.WorkEngineServiceStub, token: str) -> grpc.StatusCode:
    try:
        await stub.GetOrchestrator(
            pb.GetOrchestratorRequest(orchestrator_id="ada"), metadata=(("authorization", f"Bearer {token}"),)
        )
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def _stream(stub: pb_grpc.WorkEngineServiceStub, token: str) -> grpc.StatusCode:
    call = stub.WatchTaskProgress(
        pb.WatchTaskProgressRequest(task_id="t-1", keep_open=True),
        metadata=(("authorization", f"Bearer {token}"),),
    )
    try:
        async for _ in call:
            pass
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_records_of_unary_and_streaming_calls_carry_their_method_and_peer(
    authenticated: RunningServer, engine: WorkEngine, json_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    break_the_engine(engine, monkeypatch)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{authenticated.port}") as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        codes = await asyncio.gather(
            _unary(stub, ADMIN_TOKEN),
            _stream(stub, ADMIN_TOKEN),
            _unary(stub, "wrong"),
            _stream(stub, "wrong"),
        )
    assert list(codes) == [grpc.StatusCode.INTERNAL] * 2 + [grpc.StatusCode.UNAUTHENTICATED] * 2
    engine_log.warning("engine: outside any call")

    seen = records(json_lines)
    by_method: dict[str | None, list[str]] = {}
    for record in seen:
        by_method.setdefault(record.get("method"), []).append(record["message"])
        if "method" in record:
            assert record["peer"].startswith("ipv4:127.0.0.1:"), record
    assert sorted(by_method[f"{SERVICE}/GetOrchestrator"]) == [
        "call refused: UNAUTHENTICATED: authorization: unknown token",
        "engine: unary ada",
        "engine: unary after a wait",
        "unhandled error",
    ]
    assert sorted(by_method[f"{SERVICE}/WatchTaskProgress"]) == [
        "call refused: UNAUTHENTICATED: authorization: unknown token",
        "engine: stream resumed after a yield",
        "engine: stream starts",
        "unhandled error",
    ]
    assert by_method[None] == ["engine: outside any call"]
    authenticated_ones = [r for r in seen if r["message"].startswith(("engine: unary", "engine: stream"))]
    assert {r.get("caller") for r in authenticated_ones} == {"admin"}
    failures = {r["exception"]["message"] for r in seen if r["message"] == "unhandled error"}
    assert failures == {"unary broke", "stream broke"}


async def test_the_health_watch_that_writes_with_context_write_still_streams(
    authenticated: RunningServer,
) -> None:
    """CallContext wraps a coroutine handler as a coroutine: the health service's Watch writes
    its answers with context.write() and would break as an async generator."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{authenticated.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        first = await asyncio.wait_for(watch.read(), timeout=10)
        watch.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


async def test_under_tracing_records_of_a_call_carry_its_trace_id(
    engine: WorkEngine, json_lines: io.StringIO
) -> None:
    """With the OpenTelemetry instrumentation serve uses (spans in memory), the call's span is
    in the caller's trace: records of a refused unary and a refused streaming call name it."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    tracing = Tracing(provider)
    running = await start_server(
        engine, "127.0.0.1", 0, Security(admin_token=ADMIN_TOKEN), interceptors=tracing.instrument_server()
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.WorkEngineServiceStub(channel)
            traced = (("authorization", "Bearer wrong"), ("traceparent", TRACEPARENT))
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetOrchestrator(pb.GetOrchestratorRequest(orchestrator_id="ada"), metadata=traced)
            with pytest.raises(grpc.aio.AioRpcError):
                async for _ in stub.WatchTaskProgress(
                    pb.WatchTaskProgressRequest(task_id="t-1"), metadata=traced
                ):
                    pass
    finally:
        await running.stop(0)
        tracing.shutdown()
    refusals = [record for record in records(json_lines) if record["message"].startswith("call refused")]
    assert [(r["method"].rsplit("/", 1)[1], r.get("trace_id")) for r in refusals] == [
        ("GetOrchestrator", TRACE_ID),
        ("WatchTaskProgress", TRACE_ID),
    ]
