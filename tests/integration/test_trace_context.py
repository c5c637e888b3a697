"""A task carries its creator's W3C trace context: CreateTask records the call's `traceparent`
and `tracestate` metadata, whether or not the server traces; ClaimNextTask, ExecuteTask and
PrepareTaskContext return it. And, with a traced server (in process, spans in memory), a start
is a span in the task's trace and every call and statement has its span."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.integration.helpers import Stub, claim, create, register
from workengine.api.server import start_server
from workengine.engine import WorkEngine
from workengine.tracing import Tracing
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CREATOR_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CREATOR_SPAN}-01"


def traced(traceparent: str, *tracestates: str) -> tuple[tuple[str, str], ...]:
    return (("traceparent", traceparent), *(("tracestate", state) for state in tracestates))


async def create_traced(stub: Stub, metadata: tuple[tuple[str, str], ...], idempotency_key: str = "") -> str:
    response: pb.CreateTaskResponse = await stub.CreateTask(
        pb.CreateTaskRequest(
            orchestrator_id="ada", workspace_id="ws-1", title="traced", idempotency_key=idempotency_key
        ),
        metadata=metadata,
    )
    return response.task.id


async def test_a_claim_and_a_prepared_context_return_the_creators_trace_context(stub: Stub) -> None:
    await register(stub)
    task_id = await create_traced(stub, traced(TRACEPARENT, "vendor=a", "other=b"))

    claimed = await claim(stub)
    assert claimed.context.task.id == task_id
    assert claimed.context.trace_context.traceparent == TRACEPARENT
    assert claimed.context.trace_context.tracestate == "vendor=a,other=b"
    prepared: pb.PrepareTaskContextResponse = await stub.PrepareTaskContext(
        pb.PrepareTaskContextRequest(orchestrator_id="ada", task_id=task_id)
    )
    assert prepared.context.trace_context == claimed.context.trace_context


async def test_a_malformed_traceparent_is_ignored_and_no_traceparent_means_no_context(stub: Stub) -> None:
    await register(stub)
    malformed = await create_traced(stub, traced("00-not-a-trace-01", "vendor=a"))
    untraced = (await create(stub, "untraced")).id

    for task_id in (malformed, untraced):
        started: pb.ExecuteTaskResponse = await stub.ExecuteTask(
            pb.ExecuteTaskRequest(orchestrator_id="ada", task_id=task_id)
        )
        assert started.outcome == pb.EXECUTE_OUTCOME_STARTED
        assert not started.context.HasField("trace_context")


async def test_a_retry_from_another_trace_is_the_same_request_and_keeps_the_first_context(
    stub: Stub,
) -> None:
    await register(stub)
    first = await create_traced(stub, traced(TRACEPARENT), idempotency_key="once")
    other = f"00-{'1' * 32}-{'2' * 16}-01"
    again = await create_traced(stub, traced(other), idempotency_key="once")
    assert again == first
    claimed = await claim(stub)
    assert claimed.context.trace_context.traceparent == TRACEPARENT


@pytest.fixture
async def traced_stub(engine: WorkEngine) -> AsyncIterator[tuple[Stub, InMemorySpanExporter, str]]:
    """A server that traces into memory, as `workengine serve` does with OTEL_* set."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider)
    running = await start_server(engine, "127.0.0.1", 0, interceptors=tracing.instrument_server())
    target = f"127.0.0.1:{running.port}"
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            yield pb_grpc.WorkEngineServiceStub(channel), exporter, target
    finally:
        await running.stop(0)
        tracing.shutdown()


def only(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


async def test_a_traced_server_puts_the_start_into_the_tasks_trace(
    traced_stub: tuple[Stub, InMemorySpanExporter, str],
) -> None:
    stub, exporter, target = traced_stub
    await register(stub)
    task_id = await create_traced(stub, traced(TRACEPARENT))
    await stub.ExecuteTask(pb.ExecuteTaskRequest(orchestrator_id="ada", task_id=task_id))
    async with grpc.aio.insecure_channel(target) as channel:
        checked = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert checked.status == health_pb2.HealthCheckResponse.SERVING

    spans = list(exporter.get_finished_spans())
    create_call = only(spans, "/workengine.v1.WorkEngineService/CreateTask")
    execute_call = only(spans, "/workengine.v1.WorkEngineService/ExecuteTask")
    start = only(spans, "start task")
    insert = only(spans, "insert_task")
    parents = {span.name: span.parent.span_id for span in spans if span.parent is not None}
    # The call and the start are children of the creator's span, in its trace.
    for span in (create_call, start):
        assert f"{span.context.trace_id:032x}" == TRACE_ID
        assert f"{parents[span.name]:016x}" == CREATOR_SPAN
    assert start.attributes is not None and start.attributes["workengine.task.id"] == task_id
    # The start links to the call that made it; the call names the task.
    assert [link.context.span_id for link in start.links] == [execute_call.context.span_id]
    assert execute_call.attributes is not None and execute_call.attributes["workengine.task.id"] == task_id
    # A statement is a child of its call's span.
    assert parents[insert.name] == create_call.context.span_id
    assert not [span.name for span in spans if "grpc.health" in span.name]


async def test_a_refused_call_keeps_its_status_and_details_under_tracing(
    traced_stub: tuple[Stub, InMemorySpanExporter, str],
) -> None:
    stub, exporter, target = traced_stub
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetTask(pb.GetTaskRequest(task_id="missing"))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    async with grpc.aio.insecure_channel(target) as raw:  # bytes that are no GetTaskRequest
        with pytest.raises(grpc.aio.AioRpcError) as undecodable:
            await raw.unary_unary("/workengine.v1.WorkEngineService/GetTask")(b"\x0a\x02\xff\xfe", timeout=5)
    assert undecodable.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "grpc-status-details-bin" in dict(refused.value.trailing_metadata() or ())  # ErrorInfo kept
    calls = [s for s in exporter.get_finished_spans() if s.name == "/workengine.v1.WorkEngineService/GetTask"]
    assert len(calls) == 2
    span = calls[0]
    # The code is recorded; the span is not an error (OpenTelemetry's rule for a server span:
    # only codes that are the server's fault, such as INTERNAL or UNAVAILABLE, are).
    assert span.attributes is not None and span.attributes["rpc.grpc.status_code"] == 5
