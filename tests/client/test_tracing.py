"""The client's part of tracing: the current span's context on every call, and task_span."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from workengine.client import WorkEngineClient
from workengine.client.tracing import task_span
from workengine.v1 import task_pb2

CREATOR = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.fixture
def client() -> Iterator[WorkEngineClient]:
    with WorkEngineClient("127.0.0.1:1", token="secret") as opened:  # never connects
        yield opened


def test_a_call_carries_the_current_spans_context(
    client: WorkEngineClient, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, _ = spans
    assert dict(client.call_metadata("CreateTask") or ()) == {"authorization": "Bearer secret"}
    with provider.get_tracer("test").start_as_current_span("creator") as creator:
        sent = dict(client.call_metadata("CreateTask") or ())
    context = creator.get_span_context()
    assert (
        sent["traceparent"] == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    )
    assert sent["authorization"] == "Bearer secret"


def test_a_traceparent_from_the_metadata_hook_wins(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, _ = spans
    hook = WorkEngineClient("127.0.0.1:1", metadata=lambda method: [("traceparent", CREATOR)])
    with hook as client, provider.get_tracer("test").start_as_current_span("other"):
        sent = list(client.call_metadata("CreateTask") or ())
    assert sent == [("traceparent", CREATOR)]


def test_task_span_continues_the_creators_trace(spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    context = task_pb2.TaskContext(task=task_pb2.Task(id="t-1", attempt=2, orchestrator_id="ada"))
    context.trace_context.traceparent = CREATOR
    context.trace_context.tracestate = "vendor=a"
    with task_span(context, tracer=provider.get_tracer("daemon")) as span:
        assert span is not None
    (work,) = exporter.get_finished_spans()
    assert work.parent is not None and work.parent.is_remote
    assert (f"{work.context.trace_id:032x}", f"{work.parent.span_id:016x}") == (CREATOR[3:35], CREATOR[36:52])
    assert work.context.trace_state.get("vendor") == "a"
    assert dict(work.attributes or {}) == {
        "workengine.task.id": "t-1",
        "workengine.task.attempt": 2,
        "workengine.orchestrator.id": "ada",
    }


def test_task_span_of_a_task_without_context_is_a_child_of_the_current_span(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("daemon")
    with tracer.start_as_current_span("loop") as loop, task_span(task_pb2.TaskContext(), tracer=tracer):
        pass
    work = exporter.get_finished_spans()[0]
    assert work.parent is not None and work.parent.span_id == loop.get_span_context().span_id
