"""Traces across processes: `workengine serve` and the example daemon in subprocesses, both
exporting over OTLP to a receiver this test runs, and a creator here with spans in memory.
One trace covers the creator's span, the server's CreateTask, the task's start, the daemon's
work and the progress and completion calls it makes. Tracing off, the server never imports
OpenTelemetry, yet still records and returns the creator's trace context. The health
service's Watch keeps working with tracing on."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.e2e.daemons import ROOT, python_daemon_command
from tests.e2e.otlp import ReceivedSpan, Receiver
from tests.e2e.serving import ServeProcess, clean_env
from workengine.client import WorkEngineClient
from workengine.v1 import task_pb2

CALL = "/workengine.v1.WorkEngineService/"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    yield started
    started.stop()


def otel_env(receiver: Receiver | None, **extra: str) -> dict[str, str]:
    """The environment without any OTEL_* of the caller's; exporting to `receiver` if given."""
    env = {key: value for key, value in clean_env(**extra).items() if not key.startswith("OTEL_")}
    if receiver is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
        env["OTEL_BSP_SCHEDULE_DELAY"] = "100"  # milliseconds; the exit flushes the rest anyway
    return env


def creator_tracer() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def one(spans: list[ReceivedSpan], service: str, name: str) -> ReceivedSpan:
    found = [span for span in spans if (span.service, span.name) == (service, name)]
    assert len(found) == 1, sorted((span.service, span.name) for span in spans)
    return found[0]


def run_daemon_once(target: str, env: dict[str, str]) -> None:
    """The example daemon: claims what is ready, works, exits once a claim finds nothing."""
    command = python_daemon_command(
        "--target",
        target,
        "--orchestrator",
        "fleet",
        "--name",
        "py-traced",
        "--exit-when-idle",
        "--wait",
        "0.5",
    )
    daemon = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert daemon.returncode == 0, daemon.stderr


def create_and_run(target: str, daemon_env: dict[str, str]) -> tuple[ReadableSpan, task_pb2.Task]:
    """A creator span around CreateTask, the daemon's run of the task; the creator's span."""
    provider, exporter = creator_tracer()
    with WorkEngineClient(target) as client:
        client.register_orchestrator("Fleet", orchestrator_id="fleet")
        with provider.get_tracer("creator").start_as_current_span("create the work"):
            task = client.create_task("fleet", "ws-traces", "traced work")
        run_daemon_once(target, daemon_env)
        assert client.get_task(task.id).status == task_pb2.TASK_STATUS_DONE
        # A server stream under the tracing interceptor still works.
        assert list(client.watch_task_progress(task_id=task.id, timeout=10))
    (creator,) = exporter.get_finished_spans()
    return creator, task


def test_one_trace_follows_a_task_from_its_creator_through_a_daemon_process(
    empty_database_url: str, receiver: Receiver
) -> None:
    server = ServeProcess("--database-url", empty_database_url, env=otel_env(receiver))
    try:
        target = server.wait_listening()
        creator, task = create_and_run(target, otel_env(receiver))
    finally:
        assert server.terminate() == 0  # the server exports what it still buffers as it stops
    assert any("tracing on" in line for line in server.lines)

    spans = receiver.spans()
    trace_id, creator_id = f"{creator.context.trace_id:032x}", f"{creator.context.span_id:016x}"
    create_call = one(spans, "workengine", CALL + "CreateTask")
    start = one(spans, "workengine", "start task")
    work = one(spans, "workengine-daemon", "run task")
    progress = one(spans, "workengine", CALL + "UpdateTaskProgress")
    completion = one(spans, "workengine", CALL + "CompleteTask")
    for span in (create_call, start, work, progress, completion):
        assert span.trace_id == trace_id, span
    # The creator's span is the parent of the server's CreateTask, of the start and of the
    # daemon's work; the daemon's reports are children of its work.
    assert create_call.parent_id == start.parent_id == work.parent_id == creator_id
    assert progress.parent_id == completion.parent_id == work.span_id
    assert work.attributes["workengine.task.id"] == start.attributes["workengine.task.id"] == task.id
    # The claim: its call (a trace of the daemon's own, begun before the task was known) names
    # the task, and the start links to it.
    (claim,) = [
        s for s in spans if s.name == CALL + "ClaimNextTask" and s.attributes.get("workengine.task.id")
    ]
    assert start.links == (claim.span_id,)
    # A span per statement, inside its call's span.
    assert one(spans, "workengine", "insert_task").parent_id == create_call.span_id
    assert not [span.name for span in spans if "grpc.health" in span.name or "Reflection" in span.name]


def test_tracing_off_imports_no_opentelemetry_yet_keeps_the_creators_context(empty_database_url: str) -> None:
    server = ServeProcess(
        "--database-url", empty_database_url, env=otel_env(None, PYTHONPROFILEIMPORTTIME="1")
    )
    provider, _ = creator_tracer()
    try:
        target = server.wait_listening()
        with WorkEngineClient(target) as client:
            client.register_orchestrator("Fleet", orchestrator_id="fleet")
            with provider.get_tracer("creator").start_as_current_span("create the work") as creator:
                task = client.create_task("fleet", "ws-traces", "traced work")
            claimed = client.claim_next_task("fleet", wait=timedelta(seconds=5))
            client.update_task_progress(task.id, claimed.attempt, 50)
            client.complete_task(task.id, claimed.attempt)
    finally:
        assert server.terminate() == 0
    parent = creator.get_span_context()
    expected = f"00-{parent.trace_id:032x}-{parent.span_id:016x}-{parent.trace_flags:02x}"
    assert claimed.context.task.id == task.id
    assert claimed.context.trace_context.traceparent == expected
    imported = [line for line in server.lines if line.startswith("import time:")]
    assert any(line.rstrip().endswith("workengine.serve") for line in imported)  # the probe works
    assert not [line for line in imported if "opentelemetry" in line]
    assert not any("tracing on" in line for line in server.lines)


def test_the_health_watch_works_with_tracing_on(empty_database_url: str, receiver: Receiver) -> None:
    server = ServeProcess("--database-url", empty_database_url, env=otel_env(receiver))
    try:
        target = server.wait_listening()
        with grpc.insecure_channel(target) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=30)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            # A stop first reports NOT_SERVING on the open watch.
            stopping = threading.Thread(target=server.terminate)
            stopping.start()
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            stopping.join()
    finally:
        server.kill()
    assert server.process.returncode == 0
